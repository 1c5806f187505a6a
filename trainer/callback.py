"""``PandaCallback``: babysit any compiled Keras 3 model's ``fit`` through a Panda run directory.

::

    from trainer import PandaCallback

    model.fit(x, y, epochs=20, validation_split=0.2, callbacks=[PandaCallback("runs/my-run")])

The run directory is the same contract ``panda train`` writes (docs/run-directory.md): config,
status heartbeat, one metrics record per epoch, sampled batch losses, the journal, checkpoints of
the model and its optimizer. The dashboard, ``panda ctl``, ``panda status`` and ``panda export``
read it like any other run, and the same commands steer it, applied at batch boundaries:

* ``set_lr`` / ``scale_lr`` assign ``model.optimizer.learning_rate`` (rejected, with the reason,
  when the optimizer was compiled with a ``LearningRateSchedule``: the schedule owns the rate);
* ``pause`` blocks ``fit`` at the next batch boundary, waiting on the command file (no CPU),
  and ``resume`` lets it go on; ``stop`` checkpoints and sets ``model.stop_training``;
* ``checkpoint`` saves now; ``rewind`` restores a checkpoint's weights and optimizer state (the
  epoch Keras is in goes on from there, recorded as the checkpoint's epoch + 1 on a new branch);
* ``find_lr`` runs the range test on fit's own next batches and puts the exact state back
  (:mod:`trainer.callback_explore`; fit's data position cannot be put back); ``fork`` is rejected;
* ``set_beta`` and ``set_batch_size`` are rejected: a Keras optimizer's betas are constants in
  its compiled step, and ``fit``'s batch size belongs to its data.

A non-finite loss rolls the model back to the last checkpoint and pauses (state ``diverged``),
as ``panda train`` does; lower the learning rate and ``resume``.

Which run directory (the rule for "a run that belongs to another run"):

* a path that does not exist, or an empty folder: a new run;
* an existing run without ``resume=True``: refused (:class:`RunDirError`), nothing is touched;
* ``resume=True``: continues the run — only one made by ``PandaCallback`` (not ``panda train``),
  not live in another process, and made for the same model: the same layer types, weight shapes
  and optimizer (:func:`model_signature`). It restores the newest checkpoint and the journal's
  learning rate, and counts epochs on from there. ``resume=True`` on a new path starts a run;
* calling ``fit`` again with the same callback object continues its run.

Errors are raised in ``on_train_begin``, before the first batch. Only the TensorFlow backend is
supported (checkpoints are ``tf.train.Checkpoint``).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from trainer import commands as cmds  # noqa: E402
from trainer import internals as internals_lib  # noqa: E402
from trainer.callback_explore import EPOCH_END, CallbackFinder  # noqa: E402
from trainer.callback_logs import accuracy_of, as_float, batch_losses, model_signature  # noqa: E402
from trainer.checkpoints import CheckpointError, CheckpointStore  # noqa: E402
from trainer.devices import run_record  # noqa: E402
from trainer.rundir import LIVE_STATES, RunDir, RunDirError, now  # noqa: E402
from trainer.runlock import RunLock  # noqa: E402
from trainer.steering import BATCH_SAMPLES_PER_EPOCH, Steering  # noqa: E402

#: ``config.json``'s ``trainer`` for runs this callback makes.
TRAINER_NAME = "keras-callback"

class PandaCallback(keras.callbacks.Callback):
    """Turns ``model.fit`` into a Panda run at ``run_path`` (see the module's documentation).

    Args:
        run_path: the run directory (``runs/my-run``).
        resume: continue the existing run at ``run_path`` instead of refusing it.
        tensorboard: also write TensorBoard event files to ``run_path/tensorboard/``.
        internals: record ``internals.jsonl`` once per epoch (:mod:`trainer.internals`).
        probe: ``(x_val, y_val)`` to measure internals on (batch statistics, softmax of probe examples,
            gradients). Keras does not hand callbacks the validation data, so without it only what the
            model itself holds is recorded: BN moving statistics, γ and β, weight norms.
        checkpoint_every: keep the end-of-epoch checkpoint of every N-th epoch (and the last 3).
        dataset: a name for the data, shown in config.json (default: ``model.fit``).
        verbose: print a line per command and per epoch.
    """

    #: The run's lock (``RUN/.lock``), held from opening the run until :meth:`close`.
    _run_lock: RunLock | None = None

    def __init__(self, run_path: Path | str, *, resume: bool = False, tensorboard: bool = False,
                 checkpoint_every: int = 5, dataset: str | None = None, verbose: bool = False,
                 internals: bool = True, probe: tuple | None = None):
        super().__init__()
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
        self._schedule_internals = internals_lib.Schedule() if internals else None
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
        self.finder = CallbackFinder(self)
        self._check_path()

    @property
    def rundir(self) -> RunDir:
        return self.steering.rundir

    # ------------------------------------------------------------------ which run

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

    # ------------------------------------------------------------------ hyperparameters

    @property
    def optimizer(self):
        return self.model.optimizer

    def _schedule(self):
        lr = getattr(self.optimizer, "_learning_rate", None)
        return lr if isinstance(lr, keras.optimizers.schedules.LearningRateSchedule) else None

    def _lr(self) -> float | None:
        lr = as_float(self.optimizer.learning_rate)
        return float(f"{lr:.7g}") if lr is not None and math.isfinite(lr) else lr  # float32 -> the value set

    def hparams(self) -> dict:
        opt = self.optimizer
        beta = next((getattr(opt, k) for k in ("beta_1", "momentum", "rho") if hasattr(opt, k)), None)
        schedule = self._schedule()
        return {
            "optimizer": type(opt).__name__.lower(), "lr": self._lr(), "beta": as_float(beta),
            "beta2": as_float(getattr(opt, "beta_2", None)), "epsilon": as_float(getattr(opt, "epsilon", None)),
            "batch_size": self.batch_size, "decay": type(schedule).__name__ if schedule else "none",
            "decay_rate": None, "layers": None, "units": None, "batch_norm": None, "dropout": None,
        }

    # ------------------------------------------------------------------ opening the run

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
        input_shape = getattr(self.model, "input_shape", None)
        output_shape = getattr(self.model, "output_shape", None)
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
            tensorboard=self.tensorboard, internals=self.internals))
        if self._probe is not None:
            self.steering.append_internals(self._probe.first_record())

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

    # ------------------------------------------------------------------ the Steerable side

    def restore(self, meta: dict) -> None:
        """Weights and optimizer state from ``meta``; the learning rate in force stays."""
        lr = self._lr()
        try:
            self.steering.store.restore(meta)
        except (AssertionError, ValueError) as e:
            raise CheckpointError(str(e)) from None
        if lr is not None and self._schedule() is None:
            self.optimizer.learning_rate.assign(lr)

    def restore_hparams(self, latest: dict) -> None:
        if latest.get("lr") is not None and self._schedule() is None:
            self.optimizer.learning_rate.assign(latest["lr"])

    def after_rewind(self, meta: dict) -> None:
        self.steering.step = int(self.optimizer.iterations.numpy())
        self.model.reset_metrics()  # the epoch's running means start again from the restored weights
        # the batches counted from here on start at the restored step and from a fresh running mean
        self._base_step, self._base_batch = self.steering.step, self._next_batch
        self._batches_in_epoch, self._means = 0, {}

    def refuse_checkpoint(self) -> str | None:
        """The newest batch's running loss, read now (batches keep it on the device): not finite, no save."""
        latest = self._means.get(max(self._means)) if self._in_epoch and self._means else None
        value = as_float(latest) if latest is not None else None
        return f"the training loss became {value}" if value is not None and not math.isfinite(value) else None

    def set_lr(self, value: float) -> None:
        schedule = self._schedule()
        if schedule is not None:
            raise cmds.CommandError(
                f"the optimizer's learning rate follows a {type(schedule).__name__} schedule, which cannot be "
                f"steered; compile with a float learning rate to steer it")
        self.optimizer.learning_rate.assign(value)
        self.steering.say(f"learning rate -> {value:g} at step {self.steering.step}")

    def scale_lr(self, factor: float) -> None:
        if self._schedule() is not None:
            self.set_lr(0.0)  # raises with the reason
        self.set_lr(cmds.check_lr(self._lr() * factor))

    def set_beta(self, value: float) -> None:
        raise cmds.CommandError("set_beta is not supported for a Keras model.fit: the optimizer's beta is a "
                                "constant in its compiled step")

    def set_batch_size(self, value: int) -> None:
        raise cmds.CommandError("set_batch_size is not supported for a Keras model.fit: the batch size belongs to "
                                "the data given to fit")

    def find_lr(self, spec: dict):
        return self.finder.start(spec)  # runs on fit's next batches (trainer/callback_explore.py); answered then

    def fork(self, spec: dict) -> dict:
        raise cmds.CommandError("fork is not supported in a Keras model.fit (PandaCallback): the callback never "
                                "holds the training or validation data to train and measure candidates on")

    def adopt(self, source: dict, spec: dict) -> None:
        raise cmds.CommandError("adopt is not supported in a Keras model.fit (PandaCallback): the model is the "
                                "caller's, and another run's weights may not fit it; run it with panda train")

    # ------------------------------------------------------------------ Keras hooks

    def on_train_begin(self, logs=None):
        if keras.backend.backend() != "tensorflow":
            raise RuntimeError(f"PandaCallback needs Keras's TensorFlow backend, not {keras.backend.backend()!r}")
        if getattr(self.model, "optimizer", None) is None:
            raise RuntimeError("PandaCallback needs a compiled model: call model.compile(...) before fit")
        if not self.optimizer.built:
            self.optimizer.build(self.model.trainable_variables)  # slots exist before the first checkpoint
        signature = model_signature(self.model)
        if self._opened and signature["sha"] != self._signature["sha"]:
            raise RunDirError(f"this PandaCallback already belongs to the run of model {self._signature['name']!r}; "
                              f"give model {signature['name']!r} its own PandaCallback")
        self._signature = signature
        steering = self.steering
        steering.stop_requested, self._cut_short, self._mark = None, False, None
        planned = self.params.get("epochs") if isinstance(self.params, dict) else None
        if self.internals and self._probe_data is not None and self._probe is None:
            x_val, y_val = self._probe_data
            n_classes = self.model.output_shape[-1] if isinstance(self.model.output_shape, tuple) else None
            self._probe = internals_lib.Probe(np.asarray(x_val), np.asarray(y_val), int(n_classes or np.max(y_val) + 1))
        if not self._opened:
            steering.step = int(self.optimizer.iterations.numpy())
            self._check_path()  # the path may have changed since the callback was made
            if self.rundir.exists() and self.resume:
                self._reopen()
            else:
                steering.epochs = steering.epoch + planned if planned else None
                self._create()
            self._opened = True
        else:  # fit called again with the same callback: the run goes on
            self._run_lock.acquire()  # close() gave it up at the end of the last fit
            steering.reattach()
        if planned:
            steering.epochs = steering.epoch + planned
        if self.tensorboard and steering.tb is None:
            from trainer.tensorboard import TensorBoardLog

            steering.tb = TensorBoardLog(self.rundir.path)
        self._steps_per_call = max(1, int(getattr(self.model, "steps_per_execution", 1) or 1))
        self._in_fit = True
        self._hook_train_function()
        steering.inbox.start()
        steering.start_heartbeat()
        steering.begin()
        steering.handle_commands()  # commands sent before fit started (a pause waits here)

    def on_epoch_begin(self, epoch, logs=None):
        now_ = time.perf_counter()
        if self._mark is None:  # the first epoch of this fit: end-to-end time starts here
            self._mark, self.steering.paused_seconds = now_, 0.0
        self._epoch_started, self._training_ended, self._trained_samples = now_, None, None
        self._paused_at_start = self.steering.paused_seconds
        self._batches_in_epoch, self._calls = 0, 0
        self._base_step, self._base_batch, self._next_batch = self.steering.step, 0, 0
        self._means: dict[int, float] = {}
        self._in_epoch = True
        self._skip = 0

    # ------------------------------------------------------------------ between batches

    def _hook_train_function(self) -> None:
        """Wrap the function ``fit`` calls once per batch, so Panda runs between batches.

        The wrapper costs one Python call a batch and keeps the batch's logs as the tensors
        Keras returned (read once, at the end of the epoch); batch hooks would cost more Python per
        batch. It is taken off at the end of ``fit`` (:meth:`on_train_end`, :meth:`close`) and
        passes batches straight through whenever this callback is not in a ``fit``.
        """
        model = self.model
        inner = model.train_function
        if getattr(inner, "panda_callback", None) is self:
            return

        def train_function(iterator):
            if not self._in_fit:
                return inner(iterator)
            if self.finder.active:
                self.finder.batch_begin()
            logs = inner(iterator)
            self._after_batch(logs)
            return logs

        train_function.panda_callback, train_function.panda_inner = self, inner
        model.train_function = train_function

    def _unhook_train_function(self) -> None:
        self._in_fit = False
        model = self.model
        hooked = getattr(model, "train_function", None) if model is not None else None
        if getattr(hooked, "panda_callback", None) is self:
            model.train_function = hooked.panda_inner

    def _after_batch(self, logs) -> None:
        """A batch ended: count it, keep its loss (a tensor), apply the commands that arrived."""
        # Only Python here: the step is counted from the calls (no device read), and the running
        # mean of the loss is kept as the tensor Keras returned. Batch losses, the sampled records
        # and the examples seen are worked out once, at the end of the epoch.
        steering = self.steering
        self._calls += 1
        batch = self._calls * self._steps_per_call - 1  # the index Keras gives batch hooks (end_step)
        if self.finder.active and self._finder_batch(batch, logs):
            return
        batch -= self._skip  # the finder's batches are no batches of the run
        steering.step = self._base_step + batch + 1 - self._base_batch
        self._next_batch = batch + 1
        self._batches_in_epoch += 1
        mean = logs.get("loss") if isinstance(logs, dict) else None
        if self.batch_size is None:
            self.batch_size = self._samples_seen()  # the first batch of the run: one device read, once
        if mean is not None:
            self._means[batch] = mean
        if steering.inbox.ready.is_set() or steering.state in ("paused", "diverged"):
            steering.handle_commands()
        if steering.stop_requested:
            self._cut_short = True
            self.model.stop_training = True

    def _finder_batch(self, batch, logs) -> bool:
        """A batch of the learning-rate finder: its loss goes to the test, nothing else is counted."""
        steps = self.params.get("steps") if isinstance(self.params, dict) else None
        self.finder.batch_end(logs, last_of_epoch=steps is not None and batch + 1 >= steps)
        self._skip += 1
        steering = self.steering
        if not self.finder.active and (steering.inbox.ready.is_set() or steering.state in ("paused", "diverged")):
            steering.handle_commands()  # the test is over: a run paused before it waits again here
            if steering.stop_requested:  # the stop that abandoned it
                self._cut_short = True
                self.model.stop_training = True
        return True

    def _end_finder(self, why: str) -> None:
        """Fit's training batches ran out (or fit ended) with a finder under way: finish it with what it has."""
        if self.finder.active and (self.finder.test.losses or why != EPOCH_END):
            self.finder.finish(why)

    def on_test_begin(self, logs=None):
        self._end_finder(EPOCH_END)  # before validation, so it measures the restored model
        if self._in_epoch and self._training_ended is None:
            self._training_ended = time.perf_counter()  # fit's validation starts: the step-rate clock stops
            self._trained_samples = self._samples_seen()  # before evaluate resets the shared loss tracker

    def on_test_batch_begin(self, batch, logs=None):
        # fit's validation pass: commands are still applied between its batches
        steering = self.steering
        if self._in_epoch and (steering.inbox.ready.is_set() or steering.state in ("paused", "diverged")):
            steering.handle_commands()

    def on_epoch_end(self, epoch, logs=None):
        self._end_finder(EPOCH_END)
        steering = self.steering
        logs = dict(logs or {})
        self._in_epoch = False
        self._last_epoch_batches = max(1, self._batches_in_epoch)
        if self._cut_short or self._batches_in_epoch == 0:
            return  # a stop cut the epoch short, or a rewind left nothing of it: no record, as panda train does
        ended = time.perf_counter()
        steering.step = int(self.optimizer.iterations.numpy())  # once an epoch, exact whatever fit did
        seconds = (self._training_ended or ended) - self._epoch_started - (steering.paused_seconds - self._paused_at_start)
        loss, val_loss = as_float(logs.get("loss")), as_float(logs.get("val_loss"))
        for what, value in (("training", loss), ("validation", val_loss)):
            if value is not None and not math.isfinite(value):
                steering.diverge(f"the {what} loss became {value}")
                steering.handle_commands()
                return
        samples = self._trained_samples if self._training_ended is not None else self._samples_seen()
        every = max(1, math.ceil(self._batches_in_epoch / BATCH_SAMPLES_PER_EPOCH))
        first_step = self._base_step - self._base_batch + 1
        losses = batch_losses(self._means, self._base_batch, self.batch_size, samples)
        batch_records = [{"epoch": steering.epoch + 1, "step": first_step + b,
                          "loss": value if math.isfinite(value) else None, "branch": steering.branch}
                         for k, (b, value) in enumerate(losses) if k % every == 0]
        wall = ended - self._mark - steering.paused_seconds
        record = {
            "epoch": steering.epoch + 1, "branch": steering.branch, "step": steering.step, "lr": self._lr(),
            "beta": self.hparams()["beta"], "batch_size": self.batch_size,
            "loss": loss, "accuracy": accuracy_of(logs), "val_loss": val_loss, "val_accuracy": accuracy_of(logs, "val_"),
            "grad_norm": None, "epoch_seconds": seconds,
            "samples_per_second": samples / seconds if samples and seconds > 0 else None,
            "wall_seconds": wall, "wall_samples_per_second": samples / wall if samples and wall > 0 else None,
            "time": now(), "logs": {k: as_float(v) for k, v in logs.items()},
        }
        steering.commit_epoch(record, batch_records, self.checkpoint_every)
        self._mark, steering.paused_seconds = ended, 0.0  # the commit's own time counts in the next epoch
        if self._schedule_internals is not None and self._schedule_internals.due(steering.epoch):
            self._schedule_internals.timed(lambda: steering.append_internals(internals_lib.measure(
                self.model, self._probe, epoch=steering.epoch, step=steering.step, branch=steering.branch)))
        steering.say(f"epoch {steering.epoch}  loss {loss:.4f}" + (f"  val_loss {val_loss:.4f}" if val_loss is not None else ""))
        if steering.inbox.ready.is_set() or steering.state in ("paused", "diverged"):
            steering.handle_commands()
        if steering.stop_requested:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        self._end_finder("fit ended")
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

    def _samples_seen(self) -> int | None:
        """Examples trained on this epoch: Keras weights its loss mean by batch size."""
        tracker = getattr(self.model, "_loss_tracker", None)
        count = getattr(tracker, "count", None)
        try:
            return int(round(float(count.numpy()))) if count is not None else None
        except Exception:
            return None
