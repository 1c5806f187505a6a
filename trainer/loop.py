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
import platform
import signal
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import trainer  # noqa: E402
from trainer import commands as cmds  # noqa: E402
from trainer import steering  # noqa: E402
from trainer.checkpoints import CheckpointStore  # noqa: E402
from trainer.data import Dataset, load_dataset, pipeline  # noqa: E402
from trainer.hparams import Hyperparameters  # noqa: E402
from trainer.inbox import CommandInbox  # noqa: E402
from trainer.model import build_model, check_model  # noqa: E402
from trainer.optimizers import make_optimizer  # noqa: E402
from trainer.rundir import (  # noqa: E402
    HEARTBEAT_SECONDS, LIVE_STATES, RunDir, RunDirError, now,
    repair_jsonl_tail,
)

#: At most this many mini-batch losses are logged per epoch.
BATCH_SAMPLES_PER_EPOCH = 50
EVAL_BATCH_SIZE = 1024


@dataclass
class TrainConfig:
    """What a run is asked to do; saved in config.json so ``--resume`` can do it again."""

    hparams: Hyperparameters = field(default_factory=Hyperparameters)
    dataset: str = "digits"
    epochs: int = 30
    seed: int = 0
    pace: float = 0.0
    checkpoint_every: int = 5
    val_split: float = 0.2
    divergence_factor: float = 10.0
    jit: bool | None = None  # XLA-compile the step; None: when a GPU is present, as Keras does
    model: str = "mlp"  # "mlp" or "cnn" (trainer.model.MODELS)
    data_dir: str | None = None  # where tfds: data sets are on disk
    label: str | None = None  # the class column of a .csv data set
    tensorboard: bool = False  # also write TensorBoard event files (RUN/tensorboard/)
    argv: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {**asdict(self), "hparams": self.hparams.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        values["hparams"] = Hyperparameters.from_dict(data.get("hparams", {}))
        return cls(**values)


def _configure_devices() -> list[str]:
    """Let TensorFlow grow GPU memory as needed (the dashboard may share the card)."""
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            pass
    return [d.name.replace("/physical_device:", "") for d in tf.config.list_physical_devices()]


class Trainer(steering.SteeredRun):
    """One run: owns its run directory, model, optimizer and the loop that trains them."""

    # ------------------------------------------------------------------ construction

    def __init__(self, run: RunDir, config: TrainConfig, data: Dataset, verbose: bool = True):
        self._init_steering(run, verbose)
        self.config = config
        self.data = data
        self.hp = Hyperparameters.from_dict(config.hparams.to_dict())
        self.best_loss: float | None = None
        self.lr0, self.lr0_epoch = self.hp.lr, 0  # decay restarts whenever the user sets lr
        self._abort_epoch = False

        keras.utils.set_random_seed(config.seed)
        self.model = build_model(config.model, data.input_shape, data.n_classes, self.hp.layers, self.hp.units,
                                 self.hp.batch_norm, self.hp.dropout)
        if config.tensorboard:
            from trainer.tensorboard import TensorBoardLog

            self._tb = TensorBoardLog(run.path)
        self.optimizer, self.knobs = make_optimizer(self.hp.optimizer, self.hp.lr, self.hp.beta,
                                                    self.hp.beta2, self.hp.epsilon)
        self.optimizer.build(self.model.trainable_variables)
        self.store = CheckpointStore(run, model=self.model, optimizer=self.optimizer)
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
        """A new run at ``run_path``. The data is checked before the folder is made."""
        config.hparams.validate()
        run = RunDir(run_path)
        if run.path.exists():
            raise RunDirError(f"{run.path} already exists; choose another --name")
        data = load_dataset(config.dataset, config.val_split, config.seed, data_dir=config.data_dir, label=config.label)
        check_model(config.model, data.input_shape)
        run.create()
        devices = _configure_devices()
        run.write_config({
            "name": run.name, "created": now(), "trainer": "panda-train", **config.to_dict(), "dataset": data.describe(),
            "dataset_spec": config.dataset,
            "versions": {"panda": trainer.__version__, "python": platform.python_version(),
                         "tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__},
            "devices": devices,
        })
        self = cls(run, config, data, verbose)
        self._write_status()
        self._save("initial")  # a divergence in the first epoch rolls back to here
        self._inbox = CommandInbox(run, lambda: self.step)
        self._event("started", pid=os.getpid(), resumed_from=None, hparams=self._hparams())
        return self

    @classmethod
    def resume(cls, run_path: Path | str, verbose: bool = True, epochs: int | None = None) -> "Trainer":
        """Continue a stopped or killed run from its newest checkpoint."""
        run = RunDir(run_path).require()
        saved = run.read_config()
        status = run.read_status() or {}
        if run.liveness(status) in LIVE_STATES:
            raise RunDirError(f"{run.path} is still training (pid {status.get('pid')}); stop it first")
        if saved.get("trainer") == "keras-callback":
            raise RunDirError(f"{run.path} was made by PandaCallback in a Keras model.fit; continue it there "
                              f"with PandaCallback({str(run.path)!r}, resume=True)")
        config = TrainConfig.from_dict({**saved, "dataset": saved.get("dataset_spec", "digits")})
        if epochs is not None:
            config.epochs = epochs
        for path in (run.metrics_path, run.batches_path, run.events_path):
            repair_jsonl_tail(path)
        data = load_dataset(config.dataset, config.val_split, config.seed, data_dir=config.data_dir, label=config.label)
        _configure_devices()
        self = cls(run, config, data, verbose)
        meta = self.store.latest()
        if meta is None:
            raise RunDirError(f"{run.path} has no checkpoint to resume from")
        self._restore(meta)
        events = run.read_events()
        self._restore_hparams(events, meta)
        line = self._history_after_crash(meta)
        finite = [r["loss"] for r in line if isinstance(r.get("loss"), (int, float))]
        self.best_loss = min(finite) if finite else None
        answered, bad_lines = steering.answered_in(events)
        self._inbox = CommandInbox(run, lambda: self.step, answered, bad_lines)
        self._event("started", pid=os.getpid(), resumed_from=meta["name"], hparams=self._hparams())
        self._say(f"resuming {run.path} from {meta['name']} (epoch {self.epoch}, step {self.step})")
        return self

    def _restore_hparams(self, events: list[dict], meta: dict) -> None:
        """The hyperparameters in force when the process ended: the journal's last word."""
        latest = meta.get("hparams") or {}
        for event in events:
            if isinstance(event.get("hparams"), dict):
                latest = event["hparams"]
        current = self.hp.to_dict()
        current.update({k: latest[k] for k in ("lr", "beta", "batch_size") if k in latest})
        self.hp = Hyperparameters.from_dict(current)
        self.lr0 = latest.get("lr0", self.hp.lr)
        self.lr0_epoch = latest.get("lr0_epoch", self.epoch)
        self._apply_knobs()

    # ------------------------------------------------------------------ journal and status

    def _hparams(self) -> dict:
        return {**self.hp.to_dict(), "lr0": self.lr0, "lr0_epoch": self.lr0_epoch}

    @property
    def epochs(self) -> int:
        return self.config.epochs

    # ------------------------------------------------------------------ knobs and checkpoints

    def _apply_knobs(self) -> None:
        self.knobs.lr.assign(self.hp.lr)
        if self.knobs.beta is not None and self.hp.beta is not None:
            self.knobs.beta.assign(self.hp.beta)

    def _restore(self, meta: dict) -> None:
        self.store.restore(meta)
        self.epoch, self.step, self.branch = meta["epoch"], meta["step"], meta.get("branch", 0)
        self.latest_checkpoint = meta["name"]
        self._apply_knobs()  # the checkpoint holds old hyperparameters; the user's current ones win

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

    def _rewind_to(self, meta: dict) -> None:
        """Restore ``meta`` on a new branch; the epoch in progress is dropped."""
        self._restore(meta)
        self.branch = self._next_branch()
        self.last_metrics = meta.get("metrics")
        self._abort_epoch = True

    # ------------------------------------------------------------------ commands

    def _do_set_lr(self, value: float):
        self.hp.lr = self.lr0 = value
        self.lr0_epoch = self.epoch
        self.knobs.lr.assign(value)
        self._say(f"learning rate -> {value:g} at step {self.step}")

    def _do_scale_lr(self, factor: float):
        self._do_set_lr(cmds.check_lr(self.hp.lr * factor))

    def _do_set_beta(self, value: float):
        if self.knobs.beta is None:
            raise cmds.CommandError(f"optimizer {self.hp.optimizer} has no beta")
        self.hp.beta = value
        self.knobs.beta.assign(value)

    def _do_set_batch_size(self, value: int):
        self.hp.batch_size = value  # the next epoch builds its pipeline with it

    def _do_checkpoint(self, _):
        loss = float(self._acc["loss_sum"].numpy() / max(self._acc["count"].numpy(), 1.0))
        reason = self._divergence(loss) if self._acc["count"].numpy() else None
        if reason is not None:
            self._diverge(reason)
            raise cmds.CommandError(f"not saved: {reason}")
        return super()._do_checkpoint(None)

    # ------------------------------------------------------------------ the loop

    def _train_dataset(self):
        if self._train_ds_batch != self.hp.batch_size:
            self._train_ds = pipeline(self.data.x_train, self.data.y_train, self.hp.batch_size,
                                      self.config.seed, shuffle=True)
            self._train_ds_batch = self.hp.batch_size
        return self._train_ds

    def _run_epoch(self) -> dict | None:
        """Train one epoch; returns its record, or ``None`` if a command cut it short."""
        for v in self._acc.values():
            v.assign(0.0)
        n = len(self.data.x_train)
        steps = math.ceil(n / self.hp.batch_size)
        every = max(1, math.ceil(steps / BATCH_SAMPLES_PER_EPOCH))
        samples = []
        iterator = iter(self._train_dataset())
        ready = self._inbox.ready
        train_step = self.train_step
        self._paused_seconds = 0.0
        start = time.perf_counter()
        for i in range(steps):
            if ready.is_set():
                self._handle_commands()
                if self._abort_epoch or self._stop_requested:
                    return None
            loss = train_step(iterator)
            self.step += 1
            if i % every == 0:
                samples.append((self.step, loss))
        stats = {k: float(v.numpy()) for k, v in self._acc.items()}  # waits for the device once
        seconds = time.perf_counter() - start - self._paused_seconds
        batch_records = [{"epoch": self.epoch + 1, "step": s, "loss": float(l.numpy()), "branch": self.branch} for s, l in samples]
        return {
            "epoch": self.epoch + 1, "branch": self.branch, "step": self.step,
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
        batches = record.pop("_batches")
        val_loss, val_accuracy = self._evaluate() if len(self.data.x_val) else (None, None)
        reason = self._divergence(record["loss"], val_loss)
        if reason is not None:
            self._diverge(reason)
            return
        record.update(val_loss=val_loss, val_accuracy=val_accuracy, time=now())
        record = self._commit_epoch(record, batches, self.config.checkpoint_every)
        self.best_loss = record["loss"] if self.best_loss is None else min(self.best_loss, record["loss"])
        self._say(
            f"epoch {self.epoch:>3}/{self.config.epochs}  loss {record['loss']:.4f}  acc {record['accuracy']:.4f}"
            + (f"  val_loss {val_loss:.4f}  val_acc {val_accuracy:.4f}" if val_loss is not None else "")
            + f"  lr {self.hp.lr:.3g}  {record['samples_per_second'] or 0:,.0f} samples/s"
        )
        decayed = self.hp.decayed_lr(self.lr0, self.epoch - self.lr0_epoch)
        if decayed != self.hp.lr:
            self.hp.lr = decayed
            self.knobs.lr.assign(decayed)

    def _wait_for_pace(self, epoch_started: float) -> None:
        """Hold the epoch to at least ``pace`` seconds, obeying commands meanwhile."""
        deadline = epoch_started + self.config.pace
        while not self._abort_epoch and not self._stop_requested:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if self._inbox.wait(min(left, HEARTBEAT_SECONDS)):
                self._handle_commands()

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def on_signal(signum, frame):
            self._stop_requested = "signal"
            self._inbox.wake()

        self._previous_handlers = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}

    def _restore_signal_handlers(self) -> None:
        for signum, handler in getattr(self, "_previous_handlers", {}).items():
            signal.signal(signum, handler)

    def run(self) -> str:
        """Train until done, stopped or failed; returns the final state."""
        self._install_signal_handlers()
        self._inbox.start()
        self._start_heartbeat()
        try:
            self._set_state("running")
            self._say(f"training {self.rundir.path} on {self.data.name} ({len(self.data.x_train)} train / "
                      f"{len(self.data.x_val)} val), {self.config.epochs} epochs")
            self._handle_commands()
            while self.epoch < self.config.epochs and not self._stop_requested:
                self._abort_epoch = False
                started = time.monotonic()
                record = self._run_epoch()
                if record is not None:
                    self._finish_epoch(record)
                if self.config.pace:
                    self._wait_for_pace(started)
                if self._inbox.ready.is_set() or self.state in ("paused", "diverged"):
                    self._handle_commands()
            if self._stop_requested:
                self._stop_with_checkpoint()
            else:
                self._finish("completed")
        except Exception as e:
            self._event("failed", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
            self._set_state("failed", f"{type(e).__name__}: {e}")
            print(f"panda: training failed: {type(e).__name__}: {e}", file=sys.stderr)
        finally:
            self._end_heartbeat()
            self._inbox.stop()
            self._restore_signal_handlers()
            if self._tb is not None:
                self._tb.close()
        return self.state
