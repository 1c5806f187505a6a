"""The training loop: a ``tf.GradientTape`` step compiled once, steered between steps.

Per step, Python does only what control needs: pull a batch inside the compiled function, check
one flag for new commands, count the step. Metrics accumulate on the device in variables and are
read once per epoch. Everything the user may change mid-run (learning rate, beta) is a
``tf.Variable`` changed with ``.assign``, so the step is traced once for the whole run.

    trainer = Trainer.create("runs/demo", TrainConfig(epochs=5))
    trainer.run()   # -> "finished"
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from trainer import commands as cmds  # noqa: E402
from trainer.checkpoints import CheckpointStore  # noqa: E402
from trainer.config import TrainConfig  # noqa: E402  (re-exported: ``from trainer.loop import TrainConfig``)
from trainer.data import Dataset, load_dataset, pipeline  # noqa: E402
from trainer.devices import configure_devices, configure_threads, run_record  # noqa: E402
from trainer.hparams import Hyperparameters  # noqa: E402
from trainer.model import build_model, check_model  # noqa: E402
from trainer.optimizers import make_optimizer  # noqa: E402
from trainer.rundir import HEARTBEAT_SECONDS, LIVE_STATES, RunDir, RunDirError, now  # noqa: E402
from trainer.runlock import RunLock  # noqa: E402
from trainer.steering import BATCH_SAMPLES_PER_EPOCH, Steering  # noqa: E402

EVAL_BATCH_SIZE = 1024
#: Signals that stop a run cleanly, with a checkpoint (SIGHUP: the terminal went away).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
#: ``config.json``'s ``trainer`` for runs ``panda train`` makes.
TRAINER_NAME = "panda-train"


def one_line(error: BaseException) -> str:
    """``Type: message`` on one line (TensorFlow's errors run on with hints over many lines)."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".strip()[:500]


class Trainer:
    """One run: owns its run directory, model, optimizer and the loop that trains them.

    Its :class:`~trainer.steering.Steering` (``self.steering``) does what every trainer does when
    steered; this class is the :class:`~trainer.steering.Steerable` side: what a learning-rate
    change or a rewind touches in this loop.
    """

    #: The run's lock (``RUN/.lock``): this trainer is its one writer until :meth:`close`.
    run_lock: RunLock | None = None

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
            from trainer.tensorboard import TensorBoardLog

            steering.tb = TensorBoardLog(run.path)
        self.optimizer, self.knobs = make_optimizer(self.hp.optimizer, self.hp.lr, self.hp.beta,
                                                    self.hp.beta2, self.hp.epsilon)
        self.optimizer.build(self.model.trainable_variables)
        steering.store = CheckpointStore(run, model=self.model, optimizer=self.optimizer)
        self._build_steps()
        self._val_ds = pipeline(data.x_val, data.y_val, EVAL_BATCH_SIZE, None, shuffle=False)
        self._train_ds = None
        self._train_ds_batch = None

    def _build_steps(self) -> None:
        model, optimizer = self.model, self.optimizer
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        acc = {k: tf.Variable(0.0, trainable=False, name=k) for k in ("loss_sum", "correct", "count", "gnorm_sum", "steps")}
        self._acc = acc
        jit = self.config.jit if self.config.jit is not None else bool(tf.config.list_physical_devices("GPU"))

        @tf.function(jit_compile=jit)
        def step_on_batch(x, y):
            with tf.GradientTape() as tape:
                logits = model(x, training=True)
                loss = loss_fn(y, logits)
                if model.losses:
                    loss_total = loss + tf.add_n(model.losses)
                else:
                    loss_total = loss
            grads = tape.gradient(loss_total, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            n = tf.cast(tf.shape(y)[0], tf.float32)
            acc["loss_sum"].assign_add(loss * n)
            hits = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), y), tf.float32)
            acc["correct"].assign_add(tf.reduce_sum(hits))
            acc["count"].assign_add(n)
            acc["gnorm_sum"].assign_add(tf.linalg.global_norm(grads))
            acc["steps"].assign_add(1.0)
            return loss

        @tf.function
        def train_step(iterator):
            """One optimizer step on the iterator's next batch; the batch never visits Python."""
            x, y = next(iterator)
            return step_on_batch(x, y)

        @tf.function
        def eval_step(x, y):
            logits = model(x, training=False)  # batch norm uses its running statistics
            loss = loss_fn(y, logits)
            n = tf.cast(tf.shape(y)[0], tf.float32)
            hits = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), y), tf.float32)
            return loss * n, tf.reduce_sum(hits)

        self.train_step = train_step
        self.eval_step = eval_step

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
            if saved.get("trainer") == "keras-callback":
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

    # ------------------------------------------------------------------ the Steerable side

    def hparams(self) -> dict:
        return {**self.hp.to_dict(), "lr0": self.lr0, "lr0_epoch": self.lr0_epoch}

    def restore(self, meta: dict) -> None:
        self.steering.store.restore(meta)
        self._apply_knobs()  # the checkpoint holds old hyperparameters; the user's current ones win

    def restore_hparams(self, latest: dict) -> None:
        self.hp = Hyperparameters.from_dict({**self.hp.to_dict(), **latest})
        self.lr0 = latest.get("lr0", self.hp.lr)
        self.lr0_epoch = latest.get("lr0_epoch", self.steering.epoch)
        self._apply_knobs()

    def after_rewind(self, meta: dict) -> None:
        pass  # the loop sees steering.abort_epoch and drops the epoch in progress

    def refuse_checkpoint(self) -> str | None:
        count = self._acc["count"].numpy()
        if not count:
            return None
        return self._divergence(float(self._acc["loss_sum"].numpy() / max(count, 1.0)))

    def set_lr(self, value: float) -> None:
        self.hp.lr = self.lr0 = value
        self.lr0_epoch = self.steering.epoch
        self.knobs.lr.assign(value)
        self.steering.say(f"learning rate -> {value:g} at step {self.steering.step}")

    def scale_lr(self, factor: float) -> None:
        self.set_lr(cmds.check_lr(self.hp.lr * factor))

    def set_beta(self, value: float) -> None:
        if self.knobs.beta is None:
            raise cmds.CommandError(f"optimizer {self.hp.optimizer} has no beta")
        self.hp.beta = value
        self.knobs.beta.assign(value)

    def set_batch_size(self, value: int) -> None:
        self.hp.batch_size = value  # the next epoch builds its pipeline with it

    # ------------------------------------------------------------------ knobs and divergence

    def _apply_knobs(self) -> None:
        self.knobs.lr.assign(self.hp.lr)
        if self.knobs.beta is not None and self.hp.beta is not None:
            self.knobs.beta.assign(self.hp.beta)

    def _divergence(self, loss: float, val_loss: float | None = None) -> str | None:
        """Why the current state must not be kept, or ``None`` when it is fine."""
        if not math.isfinite(loss):
            return f"the training loss became {loss}"
        if val_loss is not None and not math.isfinite(val_loss):
            return f"the validation loss became {val_loss}"
        # Near-zero best losses make ordinary noise look like a 10x jump, so the reference never
        # drops below a tenth of a uniform guess's loss, ln(classes): with the default factor of
        # 10, a run is diverged once it does worse than guessing.
        chance = math.log(self.data.n_classes)
        reference = max(self.best_loss if self.best_loss is not None else chance, chance / 10)
        limit = self.config.divergence_factor * reference
        if loss > limit:
            return f"the training loss {loss:.4g} is over {self.config.divergence_factor:g}x the reference ({reference:.4g}, the best so far or chance/10)"
        return None

    # ------------------------------------------------------------------ the loop

    def _train_dataset(self):
        if self._train_ds_batch != self.hp.batch_size:
            self._train_ds = pipeline(self.data.x_train, self.data.y_train, self.hp.batch_size,
                                      self.config.seed, shuffle=True)
            self._train_ds_batch = self.hp.batch_size
        return self._train_ds

    def _run_epoch(self) -> dict | None:
        """Train one epoch; returns its record, or ``None`` if a command cut it short."""
        steering = self.steering
        for v in self._acc.values():
            v.assign(0.0)
        n = len(self.data.x_train)
        steps = math.ceil(n / self.hp.batch_size)
        every = max(1, math.ceil(steps / BATCH_SAMPLES_PER_EPOCH))
        samples = []
        iterator = iter(self._train_dataset())
        ready = steering.inbox.ready
        train_step = self.train_step
        steering.paused_seconds = 0.0
        start = time.perf_counter()
        for i in range(steps):
            if ready.is_set():
                steering.handle_commands()
                if steering.abort_epoch or steering.stop_requested:
                    return None
            loss = train_step(iterator)
            steering.step += 1
            if i % every == 0:
                samples.append((steering.step, loss))
        stats = {k: float(v.numpy()) for k, v in self._acc.items()}  # waits for the device once
        seconds = time.perf_counter() - start - steering.paused_seconds
        epoch, branch = steering.epoch + 1, steering.branch
        batch_records = [{"epoch": epoch, "step": s, "loss": float(l.numpy()), "branch": branch} for s, l in samples]
        return {
            "epoch": epoch, "branch": branch, "step": steering.step,
            "lr": self.hp.lr, "beta": self.hp.beta, "batch_size": self.hp.batch_size,
            "loss": stats["loss_sum"] / max(stats["count"], 1.0),
            "accuracy": stats["correct"] / max(stats["count"], 1.0),
            "grad_norm": stats["gnorm_sum"] / max(stats["steps"], 1.0),
            "epoch_seconds": seconds, "samples_per_second": stats["count"] / seconds if seconds > 0 else None,
            "_batches": batch_records,
        }

    def _evaluate(self) -> tuple[float, float]:
        loss_sum = correct = 0.0
        for x, y in self._val_ds:
            l, c = self.eval_step(x, y)
            loss_sum += float(l)
            correct += float(c)
        n = max(len(self.data.x_val), 1)
        return loss_sum / n, correct / n

    def _finish_epoch(self, record: dict) -> None:
        steering = self.steering
        batches = record.pop("_batches")
        val_loss, val_accuracy = self._evaluate() if len(self.data.x_val) else (None, None)
        reason = self._divergence(record["loss"], val_loss)
        if reason is not None:
            steering.diverge(reason)
            return
        record.update(val_loss=val_loss, val_accuracy=val_accuracy, time=now())
        record = steering.commit_epoch(record, batches, self.config.checkpoint_every)
        self.best_loss = record["loss"] if self.best_loss is None else min(self.best_loss, record["loss"])
        steering.say(
            f"epoch {steering.epoch:>3}/{self.config.epochs}  loss {record['loss']:.4f}  acc {record['accuracy']:.4f}"
            + (f"  val_loss {val_loss:.4f}  val_acc {val_accuracy:.4f}" if val_loss is not None else "")
            + f"  lr {self.hp.lr:.3g}  {record['samples_per_second'] or 0:,.0f} samples/s"
        )
        decayed = self.hp.decayed_lr(self.lr0, steering.epoch - self.lr0_epoch)
        if decayed != self.hp.lr:
            self.hp.lr = decayed
            self.knobs.lr.assign(decayed)

    def _wait_for_pace(self, epoch_started: float) -> None:
        """Hold the epoch to at least ``pace`` seconds, obeying commands meanwhile."""
        steering = self.steering
        deadline = epoch_started + self.config.pace
        while not steering.abort_epoch and not steering.stop_requested:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if steering.inbox.wait(min(left, HEARTBEAT_SECONDS)):
                steering.handle_commands()

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
                record = self._run_epoch()
                if record is not None:
                    self._finish_epoch(record)
                if self.config.pace:
                    self._wait_for_pace(started)
                if steering.inbox.ready.is_set() or steering.state in ("paused", "diverged"):
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
            print(f"panda: training failed: {error}", file=sys.stderr)
        finally:
            steering.end_heartbeat()
            steering.inbox.stop()
            self._restore_signal_handlers()
            if steering.tb is not None:
                steering.tb.close()
            self.close()
        return steering.state
