"""``PandaCallback``: babysit any compiled Keras 3 model's ``fit`` through a Panda run directory.

::

    from trainer import PandaCallback

    model.fit(x, y, epochs=20, validation_split=0.2, callbacks=[PandaCallback("runs/my-run")])

The run directory is the same contract ``panda train`` writes (docs/run-directory.md): config,
status heartbeat, one metrics record per epoch, sampled batch losses, the journal, checkpoints of
the model and its optimizer. The dashboard, ``panda ctl``, ``panda status`` and ``panda export``
read it like any other run, and the same commands steer it, applied at batch boundaries:

* ``set_lr`` / ``scale_lr`` assign ``model.optimizer.learning_rate``; with a ``LearningRateSchedule``
  they steer a multiplier around it (:mod:`trainer.keras_callback.lr`), and α changes made by other
  callbacks or the user's code are journaled as ``lr_observed``;
* ``pause`` blocks ``fit`` at the next batch boundary, waiting on the command file (no CPU),
  and ``resume`` lets it go on; ``stop`` checkpoints and sets ``model.stop_training``;
* ``checkpoint`` saves now; ``rewind`` restores a checkpoint's weights and optimizer state (the
  epoch Keras is in goes on from there, recorded as the checkpoint's epoch + 1 on a new branch);
* ``find_lr`` runs the range test on fit's own next batches and puts the exact state back
  (:mod:`trainer.keras_callback.explore`; fit's data position cannot be put back); ``fork`` is rejected;
* ``set_beta`` and ``set_batch_size`` are rejected: a Keras optimizer's betas are constants in
  its compiled step, and ``fit``'s batch size belongs to its data.

A non-finite loss rolls the model back to the last checkpoint and pauses (state ``diverged``),
as ``panda train`` does; lower the learning rate and ``resume``. With ``autopilot=True`` it lowers α
itself and goes on, and the advisor's advice is applied (:mod:`trainer.keras_callback.autopilot`).

Which run directory: :mod:`trainer.keras_callback.opening` (a new path starts a run; ``resume=True``
continues one made by ``PandaCallback`` for the same model). Calling ``fit`` again with the same
callback object continues its run. A model that is not built before ``fit`` (a subclassed model)
gets its run opened after the first batch, said once as a warning: nothing Panda records may stop
a user's ``fit``.

Errors are raised in ``on_train_begin``, before the first batch. Only the TensorFlow backend is
supported (checkpoints are ``tf.train.Checkpoint``).

It is one class, Keras's hooks on one object (learning-rate steering, batches and exploration already
live beside it), so it stays one module.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from trainer.contract import commands as cmds  # noqa: E402
from trainer.training import internals as internals_lib  # noqa: E402
from trainer.keras_callback.autopilot import CallbackAutopilot, check_method  # noqa: E402
from trainer.keras_callback.explore import EPOCH_END, CallbackFinder  # noqa: E402
from trainer.keras_callback.logs import (  # noqa: E402
    FitData, accuracy_of, as_float, batch_losses, model_signature, unbuilt,
)
from trainer.keras_callback.lr import LrSteering, LrWatch, base_optimizer, rounded, steer_schedule  # noqa: E402
from trainer.keras_callback.batches import FitBatches  # noqa: E402
from trainer.keras_callback.opening import RunOpening  # noqa: E402
from trainer.training.checkpoints import CheckpointError  # noqa: E402
from trainer.contract.records import BatchRecord, EpochRecord  # noqa: E402
from trainer.contract.rundir import LIVE_STATES, WAITING_STATES, RunDir, RunDirError, now  # noqa: E402
from trainer.contract.runlock import RunLock  # noqa: E402
from trainer.reports.schedule import scales_from  # noqa: E402
from trainer.steering.core import BATCH_SAMPLES_PER_EPOCH, Steering  # noqa: E402


class PandaCallback(RunOpening, FitBatches, LrSteering, keras.callbacks.Callback):
    """Turns ``model.fit`` into a Panda run at ``run_path`` (see the module's documentation).

    Args:
        run_path: the run directory (``runs/my-run``).
        resume: continue the existing run at ``run_path`` instead of refusing it.
        tensorboard: also write TensorBoard event files to ``run_path/tensorboard/``.
        internals: record ``internals.jsonl`` once per epoch (:mod:`trainer.training.internals`).
        probe: ``(x_val, y_val)`` to measure internals on (batch statistics, softmax of probe examples,
            gradients). Keras does not hand callbacks the validation data, so without it only what the
            model itself holds is recorded: BN moving statistics, γ and β, weight norms.
        checkpoint_every: keep the end-of-epoch checkpoint of every N-th epoch (and the last 3).
        autopilot: apply the advisor's advice and recover from a divergence without pausing
            (:mod:`trainer.keras_callback.autopilot`; ``autopilot_method="lookahead"`` is refused: no data to fork on).
        dataset: a name for the data, shown in config.json (default: ``model.fit``).
        verbose: print a line per command and per epoch.
    """

    #: The run's lock (``RUN/.lock``), held from opening the run until :meth:`close`.
    _run_lock: RunLock | None = None

    def __init__(self, run_path: Path | str, *, resume: bool = False, tensorboard: bool = False,
                 checkpoint_every: int = 5, dataset: str | None = None, verbose: bool = False,
                 internals: bool = True, probe: tuple | None = None, autopilot: bool = False,
                 autopilot_method: str = "rules"):
        super().__init__()
        self.autopilot_method = check_method(autopilot, autopilot_method)
        if int(checkpoint_every) < 1:
            raise ValueError(f"checkpoint_every must be at least 1, got {checkpoint_every}")
        self.steering = Steering(RunDir(run_path), self, verbose=verbose, say_prefix="panda: ")
        self.resume = resume
        self.tensorboard = tensorboard
        self.checkpoint_every = int(checkpoint_every)
        self.dataset = dataset
        self.internals = internals
        self._probe_data = probe
        self._probe: internals_lib.Probe | None = None
        self._internals_cadence = internals_lib.Cadence() if internals else None
        self.batch_size: int | None = None
        self._opened = False
        self._signature: dict | None = None
        self._cut_short = False
        self._mark: float | None = None  # when the last epoch's record was handed off (end-to-end timing)
        self._in_epoch = False
        self._next_batch = 0
        self._calls = 0  # fit's calls of its train function this epoch (the finder's included)
        self._steps_per_call = 1  # the model's steps_per_execution
        self._in_fit = False
        self._skip = 0  # batches of this epoch the learning-rate finder used (they train nothing)
        self._sized = False  # the batch size was looked for (once a run)
        self._lr_batch: float | None = None  # α of the newest training batch, as the watch saw it
        self._last_logs = None  # the newest training batch's logs (what Keras keeps while the finder runs)
        self.finder = CallbackFinder(self)
        self.lr_watch = LrWatch(step=lambda: self.steering.step)
        self.steered_schedule = None  # a trainer.keras_callback.lr.SteeredSchedule when compiled with a schedule
        self.data = FitData()  # what fit's data says of its batches
        self._warned: set[str] = set()
        self.autopilot = CallbackAutopilot(self, autopilot)
        self._idle = False  # a fit this callback cannot follow (another backend): every hook returns at once
        self._check_path()

    @property
    def rundir(self) -> RunDir:
        return self.steering.rundir

    # ------------------------------------------------------------------ hyperparameters

    @property
    def optimizer(self):
        return self.model.optimizer

    def hparams(self) -> dict:
        opt = base_optimizer(self.optimizer)
        # RMSprop has momentum (0.0 by default) and rho: its beta is rho, as panda train's RMSprop
        beta = next((getattr(opt, k) for k in ("beta_1", "rho", "momentum") if hasattr(opt, k)), None)
        schedule = self._schedule()
        return {
            "optimizer": type(opt).__name__.lower(), "lr": self._lr(), "beta": as_float(beta),
            "beta2": as_float(getattr(opt, "beta_2", None)), "epsilon": as_float(getattr(opt, "epsilon", None)),
            "batch_size": self.batch_size, "decay": type(schedule).__name__ if schedule else "none",
            "decay_rate": None, "layers": None, "units": None, "batch_norm": None, "dropout": None,
            **({"lr_scale": rounded(as_float(self.steered_schedule.scale))} if self.steered_schedule else {}),
        }

    # ------------------------------------------------------------------ the Steerable side

    def restore(self, meta: dict) -> None:
        """Weights and optimizer state from ``meta``; the learning rate in force stays."""
        lr = self._lr()
        try:
            self.steering.store.restore(meta)
        except (AssertionError, ValueError) as e:
            raise CheckpointError(str(e)) from None
        if lr is not None and self._schedule() is None:
            with self.lr_watch.own():
                self.optimizer.learning_rate.assign(lr)

    def restore_hparams(self, latest: dict) -> None:
        if self.steered_schedule is not None:  # the multiplier then (undo), else the journal's last (resume)
            scale = latest.get("lr_scale") or scales_from(self.rundir.read_events())["scales"][-1]
            self.steered_schedule.scale.assign(scale)
        elif latest.get("lr") is not None:
            self._assign_lr(latest["lr"])

    def after_rewind(self, meta: dict) -> None:
        self.steering.step = int(self.optimizer.iterations.numpy())
        self.model.reset_metrics()  # the epoch's running means start again from the restored weights
        # the batches counted from here on start at the restored step and from a fresh running mean
        self._base_step, self._base_batch = self.steering.step, self._next_batch
        self._epoch_step0 = self.steering.step
        self._batches_in_epoch, self._means = 0, {}

    def refuse_checkpoint(self) -> str | None:
        """The newest batch's running loss, read now (batches keep it on the device): not finite, no save."""
        latest = self._means.get(max(self._means)) if self._in_epoch and self._means else None
        value = as_float(latest) if latest is not None else None
        return f"the training loss became {value}" if value is not None and not math.isfinite(value) else None

    # What the command table says PandaCallback does not obey (Steering refuses those first).
    def set_beta(self, value: float) -> None:
        raise cmds.unsupported("set_beta")

    def set_batch_size(self, value: int) -> None:
        raise cmds.unsupported("set_batch_size")

    def find_lr(self, spec: dict):
        return self.finder.start(spec)  # runs on fit's next batches (trainer/keras_callback/explore.py); answered then

    def fork(self, spec: dict) -> dict:
        raise cmds.unsupported("fork")

    def adopt(self, source: dict, spec: dict) -> None:
        raise cmds.unsupported("adopt")

    # ------------------------------------------------------------------ Keras hooks

    def warn_once(self, key: str, text: str) -> None:
        """One line, once per callback: what Panda cannot do for this model, said where it is seen."""
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(f"PandaCallback: {text}", RuntimeWarning, stacklevel=3)

    def on_train_begin(self, logs=None):
        self._idle = keras.backend.backend() != "tensorflow"
        if self._idle:  # checkpoints are tf.train.Checkpoints: nothing to do but let fit train
            self.warn_once("backend", f"needs Keras's TensorFlow backend, not {keras.backend.backend()!r}: this fit "
                                      f"trains without Panda and {self.rundir.path} is not written")
            return
        if getattr(self.model, "optimizer", None) is None:
            raise RuntimeError("PandaCallback needs a compiled model: call model.compile(...) before fit")
        self.data = FitData.of_fit()
        self._planned = self.params.get("epochs") if isinstance(self.params, dict) else None
        self.steered_schedule = steer_schedule(self.model)
        self.lr_watch.attach(self.optimizer)
        self._steps_per_call = max(1, int(getattr(self.model, "steps_per_execution", 1) or 1))
        self.steering.stop_requested, self._cut_short, self._mark = None, False, None
        if self._opened:
            self._check_same_model()
            self._run_lock.acquire()  # close() gave it up at the end of the last fit
            self.steering.reattach()
            self._start()
        elif unbuilt(self.model):  # a subclassed model makes its variables in its first call
            self.warn_once("unbuilt", f"model {self.model.name!r} is not built yet; its run at {self.rundir.path} "
                                      f"opens after fit's first batch (commands apply from then on)")
        else:
            self._open_and_start()
        self._in_fit = True
        self._hook_train_function()

    def _check_same_model(self) -> None:
        signature = model_signature(self.model)
        if signature["sha"] != self._signature["sha"]:
            raise RunDirError(f"this PandaCallback already belongs to the run of model {self._signature['name']!r}; "
                              f"give model {signature['name']!r} its own PandaCallback")

    def _open_and_start(self) -> bool:
        """Open the run (its first checkpoint needs the model's and optimizer's variables), then obey it."""
        if not self.optimizer.built and self.model.trainable_variables:
            self.optimizer.build(self.model.trainable_variables)  # slots exist before the first checkpoint
        self._signature = model_signature(self.model)
        if self.internals and self._probe_data is not None and self._probe is None:
            x_val, y_val = self._probe_data
            shape = self.model.output_shape if self.model.built else None
            n_classes = shape[-1] if isinstance(shape, tuple) else None
            self._probe = internals_lib.Probe(np.asarray(x_val), np.asarray(y_val), int(n_classes or np.max(y_val) + 1))
        reopened = self._open_run(self._planned)
        self.autopilot.opened(reopened)
        self._start()
        return reopened

    def _start(self) -> None:
        steering = self.steering
        if self._planned:
            steering.epochs = steering.epoch + self._planned
        if self.tensorboard and steering.tb is None:
            from trainer.reports.tensorboard import TensorBoardLog

            steering.tb = TensorBoardLog(self.rundir.path)
        self._journal_lr_changes()  # user code between fits
        steering.inbox.start()
        steering.start_heartbeat()
        steering.begin()
        steering.handle_commands()  # commands sent before fit started (a pause waits here)

    def on_epoch_begin(self, epoch, logs=None):
        if self._idle:
            return
        self._journal_lr_changes()
        now_ = time.perf_counter()
        if self._mark is None:  # the first epoch of this fit: end-to-end time starts here
            self._mark, self.steering.paused_seconds = now_, 0.0
        self._epoch_started, self._training_ended, self._trained_samples = now_, None, None
        self._paused_at_start = self._paused_at_end = self.steering.paused_seconds
        self._batches_in_epoch, self._calls = 0, 0
        self._base_step, self._base_batch, self._next_batch = self.steering.step, 0, 0
        self._epoch_step0 = self.steering.step
        self._means: dict[int, float] = {}
        self._in_epoch = True
        self._skip = 0
        self._last_logs, self._lr_batch = None, None

    def on_test_begin(self, logs=None):
        if self._idle:
            return
        self._end_finder(EPOCH_END)  # before validation, so it measures the restored model
        if self._in_epoch and self._training_ended is None:
            self._training_ended = time.perf_counter()  # fit's validation starts: the step-rate clock stops
            self._paused_at_end = self.steering.paused_seconds  # a pause from here on is validation's, not training's
            self._trained_samples = self._samples_seen()  # before evaluate resets the shared loss tracker

    def on_test_batch_begin(self, batch, logs=None):
        if self._idle:
            return
        # fit's validation pass: commands are still applied between its batches
        steering = self.steering
        if self._in_epoch and self._opened and (steering.inbox.ready.is_set() or steering.state in WAITING_STATES):
            steering.handle_commands()

    def on_epoch_end(self, epoch, logs=None):
        if self._idle:
            return
        self._end_finder(EPOCH_END)
        self._journal_lr_changes()
        steering = self.steering
        logs = dict(logs or {})
        self._in_epoch = False
        if self._cut_short or self._batches_in_epoch == 0:
            return  # a stop cut the epoch short, or a rewind left nothing of it: no record, as panda train does
        ended = time.perf_counter()
        steering.step = int(self.optimizer.iterations.numpy())  # once an epoch, exact whatever fit did
        # the training window: a pause in fit's validation pass lies outside it
        paused = (self._paused_at_end if self._training_ended is not None else steering.paused_seconds)
        seconds = (self._training_ended or ended) - self._epoch_started - (paused - self._paused_at_start)
        loss, val_loss = as_float(logs.get("loss")), as_float(logs.get("val_loss"))
        for what, value in (("training", loss), ("validation", val_loss)):
            if value is not None and not math.isfinite(value):
                if not self.autopilot.diverged(f"the {what} loss became {value}"):  # the autopilot goes on
                    steering.diverge(f"the {what} loss became {value}")
                    steering.handle_commands()
                return
        samples = self._trained_samples if self._training_ended is not None else self._samples_seen()
        samples = samples or self._samples_from_steps()
        every = max(1, math.ceil(self._batches_in_epoch / BATCH_SAMPLES_PER_EPOCH))
        first_step = self._base_step - self._base_batch + 1
        losses = batch_losses(self._means, self._base_batch, self.batch_size, samples)
        batch_records = [BatchRecord(steering.epoch + 1, first_step + b, value if math.isfinite(value) else None,
                                     steering.branch)
                         for k, (b, value) in enumerate(losses) if k % every == 0]
        wall = ended - self._mark - steering.paused_seconds
        record = EpochRecord(
            epoch=steering.epoch + 1, branch=steering.branch, step=steering.step, lr=self._lr_used(),
            beta=self.hparams()["beta"], batch_size=self.batch_size,
            loss=loss, accuracy=accuracy_of(logs), val_loss=val_loss, val_accuracy=accuracy_of(logs, "val_"),
            grad_norm=None, epoch_seconds=seconds,
            samples_per_second=samples / seconds if samples and seconds > 0 else None,
            wall_seconds=wall, wall_samples_per_second=samples / wall if samples and wall > 0 else None,
            time=now(), logs={k: as_float(v) for k, v in logs.items()},
            # find_lr trained on none of these batches of fit's data; the numbers are the others'
            explored_batches=self._skip or None,
        )
        committed = steering.commit_epoch(record, batch_records, self.checkpoint_every)
        self._mark, steering.paused_seconds = ended, 0.0  # the commit's own time counts in the next epoch
        if self._internals_cadence is not None and self._internals_cadence.due(steering.epoch):
            self._internals_cadence.timed(lambda: steering.append_internals(internals_lib.measure(
                self.model, self._probe, epoch=steering.epoch, step=steering.step, branch=steering.branch)))
        steering.say(f"epoch {steering.epoch}  loss {loss:.4f}" + (f"  val_loss {val_loss:.4f}" if val_loss is not None else ""))
        self.autopilot.epoch_end(committed, [b.to_json() for b in batch_records])  # applies advice when on
        if steering.inbox.ready.is_set() or steering.state in WAITING_STATES:
            steering.handle_commands()
        if steering.stop_requested:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self._idle:
            return
        self._end_finder("fit ended")
        self._journal_lr_changes()  # another callback's change at the last epoch's end
        if not self._opened:  # fit ran no batch: an unbuilt model's run never opened
            return self.close()
        try:
            if self.steering.stop_requested:
                self.steering.stop_with_checkpoint()
            else:
                self.steering.finish("completed")
        finally:
            self.close()

    def close(self) -> None:
        """Stop the heartbeat and the command watcher (``on_train_end`` does; call it if ``fit`` raised)."""
        steering = self.steering
        self._end_finder("fit ended")  # fit raised during a find_lr: the state is put back all the same
        self._unhook_train_function()
        steering.end_heartbeat()
        if steering.inbox is not None:
            steering.inbox.stop()
        if steering.tb is not None:
            steering.tb.flush()
        if steering.state in LIVE_STATES and self._opened:
            steering.fail("model.fit ended without finishing the run")
        if self._run_lock is not None:
            self._run_lock.release()
