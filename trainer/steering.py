"""What every Panda trainer does alike when steered: :class:`Steering`, owned by each trainer.

Two trainers write run directories: :class:`trainer.loop.Trainer` (``panda train``, its own
loop) and :class:`trainer.callback.PandaCallback` (any Keras ``model.fit``). They differ in how
steps happen and what a hyperparameter change touches, which each says through the small
:class:`Steerable` protocol; everything else — the journal, the ``status.json`` heartbeat,
answering each command exactly once, pause and resume, stop, checkpoints, rewinds, divergence
rollbacks, opening a new run and resuming one after a crash — lives here once, so a client (the
dashboard, ``panda ctl``, a sweep) cannot tell the two apart. Pure Python, no TensorFlow.

A command reaches its handler through one explicit table, :meth:`Steering.handlers`, keyed by
the command table (:data:`trainer.commands.TABLE`, which also says which trainers obey it): a
``set_lr`` line in ``commands.jsonl`` is checked by :func:`trainer.steerable.check_command`,
looked up there, and calls the trainer's ``set_lr``, which assigns the ``tf.Variable``. What a
trainer must offer is the :class:`~trainer.steerable.Steerable` protocol (:mod:`trainer.steerable`).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import deque
from typing import Any, Callable

from trainer import adopt as adopting
from trainer import commands as cmds
from trainer import jsonsafe
from trainer import undo
from trainer.inbox import CommandInbox, Received
from trainer.journal import answered_in, last_hparams, state_at_end
from trainer.outcome import FINISH_MESSAGES
from trainer.records import BatchRecord, EpochRecord, Status
from trainer.rundir import (
    HEARTBEAT_SECONDS, WAITING_STATES, CheckpointError, RunDir, RunDirError, append_jsonl, current_line, now,
    repair_jsonl_tail,
)
from trainer.steerable import DEFERRED, DuplicateId, Steerable, after_pause, after_resume, check_command

#: At most this many mini-batch losses are logged per epoch, by either trainer.
BATCH_SAMPLES_PER_EPOCH = 50


class Steering:
    """The steering half of a trainer: journal, status, commands, checkpoints, rollbacks, resume.

    The trainer makes one, gives it a :class:`~trainer.checkpoints.CheckpointStore` (``store``)
    and the planned number of epochs (``epochs``), then calls :meth:`open_new` or
    :meth:`reopen`, and :meth:`handle_commands` whenever ``inbox.ready`` is set.
    """

    def __init__(self, rundir: RunDir, trainer: Steerable, *, verbose: bool = True, say_prefix: str = ""):
        self.rundir = rundir
        self.trainer = trainer
        self.verbose = verbose
        self.say_prefix = say_prefix
        self.state = "starting"
        self.message: str | None = None
        self.epoch = 0
        self.step = 0
        self.branch = 0
        self.epochs: int | None = None
        self.started = now()
        self.last_metrics: dict | None = None
        self.latest_checkpoint: str | None = None
        self._store = None  # a trainer.checkpoints.CheckpointStore, set by the trainer (see store)
        self.inbox: CommandInbox | None = None
        self.tb = None  # a trainer.tensorboard.TensorBoardLog when asked for
        self.stop_requested: str | None = None  # "command" or "signal"
        self.abort_epoch = False  # a rewind or rollback dropped the epoch in progress
        self.seen_ids: set[str] = set()
        self.current: cmds.Command | None = None  # the command being applied (find_lr and fork record its id)
        self.current_item: Received | None = None  # what it arrived as (a DEFERRED answer is given to it later)
        #: Commands received but not yet handled, in file order (an exploration collects them meanwhile).
        self.pending: deque[Received] = deque()
        self._pending_changed = False
        self._stop_queued = False
        #: What a long command is doing now, for ``status.json`` (``{"kind", "done", "total", ...}``), or ``None``.
        self.activity: dict | None = None
        self.undo_points: list[dict] = []  # see trainer/undo.py; rebuilt from the journal on reopen
        self.paused_seconds = 0.0  # time spent in handle_commands, kept out of epoch timings
        self.hparam_changes = 0  # hyperparameter commands applied by this process (the compiled step absorbed them)
        self.advising = None  # a trainer.advising.Advising, for trainers with an advisor
        self.replay = None  # a trainer.replay.Replayer: commands to apply at given steps
        self.replay_due = -1  # the step of its next command (the loop checks it next to the inbox flag)
        #: While a trainer runs many steps in one call, how to read the step reached (``step`` lags).
        self.live_step: Callable[[], int] | None = None
        #: Called (on the inbox's thread) when a command arrives: a trainer running steps in a graph stops them.
        self.on_command: Callable[[], None] = lambda: None
        self._status_lock = threading.Lock()
        self._stop_heartbeat = threading.Event()
        self._heartbeat_thread: threading.Thread | None = None

    def handlers(self) -> dict[str, Callable[[Any], dict | None]]:
        """Every command and what carries it out: the one route from a command to its effect.

        Checked against the command table (:data:`trainer.commands.TABLE`): one handler per command.
        """
        t = self.trainer
        return cmds.handler_table({
            "set_lr": t.set_lr,
            "scale_lr": t.scale_lr,
            "set_beta": t.set_beta,
            "set_batch_size": t.set_batch_size,
            "pause": self._pause,
            "resume": self._resume,
            "stop": self._stop,
            "checkpoint": self._checkpoint,
            "rewind": self._rewind,
            "set_autopilot": self._set_autopilot,
            "find_lr": t.find_lr,
            "fork": t.fork,
            "undo": lambda _: undo.undo(self),
            "adopt": self._adopt,
            "note": self._note,
        })

    @property
    def store(self):
        return self._store

    @store.setter
    def store(self, store) -> None:
        """The trainer's checkpoint store; a checkpoint it finds unusable is journaled, never fatal."""
        self._store = store
        if store is not None:
            store.on_skip = self._checkpoint_skipped

    def _checkpoint_skipped(self, name: str, reason: str) -> None:
        self.event("checkpoint_skipped", checkpoint=name, reason=reason)

    # ------------------------------------------------------------------ opening a run

    def open_new(self, config: dict) -> None:
        """A new run: write ``config.json`` and the first status, checkpoint epoch 0, start the inbox."""
        self.rundir.write_config(config)
        self.write_status()
        self.save("initial")  # a divergence in the first epoch rolls back to here
        self.inbox = self._new_inbox()
        self.event("started", pid=os.getpid(), resumed_from=None, hparams=self.trainer.hparams())

    def reopen(self) -> list[dict]:
        """Continue after a stop or crash: newest checkpoint, the journal's hyperparameters, every epoch once.

        Returns the run's current history (the epochs of :func:`~trainer.rundir.current_line`).
        """
        run = self.rundir
        for path in (run.metrics_path, run.batches_path, run.events_path, run.internals_path):
            repair_jsonl_tail(path)
        for name, reason in self.store.skipped:  # found unusable when the store opened
            self._checkpoint_skipped(name, reason)
        meta = self.store.latest()
        if meta is None:
            raise RunDirError(f"{run.path} has no checkpoint to resume from")
        self.trainer.restore(meta)
        self._moved_to(meta)
        events = run.read_events()
        self.trainer.restore_hparams(last_hparams(events, meta))
        line = self._history_after_crash(meta)
        answered, keys = answered_in(events)
        self.seen_ids |= answered
        self.undo_points = undo.undo_points(events)
        self.inbox = self._new_inbox(keys)
        waiting = state_at_end(events)
        self.event("started", pid=os.getpid(), resumed_from=meta["name"], hparams=self.trainer.hparams(),
                   resumed_paused=waiting is not None)
        self.say(f"resuming {run.path} from {meta['name']} (epoch {self.epoch}, step {self.step})")
        if waiting is not None:
            self.state = waiting
            self.message = f"resumed {waiting}: it was {waiting} when the last process ended; resume when ready"
            self.event("paused", command_id=None, reason="resumed paused")
            self.say(self.message)
        return line

    def reattach(self) -> None:
        """The same process trains the same run again (``fit`` called twice): a fresh inbox, a journal line."""
        answered, keys = answered_in(self.rundir.read_events())
        self.seen_ids |= answered
        self.inbox = self._new_inbox(keys)
        self.event("started", pid=os.getpid(), resumed_from=self.latest_checkpoint, hparams=self.trainer.hparams())

    def _new_inbox(self, answered: set = frozenset()) -> CommandInbox:
        return CommandInbox(self.rundir, self.current_step, answered, on_ready=lambda: self.on_command())

    def current_step(self) -> int:
        """The step training has reached, also in the middle of a graph call that runs many steps."""
        live = self.live_step
        return live() if live is not None else self.step

    def _moved_to(self, meta: dict) -> None:
        self.epoch, self.step, self.branch = meta["epoch"], meta["step"], meta.get("branch", 0)
        self.latest_checkpoint = meta["name"]

    # ------------------------------------------------------------------ journal and status

    def event(self, event: str, **fields: Any) -> dict:
        return self.rundir.append_event(event, epoch=self.epoch, step=self.step, **fields)

    def status(self) -> Status:
        return Status(
            name=self.rundir.name, state=self.state, epoch=self.epoch, epochs=self.epochs, step=self.current_step(),
            branch=self.branch, pid=os.getpid(), host=socket.gethostname(), heartbeat=now(), started=self.started,
            hparams=self.trainer.hparams(), last=self.last_metrics, message=self.message,
            checkpoint=self.latest_checkpoint, activity=self.activity,
        )

    def write_status(self) -> None:
        with self._status_lock:
            self.rundir.write_status(self.status())

    def set_state(self, state: str, message: str | None = None) -> None:
        self.state, self.message = state, message
        self.write_status()

    def begin(self) -> None:
        """Training starts: ``running``, unless :meth:`reopen` found the run waiting paused or diverged."""
        if self.state in WAITING_STATES:
            self.set_state(self.state, self.message)
        else:
            self.set_state("running")

    def say(self, text: str) -> None:
        """One line to the terminal; a client's text in it is escaped (:func:`trainer.jsonsafe.say`)."""
        if self.verbose:
            jsonsafe.say(f"{self.say_prefix}{text}")

    def start_heartbeat(self) -> None:
        """Refresh ``status.json`` every second from a thread, and re-read the command file."""
        self._stop_heartbeat.clear()
        self._heartbeat_thread = threading.Thread(target=self._heartbeat, name="panda-heartbeat", daemon=True)
        self._heartbeat_thread.start()

    def end_heartbeat(self) -> None:
        self._stop_heartbeat.set()
        if self._heartbeat_thread is not None:
            self._heartbeat_thread.join(timeout=5)
            self._heartbeat_thread = None

    def _heartbeat(self) -> None:
        while not self._stop_heartbeat.wait(HEARTBEAT_SECONDS):
            try:
                self.write_status()
                self.inbox.poll()  # a safety net under the file watcher
            except Exception:  # the folder may be gone, a variable mid-update: try again next beat
                pass

    # ------------------------------------------------------------------ commands

    def handle_commands(self) -> None:
        """Apply what arrived; while paused, wait on the inbox (no CPU) and keep obeying."""
        started = time.perf_counter()
        if self.replay is not None:
            self.replay.inject(self)
        self._collect()
        self._handle_pending()
        while self.state in WAITING_STATES and not self.stop_requested:
            if self.inbox.wait(HEARTBEAT_SECONDS):
                self._collect()
                self._handle_pending()
        self.paused_seconds += time.perf_counter() - started

    def _collect(self) -> None:
        items = self.inbox.drain()
        if items:
            self.pending.extend(items)
            self._pending_changed = True

    def _handle_pending(self) -> None:
        """Handle the queued commands in order (those a handler's exploration collects too)."""
        while self.pending:
            item = self.pending.popleft()
            self._pending_changed = True
            self._handle(item)

    def interruption(self) -> str | None:
        """Why a long command (``find_lr``, ``fork``) must give up now, or ``None`` to go on.

        A stop signal, or a valid ``stop`` line among the commands received so far; those are
        queued to be handled, in order, once the long command has been answered. Cheap enough to
        call between any two steps: a flag and an attribute when nothing arrived.
        """
        if self.stop_requested:
            return "Ctrl-C or SIGTERM" if self.stop_requested == "signal" else "a stop"
        if self.inbox.ready.is_set():
            self._collect()
        if self._pending_changed:
            self._pending_changed = False
            self._stop_queued = any(self._is_stop(item) for item in self.pending)
        return "a stop command" if self._stop_queued else None

    def _is_stop(self, item: Received) -> bool:
        """Whether ``item`` is a ``stop`` that will be applied (valid, with an id not answered before)."""
        if item.record is None or item.record.get("cmd") != "stop" or item.id in self.seen_ids:
            return False
        try:
            cmds.validate(item.record)
        except Exception:  # an invalid stop is rejected in its turn, and interrupts nothing
            return False
        return True

    def _handle(self, item: Received) -> None:
        try:
            command = self.current = check_command(item, self.seen_ids)
            self.current_item = item
            if not cmds.supported(command.cmd, self.trainer.kind):
                raise cmds.unsupported(command.cmd)
            point = undo.point_before(self, item.record.get("source"), command)
            applied = self.handlers()[command.cmd](command.value)
            if applied is DEFERRED:  # the trainer answers it once it is done
                self.write_status()
                return
            if point is not None and undo.changed(command.cmd, point["hparams"], self.trainer.hparams()):
                self.undo_points.append(point)
                applied = {**(applied or {}), "undo_point": point}
        except DuplicateId as e:
            self.answer(item, False, str(e), duplicate_id=item.id)
            return
        except (cmds.CommandError, CheckpointError) as e:
            self.answer(item, False, str(e))
            return
        if command.cmd in cmds.HPARAM_COMMANDS:
            self.hparam_changes += 1
        self.write_status()  # before the answer: a client that sees the answer finds the status current
        self.answer(item, True, **(applied or {}))
        if command.cmd in ("pause", "resume"):
            self.event("paused" if command.cmd == "pause" else "resumed", command_id=command.id)

    def answer(self, item: Received, ok: bool, reason: str | None = None, **extra: Any) -> dict:
        """The ``applied`` or ``rejected`` event for ``item`` (the fields of docs/run-directory.md).

        A rejection with ``duplicate_id`` in ``extra`` carries no ``command_id``: that id already
        has its one answer.
        """
        info = CommandInbox.describe(item)
        stamps = {"received_time": item.time, "received_step": item.step}
        if ok:
            return self.event("applied", **info, hparams=self.trainer.hparams(), **stamps, **extra)
        if "duplicate_id" in extra:
            info["command_id"] = None
        self.say(f"rejected {info['cmd']} {info['value'] if info['value'] is not None else ''}: {reason}")
        return self.event("rejected", **info, reason=reason, **stamps, **extra)

    def _pause(self, _) -> None:
        self.state = after_pause(self.state)
        self.say(f"paused at epoch {self.epoch}, step {self.step}")

    def _resume(self, _) -> None:
        self.state, self.message = after_resume(self.state), None
        self.say(f"resumed at step {self.step}")

    def _set_autopilot(self, on: bool) -> dict:
        if self.advising is None:  # panda train without one (its tests)
            raise cmds.unsupported("set_autopilot")
        return self.advising.set_autopilot(on)

    def _stop(self, _) -> None:
        self.stop_requested = "command"

    def _checkpoint(self, _) -> dict:
        reason = self.trainer.refuse_checkpoint()
        if reason is not None:
            self.diverge(reason)
            raise cmds.CommandError(f"not saved: {reason}")
        meta = self.save("command")
        self.event("checkpoint_saved", checkpoint=meta["name"], reason="command")
        return {"checkpoint": meta["name"]}

    def _rewind(self, spec: str) -> dict:
        meta = self.store.find(spec)
        before = {"from_epoch": self.epoch, "from_step": self.step}  # where it happened, for a replay
        self.rewind_to(meta)
        self.event("rewound", checkpoint=meta["name"], to_epoch=meta["epoch"], branch=self.branch)
        self.say(f"rewound to {meta['name']} (epoch {meta['epoch']}), branch {self.branch}")
        return {"checkpoint": meta["name"], "to_epoch": meta["epoch"], "branch": self.branch, **before}

    def _note(self, note: dict) -> dict:
        """A client's line in the journal (a PBT source hears that another trial copied it)."""
        self.event("note", command_id=self.current.id if self.current else None, **note)
        return {}

    def _adopt(self, spec: dict) -> dict:
        """Another run's checkpoint, on a new branch (see :mod:`trainer.adopt`)."""
        source = adopting.find_source(spec, self.rundir)
        before = {"from_epoch": self.epoch, "from_step": self.step, "from_branch": self.branch}
        self.trainer.adopt(source, spec)  # refuses before changing anything
        self.branch = self._next_branch()
        self.abort_epoch = True
        meta = self.save("adopted")
        hparams = self.trainer.hparams()
        info = {"source_run": str(spec["run"]), "source_checkpoint": source["name"],
                "source_epoch": source.get("epoch"), "checkpoint": meta["name"], "branch": self.branch,
                "lr": hparams.get("lr"), "beta": hparams.get("beta")}
        self.event("adopted", command_id=self.current.id if self.current else None, **info, **before)
        self.say(f"adopted {source['name']} of {spec['run']} (its epoch {source.get('epoch')}), branch {self.branch}")
        return {**info, **before}

    # ------------------------------------------------------------------ checkpoints and endings

    def save(self, reason: str, metrics: dict | None = None) -> dict:
        meta = self.store.save(epoch=self.epoch, step=self.step, branch=self.branch, reason=reason,
                               hparams=self.trainer.hparams(), metrics=metrics)
        self.latest_checkpoint = meta["name"]
        return meta

    def rewind_to(self, meta: dict) -> None:
        """Restore ``meta`` on a new branch of the history; the epoch in progress is dropped."""
        self.trainer.restore(meta)
        self._moved_to(meta)
        self.branch = self._next_branch()
        self.last_metrics = meta.get("metrics")
        self.abort_epoch = True
        self.trainer.after_rewind(meta)

    def append_internals(self, record: dict) -> None:
        """One line of ``internals.jsonl`` (see :mod:`trainer.internals`); the epoch is already durable."""
        append_jsonl(self.rundir.internals_path, {**record, "time": now()}, sync=False)

    def commit_epoch(self, epoch: EpochRecord, batches: list[BatchRecord], keep_every: int) -> dict:
        """Make a finished epoch durable, in the order ``--resume`` relies on, off the critical path.

        The state is snapshotted into the epoch's checkpoint now; on the store's committer thread
        the checkpoint (which holds the record) becomes durable before the record is appended, so
        a crash in between loses nothing: ``--resume`` appends the record from the checkpoint. A
        crash before the checkpoint is durable loses the epoch, which ``--resume`` trains again.
        Training goes on meanwhile; whatever reads checkpoints (rewind, divergence, stop) waits for
        the commit first (:meth:`CheckpointStore.flush`).
        """
        self.epoch, record = epoch.epoch, epoch.to_json()
        lines = [batch.to_json() for batch in batches]

        def durable(meta: dict) -> None:  # on the committer thread, once the checkpoint is durable
            done = meta["metrics"]
            append_jsonl(self.rundir.batches_path, *lines, sync=False)
            append_jsonl(self.rundir.metrics_path, done)
            self.store.prune(keep_every)
            with self._status_lock:
                self.last_metrics = done
                self.latest_checkpoint = meta["name"]
            self.write_status()

        meta = self.store.save_async(epoch=self.epoch, step=self.step, branch=self.branch, reason="epoch",
                                     hparams=self.trainer.hparams(), metrics=record, then=durable)
        if self.tb is not None:
            self.tb.epoch(meta["metrics"], lines)
        return meta["metrics"]

    def flush(self) -> None:
        """Wait for the epochs being committed (their checkpoints and records); raise a failure."""
        if self.store is not None:
            self.store.flush()

    def _history_after_crash(self, meta: dict) -> list[dict]:
        """The run's current history when resuming from checkpoint ``meta``.

        A crash between an epoch's checkpoint and its record leaves the record only inside the
        checkpoint (see :meth:`commit_epoch`): it is appended now, so every epoch is there once.
        """
        line = current_line(self.rundir.read_metrics())
        record = meta.get("metrics")
        if record and (not line or (line[-1]["epoch"], line[-1].get("branch", 0)) != (meta["epoch"], meta["branch"])):
            append_jsonl(self.rundir.metrics_path, record)
            line.append(record)
        self.last_metrics = line[-1] if line else None
        return line

    def _next_branch(self) -> int:
        """A branch number no checkpoint or record has used yet."""
        highest = max([m.get("branch", 0) for m in self.rundir.list_checkpoints()] + [self.branch])
        for record in self.rundir.read_metrics():
            branch = record.get("branch", 0)
            highest = max(highest, branch if isinstance(branch, int) else 0)
        return highest + 1

    def diverge(self, reason: str) -> None:
        """Roll back to the last good checkpoint, then wait paused for the user."""
        lr = self.trainer.hparams().get("lr")
        meta = self.store.latest()
        if meta is None:  # every checkpoint was found unusable (and journaled): wait for the user as it is
            self.abort_epoch = True
            self.event("diverged", reason=reason, checkpoint=None, branch=self.branch, lr=lr)
            self.set_state("diverged", f"{reason}; no usable checkpoint to roll back to. Lower the learning rate, "
                                       f"then resume.")
            return
        self.rewind_to(meta)
        self.event("diverged", reason=reason, checkpoint=meta["name"], branch=self.branch, lr=lr)
        self.say(f"diverged: {reason}; rolled back to {meta['name']} (epoch {self.epoch}); paused — "
                 f"lower the learning rate and resume")
        self.set_state("diverged", f"{reason}; rolled back to {meta['name']}. Lower the learning rate, then resume.")

    def stop_with_checkpoint(self) -> None:
        """The end of a run asked to stop: checkpoint, then finish (``--resume`` continues it)."""
        self.set_state("stopping")
        meta = self.save("stop")
        self.event("checkpoint_saved", checkpoint=meta["name"], reason="stop")
        self.finish("stopped" if self.stop_requested == "command" else "interrupted")

    def finish(self, reason: str) -> None:
        """Answer what is still queued, journal the end, and say so."""
        self.flush()  # every epoch's record lands before ``finished``
        self._collect()
        while self.pending:
            self.answer(self.pending.popleft(), False, f"the run {reason} before this command was applied")
        self.event("finished", reason=reason)
        self.set_state("finished", FINISH_MESSAGES.get(reason))
        self.say(f"finished ({reason}) at epoch {self.epoch}, step {self.step}: {self.rundir.path}")

    def fail(self, error: str, traceback: str | None = None) -> None:
        """Journal and show a failure (the run can still be resumed from its last checkpoint)."""
        self.event("failed", error=error, traceback=traceback)
        self.set_state("failed", error)
