"""The learning rate of a ``fit`` that :class:`~trainer.keras_callback.callback.PandaCallback` steers: seen, and steerable.

Two facts of a Keras optimizer's α, kept here:

* **Changes Panda did not make are seen** (:class:`LrWatch`). Another callback
  (``ReduceLROnPlateau``, ``LearningRateScheduler``) or the user's own code between fits assigns
  ``optimizer.learning_rate``, which lands in the variable's ``assign``. The watch wraps that one
  method of that one variable (nothing runs per batch): each change is kept with its source (the
  callback's class, else the line of code that made it) until the callback journals it, as an
  ``lr_observed`` event, at the next batch boundary. Panda's own assignments are marked as such.
* **A** ``LearningRateSchedule`` **is steerable** (:class:`SteeredSchedule`): it is wrapped once, in
  ``on_train_begin``, so α(step) = ``scale`` × schedule(step) — ``scale_lr`` multiplies ``scale``
  (the schedule's shape from now on, scaled) and ``set_lr`` sets ``scale`` = α / schedule(now), so
  α is the one asked for now and the schedule's shape goes on from there. While ``find_lr`` ramps,
  ``override`` (when > 0) replaces α outright.
"""

from __future__ import annotations

import contextlib
import os
import sys

import math

import keras
import tensorflow as tf

from trainer.contract import commands as cmds
from trainer.keras_callback.logs import as_float

#: Files whose frames are not "the source" of an assignment: Keras, TensorFlow and Panda itself.
_NOT_A_SOURCE = (os.sep + "keras" + os.sep, os.sep + "tensorflow" + os.sep, os.path.dirname(__file__))


def base_optimizer(optimizer):
    """The optimizer that owns α: a ``LossScaleOptimizer``'s inner one, else itself."""
    return getattr(optimizer, "inner_optimizer", None) or optimizer


def rounded(value: float | None) -> float | None:
    """A float32 α read back as the value that was set (0.0030000000260770321 -> 0.003)."""
    return float(f"{value:.7g}") if value is not None else None


def assigned_by(frame) -> str | None:
    """Who assigned α, from the call stack: a Keras callback's class name, else ``file.py:line`` of user code."""
    while frame is not None:
        owner = frame.f_locals.get("self")
        if isinstance(owner, keras.callbacks.Callback) and type(owner).__name__ not in ("CallbackList", "PandaCallback"):
            return type(owner).__name__
        name = frame.f_code.co_filename
        if not any(part in name for part in _NOT_A_SOURCE) and not name.startswith("<frozen"):
            return f"{os.path.basename(name)}:{frame.f_lineno}"
        frame = frame.f_back
    return None


class LrWatch:
    """Every Python assignment of one optimizer's α variable, Panda's own told apart."""

    def __init__(self, step=lambda: 0):
        self.step = step  # the steps taken so far: a change takes effect from there
        self.variable = None
        self.current: float | None = None  # α in force, as last assigned (no device read)
        self.pending: list[dict] = []  # changes Panda did not make, not journaled yet
        self._own = False

    def attach(self, optimizer) -> None:
        """Watch ``optimizer``'s α variable (once; a schedule has none to watch)."""
        variable = getattr(base_optimizer(optimizer), "_learning_rate", None)
        if variable is self.variable or not isinstance(variable, keras.Variable):
            return
        self.variable, self.current = variable, rounded(as_float(variable))
        watch = self

        class Watched(type(variable)):  # this one variable's class: its assign tells the watch
            def assign(self, value, *args, **kwargs):
                out = super().assign(value, *args, **kwargs)
                if not tf.inside_function():  # a traced step's assignment is not a change now
                    watch._saw(value, sys._getframe(1))
                return out

        Watched.__name__ = Watched.__qualname__ = type(variable).__name__
        variable.__class__ = Watched

    def check(self) -> None:
        """Read α once: a change that bypassed ``assign`` (a variable of its own) is seen too, source unknown."""
        if self.variable is not None:
            value = rounded(as_float(self.variable))
            if value != self.current:
                self.pending.append({"lr": value, "previous": self.current, "source": None, "step": self.step()})
                self.current = value

    @contextlib.contextmanager
    def own(self):
        """Panda assigns α inside this: not an observed change."""
        self._own = True
        try:
            yield
        finally:
            self._own = False

    def _saw(self, value, frame) -> None:
        value = rounded(as_float(value))
        if not self._own and value != self.current:
            self.pending.append({"lr": value, "previous": self.current, "source": assigned_by(frame),
                                 "step": self.step()})
        self.current = value

    def take(self) -> list[dict]:
        out, self.pending = self.pending, []
        return out


@keras.saving.register_keras_serializable(package="panda")
class SteeredSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """The user's ``schedule`` × ``scale`` (a variable Panda steers); ``override`` > 0 replaces α (find_lr)."""

    def __init__(self, schedule, scale: float = 1.0):
        self.schedule = schedule
        self.scale = tf.Variable(float(scale), trainable=False, dtype=tf.float32, name="panda_lr_scale")
        self.override = tf.Variable(0.0, trainable=False, dtype=tf.float32, name="panda_lr_override")

    def __call__(self, step):
        alpha = tf.cast(self.schedule(step), tf.float32) * self.scale
        return tf.where(self.override > 0, self.override, alpha)

    def at(self, step: int) -> float:
        """The user's schedule alone at ``step`` (eagerly)."""
        return float(tf.cast(self.schedule(tf.constant(step, tf.int64)), tf.float32).numpy())

    def get_config(self) -> dict:
        return {"schedule": keras.saving.serialize_keras_object(self.schedule), "scale": float(self.scale.numpy())}

    @classmethod
    def from_config(cls, config: dict) -> "SteeredSchedule":
        return cls(keras.saving.deserialize_keras_object(config["schedule"]), config.get("scale", 1.0))


def steer_schedule(model) -> SteeredSchedule | None:
    """Wrap the model's schedule once (and retrace fit's step if it was traced with the bare one)."""
    optimizer = base_optimizer(model.optimizer)
    schedule = getattr(optimizer, "_learning_rate", None)
    if isinstance(schedule, SteeredSchedule):
        return schedule
    if not isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
        return None
    optimizer._learning_rate = steered = SteeredSchedule(schedule)
    if getattr(model, "train_function", None) is not None:
        model.make_train_function(force=True)  # a step traced before reads the bare schedule
    return steered


def article(word: str) -> str:
    """``an ExponentialDecay``, ``a CosineDecay``."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


class LrSteering:
    """The learning-rate half of :class:`~trainer.keras_callback.callback.PandaCallback` (a mixin: it shares the callback's state)."""

    def _schedule(self):
        """The user's ``LearningRateSchedule`` (inside Panda's :class:`SteeredSchedule`), or ``None``."""
        lr = getattr(base_optimizer(self.optimizer), "_learning_rate", None)
        lr = getattr(lr, "schedule", lr) if lr is self.steered_schedule and lr is not None else lr
        return lr if isinstance(lr, keras.optimizers.schedules.LearningRateSchedule) else None

    def _lr(self) -> float | None:
        lr = as_float(self.optimizer.learning_rate)
        return rounded(lr) if lr is not None and math.isfinite(lr) else lr  # float32 -> the value set

    def _lr_used(self) -> float | None:
        """α of the newest training step: the watched value, or the schedule at the step before ``iterations``."""
        if self.steered_schedule is not None:
            return rounded(as_float(self.steered_schedule(max(0, self.steering.step - 1))))
        return self._lr_batch if self._lr_batch is not None else self._lr()

    def check_assignable(self) -> None:
        """Refuse (``CommandError``) a learning rate Panda cannot set: neither a variable nor a schedule (a callable)."""
        held = getattr(base_optimizer(self.optimizer), "_learning_rate", None)
        if self.steered_schedule is None and not isinstance(held, keras.Variable):
            raise cmds.CommandError(f"the optimizer's learning rate is {article(type(held).__name__)}, which Panda "
                                    f"cannot assign; compile with a float or a LearningRateSchedule")

    def _assign_lr(self, value: float) -> dict:
        """α now = ``value``; with a schedule, its multiplier so that α(now) = ``value`` (the shape goes on)."""
        self.check_assignable()
        steered = self.steered_schedule
        if steered is None:
            with self.lr_watch.own():
                self.optimizer.learning_rate.assign(value)
            return {}
        now_ = steered.at(self.steering.step)
        if not now_ > 0:
            raise cmds.CommandError(f"{article(type(steered.schedule).__name__)} schedule is at α {now_:g} at step "
                                    f"{self.steering.step}, so no multiplier makes it {value:g}; use scale_lr")
        steered.scale.assign(value / now_)
        return {"lr_scale": rounded(float(steered.scale.numpy()))}

    def set_lr(self, value: float) -> dict:
        extra = self._assign_lr(value)
        self.steering.say(f"learning rate -> {value:g} at step {self.steering.step}")
        return extra

    def scale_lr(self, factor: float) -> dict:
        steered = self.steered_schedule
        if steered is None:
            return self.set_lr(cmds.check_lr(self._lr() * factor))
        if self._lr() > 0:
            cmds.check_lr(self._lr() * factor)  # refused when α now would leave the allowed range
        steered.scale.assign(float(steered.scale.numpy()) * factor)
        self.steering.say(f"learning rate schedule x{factor:g} from step {self.steering.step}")
        return {"lr_scale": rounded(float(steered.scale.numpy()))}

    def _journal_lr_changes(self) -> None:
        """Journal the learning-rate changes Panda did not make (:class:`~trainer.keras_callback.lr.LrWatch`)."""
        if not self._opened:
            return
        watch = self.lr_watch
        if not self._in_epoch:
            watch.check()
        for change in watch.take():
            self.rundir.append_event("lr_observed", epoch=self.steering.epoch, **change,
                                     hparams={**self.hparams(), "lr": change["lr"]})
            who = f" by {change['source']}" if change["source"] else ""
            self.steering.say(f"learning rate {change['previous']} -> {change['lr']}{who} at step {self.steering.step}")
