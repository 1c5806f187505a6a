"""A Keras learning-rate schedule made from a Panda run: train a plain ``model.fit`` with the α a panda found.

    panda export runs/my-run --format schedule        # -> runs/my-run/export/schedule.json
    from trainer.schedule_keras import PandaSchedule
    model.compile(optimizer=keras.optimizers.Adam(PandaSchedule.from_json("runs/my-run/export/schedule.json")), ...)

α is piecewise constant: ``values[i]`` from optimizer step ``steps[i]`` on (see :mod:`trainer.schedule`).
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
    def from_json(cls, path: Path | str) -> "PandaSchedule":
        data = json.loads(Path(path).read_text())
        return cls(data["steps"], data["values"], name=data.get("run"))

    def __call__(self, step):
        step = tf.cast(tf.reshape(step, [1]), tf.int64)
        index = tf.searchsorted(tf.constant(self.steps, tf.int64), step, side="right")[0] - 1
        return tf.gather(tf.constant(self.values, tf.float32), tf.maximum(index, 0))

    def get_config(self) -> dict:
        return {"steps": self.steps, "values": self.values, "name": self.name}
