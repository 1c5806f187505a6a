"""Which run directory a :class:`~trainer.keras_callback.callback.PandaCallback` writes, and opening or continuing it.

The rule (docs/keras-callback.md, "Which run directory"): a missing path or an empty folder is
a new run; an existing run is continued only with ``resume=True``, only when ``PandaCallback``
made it, no live process trains it, and it was made for the same model (:func:`trainer.keras_callback.logs.model_signature`).
Everything here runs before the callback's first checkpoint, so a refused path is never written.
"""

from __future__ import annotations

import math
import os

import json

from trainer.contract import commands as cmds
from trainer.training.checkpoints import CheckpointError, CheckpointStore
from trainer.training.devices import run_record
from trainer.contract.rundir import LIVE_STATES, RunDirError
from trainer.contract.runlock import RunLock

#: ``config.json``'s ``trainer`` for runs this callback makes.
TRAINER_NAME = cmds.KERAS_CALLBACK


def json_safe(value):
    """``value`` as plain JSON (a schedule's config may hold numpy numbers)."""
    return json.loads(json.dumps(value, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


class RunOpening:
    """The half of :class:`~trainer.keras_callback.callback.PandaCallback` that picks, opens and reopens its run."""

    kind = TRAINER_NAME  # which commands it obeys (the command table's trainers)

    def _check_path(self) -> None:
        """Refuse, before any training, a path that holds something other than our run."""
        path = self.rundir.path
        if not path.exists():
            return
        if not path.is_dir():
            raise RunDirError(f"{path} is a file, not a run directory")
        if not any(path.iterdir()):
            return  # an empty folder: a new run
        if not self.rundir.exists():
            raise RunDirError(f"{path} is not empty and is not a Panda run; choose another run directory")
        config = self.rundir.read_config()
        if not self.resume:
            raise RunDirError(f"{path} already holds a run ({config.get('name')}); pass resume=True to continue "
                              f"it, or choose another run directory")
        if config.get("trainer") != TRAINER_NAME:
            raise RunDirError(f"{path} belongs to another run: it was made by `panda train`, not by PandaCallback; "
                              f"continue it with `panda train --resume {path}`")
        status = self.rundir.status()
        if self.rundir.liveness(status) in LIVE_STATES and status.pid != os.getpid():
            raise RunDirError(f"{path} is still training (pid {status.pid}); stop it first")

    def _check_model(self, config: dict) -> None:
        stored = config.get("model_signature") or {}
        if stored.get("sha") != self._signature["sha"]:
            raise RunDirError(
                f"{self.rundir.path} belongs to another model: it was made for {stored.get('class')} "
                f"{stored.get('name')!r} ({stored.get('layers')} layers, {stored.get('params')} parameters, "
                f"optimizer {stored.get('optimizer')}), this is {self._signature['class']} {self._signature['name']!r} "
                f"({self._signature['layers']} layers, {self._signature['params']} parameters, optimizer "
                f"{self._signature['optimizer']}); its checkpoints cannot be restored into this model")

    def _open_run(self, planned: int | None) -> bool:
        """Create the run at the path, or continue it (``resume=True``: returns ``True``), once the variables exist."""
        steering = self.steering
        steering.step = int(self.optimizer.iterations.numpy())
        self._check_path()  # the path may have changed since the callback was made
        reopened = self.rundir.exists() and self.resume
        if reopened:
            self._reopen()
        else:
            steering.epochs = steering.epoch + planned if planned else None
            self._create()
        self._opened = True
        return reopened

    def _create(self) -> None:
        path = self.rundir.path
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
        self.rundir.create()
        self._run_lock = RunLock(path).acquire()  # the one writer of this run, until close()
        try:
            self._open_new()
        except BaseException:
            self._run_lock.release()
            raise

    def _open_new(self) -> None:
        input_shape = getattr(self.model, "input_shape", None) if self.model.built else None
        output_shape = getattr(self.model, "output_shape", None) if self.model.built else None
        n_features = None
        if isinstance(input_shape, tuple) and all(isinstance(d, int) for d in input_shape[1:]):
            n_features = int(math.prod(input_shape[1:]))
        n_classes = output_shape[-1] if isinstance(output_shape, tuple) and isinstance(output_shape[-1], int) else None
        self.steering.store = CheckpointStore(self.rundir, model=self.model, optimizer=self.optimizer)
        self.steering.open_new(run_record(
            self.rundir.name, TRAINER_NAME, model="keras", model_signature=self._signature, hparams=self.hparams(),
            dataset={"name": self.dataset or "model.fit", "n_train": None, "n_val": None,
                     "n_features": n_features, "n_classes": n_classes, "source": "model.fit"},
            epochs=self.steering.epochs, seed=None, pace=0.0, checkpoint_every=self.checkpoint_every,
            tensorboard=self.tensorboard, internals=self.internals, autopilot=self.autopilot.on,
            autopilot_method=self.autopilot_method, **self._schedule_record()))
        if self._probe is not None:
            self.steering.append_internals(self._probe.first_record())

    def _schedule_record(self) -> dict:
        """The user's ``LearningRateSchedule``, serialized (``panda export --format schedule`` rebuilds it)."""
        schedule = self._schedule()
        if schedule is None:
            return {}
        import keras

        try:
            return {"lr_schedule": json_safe(keras.saving.serialize_keras_object(schedule))}
        except Exception as e:  # a schedule Keras cannot serialize: the export says so, training goes on
            return {"lr_schedule": {"error": f"{type(e).__name__}: {e}"[:300]}}

    def _reopen(self) -> None:
        """Continue the run at the path (``resume=True``): newest checkpoint, journal's learning rate."""
        run = self.rundir
        self._run_lock = RunLock(run.path).acquire()  # before anything is repaired or written; until close()
        try:
            self._check_model(run.read_config())
            self.steering.store = CheckpointStore(run, model=self.model, optimizer=self.optimizer)
            self.steering.reopen()
        except CheckpointError as e:
            self._run_lock.release()
            raise RunDirError(f"cannot restore the newest checkpoint of {run.path} into this model: {e}") from None
        except BaseException:
            self._run_lock.release()
            raise
