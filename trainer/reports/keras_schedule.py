"""A Keras learning-rate schedule made from a Panda run: train a plain ``model.fit`` with the α a panda found.

    panda export runs/my-run --format schedule        # -> runs/my-run/export/schedule.json
    from trainer.reports.keras_schedule import PandaSchedule
    model.compile(optimizer=keras.optimizers.Adam(PandaSchedule.from_json("runs/my-run/export/schedule.json")), ...)

α is piecewise constant: ``values[i]`` from optimizer step ``steps[i]`` on (see :mod:`trainer.reports.schedule`).
A ``PandaCallback`` run compiled with a Keras schedule exports that schedule and the multiplier
``set_lr``/``scale_lr`` gave it by step; ``from_json`` then returns a :class:`ScaledSchedule`.
Note that the steps are the run's: a different batch size or data set size makes a step mean
another point of training.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="panda")
class PandaSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """α(step) as a run used it: ``steps`` (ascending, starting at 0) and the ``values`` from each."""

    def __init__(self, steps: list[int], values: list[float], name: str | None = None):
        if not steps or len(steps) != len(values) or steps[0] != 0 or list(steps) != sorted(steps):
            raise ValueError("a schedule needs ascending steps starting at 0, one value each")
        self.steps = [int(s) for s in steps]
        self.values = [float(v) for v in values]
        self.name = name

    @classmethod
    def from_json(cls, path: Path | str) -> "keras.optimizers.schedules.LearningRateSchedule":
        """The schedule of ``schedule.json``: piecewise α, or a Keras schedule × Panda's multiplier (:class:`ScaledSchedule`)."""
        data = json.loads(Path(path).read_text())
        if "schedule" in data:
            inner = keras.saving.deserialize_keras_object(data["schedule"])
            return ScaledSchedule(inner, data["steps"], data["scales"], name=data.get("run"))
        return cls(data["steps"], data["values"], name=data.get("run"))

    def __call__(self, step):
        step = tf.cast(tf.reshape(step, [1]), tf.int64)
        index = tf.searchsorted(tf.constant(self.steps, tf.int64), step, side="right")[0] - 1
        return tf.gather(tf.constant(self.values, tf.float32), tf.maximum(index, 0))

    def get_config(self) -> dict:
        return {"steps": self.steps, "values": self.values, "name": self.name}


@keras.saving.register_keras_serializable(package="panda")
class ScaledSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """α(step) = ``scales[i]`` × ``schedule``(step) from step ``steps[i]`` on: a Keras schedule as a run steered it."""

    def __init__(self, schedule, steps: list[int], scales: list[float], name: str | None = None):
        self.schedule = schedule
        self.scale = PandaSchedule(steps, scales)
        self.name = name

    def __call__(self, step):
        return tf.cast(self.schedule(step), tf.float32) * self.scale(step)

    def get_config(self) -> dict:
        return {"schedule": keras.saving.serialize_keras_object(self.schedule), "steps": self.scale.steps,
                "scales": self.scale.values, "name": self.name}

    @classmethod
    def from_config(cls, config: dict) -> "ScaledSchedule":
        return cls(keras.saving.deserialize_keras_object(config["schedule"]), config["steps"], config["scales"],
                   config.get("name"))
