"""What every Panda trainer does alike when steered: :class:`Steering`, owned by each trainer.

Two trainers write run directories: :class:`trainer.training.loop.Trainer` (``panda train``, its own
loop) and :class:`trainer.keras_callback.callback.PandaCallback` (any Keras ``model.fit``). They differ in how
steps happen and what a hyperparameter change touches, which each says through the small
:class:`Steerable` protocol; everything else — the journal, the ``status.json`` heartbeat,
answering each command exactly once, pause and resume, stop, checkpoints, rewinds, divergence
rollbacks, opening a new run and resuming one after a crash (that durable part in
:mod:`trainer.steering.durability`) — lives here once, so a client (the
dashboard, ``panda ctl``, a sweep) cannot tell the two apart. Pure Python, no TensorFlow.

A command reaches its handler through one explicit table, :meth:`Steering.handlers`, keyed by
the command table (:data:`trainer.contract.commands.TABLE`, which also says which trainers obey it): a
``set_lr`` line in ``commands.jsonl`` is checked by :func:`trainer.steering.steerable.check_command`,
looked up there, and calls the trainer's ``set_lr``, which assigns the ``tf.Variable``. What a
trainer must offer is the :class:`~trainer.steering.steerable.Steerable` protocol (:mod:`trainer.steering.steerable`).

It is one class whose handlers share its state (the durable part already lives apart, in
:mod:`trainer.steering.durability`), so it stays one module.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import deque
from typing import Any, Callable

from trainer.training import adopt as adopting
from trainer.contract import commands as cmds
from trainer.contract import jsonsafe
from trainer.steering import undo
from trainer.steering.durability import RunDurability
from trainer.contract.inbox import CommandInbox, Received
from trainer.contract.records import Status
from trainer.contract.rundir import HEARTBEAT_SECONDS, WAITING_STATES, CheckpointError, RunDir, now
from trainer.steering.steerable import DEFERRED, DuplicateId, Steerable, after_pause, after_resume, check_command

#: At most this many mini-batch losses are logged per epoch, by either trainer.
BATCH_SAMPLES_PER_EPOCH = 50


class Steering(RunDurability):
    """The steering half of a trainer: journal, status, commands, checkpoints, rollbacks, resume.

    The trainer makes one, gives it a :class:`~trainer.training.checkpoints.CheckpointStore` (``store``)
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
        self.ending: str | None = None  # the finished event's reason, once finished
        self.epoch = 0
        self.step = 0
        self.branch = 0
        self.epochs: int | None = None
        self.started = now()
        self.last_metrics: dict | None = None
        self.latest_checkpoint: str | None = None
        self._store = None  # a trainer.training.checkpoints.CheckpointStore, set by the trainer (see store)
        self.inbox: CommandInbox | None = None
        self.tb = None  # a trainer.reports.tensorboard.TensorBoardLog when asked for
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
        self.undo_points: list[dict] = []  # see trainer/steering/undo.py; rebuilt from the journal on reopen
        self.paused_seconds = 0.0  # time spent in handle_commands, kept out of epoch timings
        self.explore_steps = 0  # side-track steps (fork, find_lr) spent so far, for status.json; rebuilt on reopen
        self.hparam_changes = 0  # hyperparameter commands applied by this process (the compiled step absorbed them)
        self.advising = None  # a trainer.steering.advice.Advising, for trainers with an advisor
        self.replay = None  # a trainer.steering.replay.Replayer: commands to apply at given steps
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

        Checked against the command table (:data:`trainer.contract.commands.TABLE`): one handler per command.
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
            "veto": self._veto,
        })

    # ------------------------------------------------------------------ journal and status

    def event(self, event: str, **fields: Any) -> dict:
        return self.rundir.append_event(event, epoch=self.epoch, step=self.step, **fields)

    def status(self) -> Status:
        return Status(
            name=self.rundir.name, state=self.state, epoch=self.epoch, epochs=self.epochs, step=self.current_step(),
            branch=self.branch, pid=os.getpid(), host=socket.gethostname(), heartbeat=now(), started=self.started,
            hparams=self.trainer.hparams(), last=self.last_metrics, message=self.message,
            checkpoint=self.latest_checkpoint, activity=self.activity, ending=self.ending,
            explore_steps=self.explore_steps,
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
        """One line to the terminal; a client's text in it is escaped (:func:`trainer.contract.jsonsafe.say`)."""
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

    def _veto(self, stage: int) -> dict:
        """Put α back to what the autopilot's stage ``stage`` changed (the latest stage only)."""
        planner = getattr(self.advising, "planner", None)
        if planner is None:
            raise cmds.CommandError("veto: the autopilot has made no stage decision in this run")
        lr = planner.veto(stage)  # a CommandError for an unknown or older stage
        self.trainer.set_lr(lr)
        self.event("autopilot_vetoed", stage=stage, lr=lr, command_id=self.current.id if self.current else None)
        self.say(f"autopilot stage {stage} vetoed: α back to {lr:g}")
        return {"stage": stage, "lr": lr}

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
        """Another run's checkpoint, on a new branch (see :mod:`trainer.training.adopt`)."""
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
