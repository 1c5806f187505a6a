"""The training loop: an epoch at a time, steered between any two steps.

The compiled side (:mod:`trainer.training.steps`) runs an epoch's steps in graph calls that a command
interrupts between two steps; this loop handles the commands that arrived, calls the graph again
from where it stopped, evaluates, and hands each finished epoch to :class:`~trainer.steering.core.Steering`
to be made durable. Per step, Python does nothing. Everything the user may change mid-run
(learning rate, beta) is a ``tf.Variable`` changed with ``.assign``, so the step is traced once
for the whole run.

    trainer = Trainer.create("runs/demo", TrainConfig(epochs=5))
    trainer.run()   # -> "finished"

It is one class whose epoch, evaluation and command handling share the trainer's state (the compiled
steps, knobs, snapshot and exploration already live apart), so it stays one module.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from trainer.contract import commands as cmds  # noqa: E402
from trainer.training import internals  # noqa: E402
from trainer.contract import jsonsafe  # noqa: E402
from trainer.steering.advice import Advising  # noqa: E402
from trainer.training.checkpoints import CheckpointStore  # noqa: E402
from trainer.contract.config import TrainConfig  # noqa: E402  (re-exported: ``from trainer.training.loop import TrainConfig``)
from trainer.training.datasets import Dataset, epoch_permutation, load_dataset  # noqa: E402
from trainer.training.devices import configure_devices, configure_threads, run_record  # noqa: E402
from trainer.contract.hparams import Hyperparameters  # noqa: E402
from trainer.training.model import build_model, check_model  # noqa: E402
from trainer.training.optimizers import make_optimizer  # noqa: E402
from trainer.contract.records import BatchRecord, EpochRecord  # noqa: E402
from trainer.contract.rundir import HEARTBEAT_SECONDS, LIVE_STATES, WAITING_STATES, RunDir, RunDirError, now  # noqa: E402
from trainer.contract.runlock import RunLock  # noqa: E402
from trainer.steering.core import BATCH_SAMPLES_PER_EPOCH, Steering  # noqa: E402
from trainer.training.steps import CompiledSteps  # noqa: E402
from trainer.training.train_knobs import TrainKnobs  # noqa: E402
from trainer.training.autopilot_stages import StageAutopilot  # noqa: E402

#: Signals that stop a run cleanly, with a checkpoint (SIGHUP: the terminal went away).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
#: ``config.json``'s ``trainer`` for runs ``panda train`` makes.
TRAINER_NAME = cmds.PANDA_TRAIN


def one_line(error: BaseException) -> str:
    """``Type: message`` on one line (TensorFlow's errors run on with hints over many lines)."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".strip()[:500]


class Trainer(TrainKnobs):
    """One run: owns its run directory, model, optimizer and the loop that trains them.

    Its :class:`~trainer.steering.core.Steering` (``self.steering``) does what every trainer does when
    steered; this class is the :class:`~trainer.steering.steerable.Steerable` side: what a learning-rate
    change or a rewind touches in this loop (:class:`~trainer.training.train_knobs.TrainKnobs`, with the
    divergence policy).
    """

    #: The run's lock (``RUN/.lock``): this trainer is its one writer until :meth:`close`.
    run_lock: RunLock | None = None
    kind = TRAINER_NAME  # which commands it obeys (the command table's trainers)

    # ------------------------------------------------------------------ construction

    def __init__(self, run: RunDir, config: TrainConfig, data: Dataset, verbose: bool = True):
        self.steering = steering = Steering(run, self, verbose=verbose)
        steering.epochs = config.epochs
        self.config = config
        self.data = data
        self.hp = Hyperparameters.from_dict(config.hparams.to_dict())
        self.best_loss: float | None = None
        self.lr0, self.lr0_epoch = self.hp.lr, 0  # decay restarts whenever the user sets lr

        keras.utils.set_random_seed(config.seed)
        self.model = build_model(config.model, data.input_shape, data.n_classes, self.hp.layers, self.hp.units,
                                 self.hp.batch_norm, self.hp.dropout)
        if config.tensorboard:
            from trainer.reports.tensorboard import TensorBoardLog

            steering.tb = TensorBoardLog(run.path)
        self.optimizer, self.knobs = make_optimizer(self.hp.optimizer, self.hp.lr, self.hp.beta,
                                                    self.hp.beta2, self.hp.epsilon)
        self.optimizer.build(self.model.trainable_variables)
        steering.store = CheckpointStore(run, model=self.model, optimizer=self.optimizer)
        jit = config.jit if config.jit is not None else bool(tf.config.list_physical_devices("GPU"))
        self.steps = CompiledSteps(self.model, self.optimizer, data, self.hp.batch_size, jit)
        steering.on_command = self.steps.interrupt  # the running span stops after its step
        self._mark: float | None = None  # when the last epoch's record was handed off (end-to-end timing)
        self._probe = internals.Probe(data.x_val, data.y_val, data.n_classes) if (
            config.internals and len(data.x_val)) else None
        self._internals = internals.Cadence() if config.internals else None
        self.advising = Advising(steering, data.n_classes, self.hp.optimizer, config.autopilot, config.autopilot_method)
        self.autopilot = StageAutopilot(self)  # the lookahead stages (idle unless the autopilot is on with it)
        if config.replay:
            from trainer.steering.replay import Replayer

            steering.replay = Replayer.of_run(config.replay)
            steering.replay_due = steering.replay.due_step()

    @classmethod
    def create(cls, run_path: Path | str, config: TrainConfig, verbose: bool = True) -> "Trainer":
        """A new run at ``run_path``. Everything is checked, and the data loaded, before the folder is made."""
        config.validate()
        configure_threads(config.threads)  # before TensorFlow's first op (the data pipeline)
        run = RunDir(run_path)
        if run.path.exists():
            raise RunDirError(f"{run.path} already exists; choose another --name")
        data = load_dataset(config.dataset, config.val_split, config.seed, data_dir=config.data_dir, label=config.label)
        check_model(config.model, data.input_shape)
        run.create()
        lock = RunLock(run.path).acquire()  # the one writer of this run, until close()
        try:
            self = cls(run, config, data, verbose)
            self.run_lock = lock
            self.steering.open_new(run_record(run.name, TRAINER_NAME, **{
                **config.to_dict(), "dataset": data.describe(), "dataset_spec": config.dataset}))
            if self._probe is not None:
                self.steering.append_internals(self._probe.first_record())
        except BaseException:
            lock.release()
            raise
        return self

    @classmethod
    def resume(cls, run_path: Path | str, verbose: bool = True, epochs: int | None = None) -> "Trainer":
        """Continue a stopped or killed run from its newest checkpoint."""
        run = RunDir(run_path).require()
        lock = RunLock(run.path).acquire()  # before anything is read to be repaired or written; until close()
        try:
            saved = run.read_config()
            status = run.status()
            if run.liveness(status) in LIVE_STATES:
                raise RunDirError(f"{run.path} is still training (pid {status.pid}); stop it first")
            if saved.get("trainer") == cmds.KERAS_CALLBACK:
                raise RunDirError(f"{run.path} was made by PandaCallback in a Keras model.fit; continue it there "
                                  f"with PandaCallback({str(run.path)!r}, resume=True)")
            config = TrainConfig.from_dict({**saved, "dataset": saved.get("dataset_spec", "digits")})
            if epochs is not None:
                config.epochs = epochs
            configure_threads(config.threads)
            data = load_dataset(config.dataset, config.val_split, config.seed, data_dir=config.data_dir, label=config.label)
            configure_devices()
            self = cls(run, config, data, verbose)
            self.run_lock = lock
            line = self.steering.reopen()
            events = run.read_events()
            self.advising.resumed(line, events)
            self.autopilot.resumed(events)
        except BaseException:
            lock.release()
            raise
        finite = [r["loss"] for r in line if isinstance(r.get("loss"), (int, float))]
        self.best_loss = min(finite) if finite else None
        return self

    @property
    def rundir(self) -> RunDir:
        return self.steering.rundir

    def close(self) -> None:
        """Give the run up to another writer (:meth:`run` does at its end; call it for a trainer never run)."""
        if self.run_lock is not None:
            self.run_lock.release()

    # ------------------------------------------------------------------ the loop

    def _run_epoch(self) -> tuple[EpochRecord, float, list[BatchRecord]] | None:
        """Train one epoch; returns its record, samples trained and batch losses, or ``None`` if a command cut it short.

        The steps run in spans of one graph call each (:meth:`CompiledSteps.run_span`); between
        spans, and whenever the inbox interrupts one, Python handles the commands that arrived.
        """
        steering = self.steering
        n = len(self.data.x_train)
        steps = math.ceil(n / self.hp.batch_size)
        every = max(1, math.ceil(steps / BATCH_SAMPLES_PER_EPOCH))
        compiled = self.steps
        # a new order every epoch, the same for a seed and epoch
        compiled.start_epoch(epoch_permutation(n, self.config.seed, steering.epoch + 1), self.hp.batch_size)
        ready = steering.inbox.ready
        base, done = steering.step, 0
        paused_before = steering.paused_seconds
        start = time.perf_counter()
        if self._mark is None:
            self._mark, steering.paused_seconds, paused_before = start, 0.0, 0.0
        steering.live_step = lambda: base + int(compiled.position.numpy())  # the inbox stamps commands with it
        try:
            while done < steps:
                compiled.clear_interrupt()  # before looking: a command arriving from now on interrupts the span
                if ready.is_set() or steering.step == steering.replay_due:
                    steering.handle_commands()
                    if steering.abort_epoch or steering.stop_requested:
                        return None
                stop_at = min(steps, done + compiled.span)
                if steering.replay_due > steering.step:
                    stop_at = min(stop_at, steering.replay_due - base)
                done = compiled.run_span(done, stop_at, every)
                steering.step = base + done
        finally:
            steering.live_step = None
        stats = compiled.read_sums()  # waits for the device once
        seconds = time.perf_counter() - start - (steering.paused_seconds - paused_before)
        epoch, branch = steering.epoch + 1, steering.branch
        losses = compiled.sampled_losses(math.ceil(steps / every))
        batch_records = [BatchRecord(epoch, base + min((k + 1) * every, steps), loss, branch)
                         for k, loss in enumerate(losses)]
        record = EpochRecord(
            epoch=epoch, branch=branch, step=steering.step,
            lr=self.hp.lr, beta=self.hp.beta, batch_size=self.hp.batch_size,
            loss=stats["loss_sum"] / max(stats["count"], 1.0),
            accuracy=stats["correct"] / max(stats["count"], 1.0),
            grad_norm=stats["gnorm_sum"] / max(stats["steps"], 1.0),
            epoch_seconds=seconds, samples_per_second=stats["count"] / seconds if seconds > 0 else None,
        )
        return record, stats["count"], batch_records

    def _evaluate(self) -> tuple[float, float] | None:
        """Validation loss and accuracy; commands are handled between its batches (``None``: a rewind cut it)."""
        steering = self.steering
        ready = steering.inbox.ready
        sums = []
        for start in self.steps.eval_starts():
            if ready.is_set() or steering.step == steering.replay_due:
                steering.handle_commands()
                if steering.abort_epoch:
                    return None
            sums.append(self.steps.eval_step(tf.constant(start, tf.int32)))
        loss_sum = sum(float(l) for l, _ in sums)
        correct = sum(float(c) for _, c in sums)
        n = max(len(self.data.x_val), 1)
        return loss_sum / n, correct / n

    def _finish_epoch(self, record: EpochRecord, samples: float, batches: list[BatchRecord]) -> None:
        steering = self.steering
        val_loss, val_accuracy = None, None
        if len(self.data.x_val):
            evaluated = self._evaluate()
            if evaluated is None:
                return  # a rewind during evaluation dropped this epoch
            val_loss, val_accuracy = evaluated
        reason = self._divergence(record.loss, val_loss)
        if reason is not None:
            if self.advising.autopilot:  # rolls back, lowers α and goes on: no pause for a person
                self.autopilot.diverged(reason)
            else:
                steering.diverge(reason)
            return
        # End to end: from the previous epoch's hand-off to this one's, evaluation and the last
        # checkpoint's snapshot included; time spent paused or waiting for the pace is not.
        handed_off = time.perf_counter()
        wall = handed_off - self._mark - steering.paused_seconds
        record = replace(record, lr=self.hp.lr, beta=self.hp.beta,  # a command during evaluation counts for the end
                         val_loss=val_loss, val_accuracy=val_accuracy, wall_seconds=wall,
                         wall_samples_per_second=samples / wall if wall > 0 else None, time=now())
        record = steering.commit_epoch(record, batches, self.config.checkpoint_every)
        self._mark, steering.paused_seconds = handed_off, 0.0  # the commit's own time counts in the next epoch
        self.best_loss = record["loss"] if self.best_loss is None else min(self.best_loss, record["loss"])
        if self._internals is not None and self._internals.due(steering.epoch):
            self._internals.timed(lambda: steering.append_internals(internals.measure(
                self.model, self._probe, epoch=steering.epoch, step=steering.step, branch=steering.branch,
                tracing={"traces": self.steps.step_on_batch.experimental_get_tracing_count(),
                         "hparam_changes": steering.hparam_changes})))
        steering.say(
            f"epoch {steering.epoch:>3}/{self.config.epochs}  loss {record['loss']:.4f}  acc {record['accuracy']:.4f}"
            + (f"  val_loss {val_loss:.4f}  val_acc {val_accuracy:.4f}" if val_loss is not None else "")
            + f"  lr {self.hp.lr:.3g}  {record['wall_samples_per_second'] or 0:,.0f} samples/s end to end"
        )
        advice = self.advising.epoch_end(record, [batch.to_json() for batch in batches])  # rules autopilot: applies it
        self.autopilot.epoch_end(advice)  # lookahead autopilot: a stage when due, or a finder when not learning
        decayed = self.hp.decayed_lr(self.lr0, steering.epoch - self.lr0_epoch, self.config.epochs - self.lr0_epoch)
        if decayed != self.hp.lr:
            self.hp.lr = decayed
            self.knobs.lr.assign(decayed)

    def _wait_for_pace(self, epoch_started: float) -> None:
        """Hold the epoch to at least ``pace`` seconds, obeying commands meanwhile."""
        steering = self.steering
        deadline = epoch_started + self.config.pace
        waited, before = time.perf_counter(), steering.paused_seconds
        try:
            while not steering.abort_epoch and not steering.stop_requested:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                if steering.inbox.wait(min(left, HEARTBEAT_SECONDS)):
                    steering.handle_commands()
        finally:  # pace waiting is no part of the epoch's wall time (commands handled meanwhile count once)
            steering.paused_seconds += time.perf_counter() - waited - (steering.paused_seconds - before)

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def on_signal(signum, frame):  # a second Ctrl-C lands here too: the stop is already under way
            self.steering.stop_requested = "signal"
            self.steering.inbox.wake()

        self._previous_handlers = {s: signal.signal(s, on_signal) for s in STOP_SIGNALS}

    def _restore_signal_handlers(self) -> None:
        for signum, handler in getattr(self, "_previous_handlers", {}).items():
            signal.signal(signum, handler)

    def run(self) -> str:
        """Train until done, stopped or failed; returns the final state."""
        steering = self.steering
        self._install_signal_handlers()
        steering.inbox.start()
        steering.start_heartbeat()
        try:
            steering.begin()
            steering.say(f"training {steering.rundir.path} on {self.data.name} ({len(self.data.x_train)} train / "
                         f"{len(self.data.x_val)} val), {self.config.epochs} epochs")
            steering.handle_commands()
            while steering.epoch < self.config.epochs and not steering.stop_requested:
                steering.abort_epoch = False
                started = time.monotonic()
                trained = self._run_epoch()
                if trained is not None:
                    self._finish_epoch(*trained)
                if self.config.pace:
                    self._wait_for_pace(started)
                if steering.inbox.ready.is_set() or steering.state in WAITING_STATES or \
                        steering.step == steering.replay_due:
                    steering.handle_commands()
            if steering.stop_requested:
                steering.stop_with_checkpoint()
            else:
                steering.finish("completed")
        except Exception as e:
            error = one_line(e)
            try:
                steering.fail(error, traceback.format_exc())
            except Exception:  # the folder is gone, read-only or full: stderr is all that is left
                steering.state = "failed"
            jsonsafe.say(f"panda: training failed: {error}", sys.stderr)
        finally:
            steering.end_heartbeat()
            steering.inbox.stop()
            self._restore_signal_handlers()
            if steering.tb is not None:
                steering.tb.close()
            self.close()
        return steering.state
