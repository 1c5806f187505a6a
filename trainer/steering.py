"""What every Panda trainer does alike when steered: :class:`SteeredRun`.

Two trainers write run directories: :class:`trainer.loop.Trainer` (``panda train``, its own
loop) and :class:`trainer.callback.PandaCallback` (any Keras ``model.fit``). They differ in how
steps happen and what a hyperparameter change touches; everything else — the journal, the
``status.json`` heartbeat, answering each command exactly once, pause and resume, stop,
checkpoints, rewinds and divergence rollbacks — lives here once, so a client (the dashboard,
``panda ctl``, a sweep) cannot tell the two apart. Pure Python, no TensorFlow.

>>> from trainer.inbox import Received
>>> check_command(Received(1, {"id": "c-1", "cmd": "set_lr", "value": 0.1}, 0.0, 0), set())
Command(id='c-1', cmd='set_lr', value=0.1)
>>> check_command(Received(2, {"id": "c-1", "cmd": "pause"}, 0.0, 0), {"c-1"})
Traceback (most recent call last):
...
trainer.commands.CommandError: duplicate command id 'c-1'
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

from trainer import commands as cmds
from trainer.inbox import CommandInbox, Received
from trainer.rundir import HEARTBEAT_SECONDS, CheckpointError, RunDir, append_jsonl, current_line, now

#: ``status.json``'s ``message`` for a run that ended early, by the ``finished`` event's reason.
FINISH_MESSAGES = {"stopped": "stopped by the user", "interrupted": "interrupted by Ctrl-C or SIGTERM"}


def check_command(item: Received, seen_ids: set[str]) -> cmds.Command:
    """Validate one received line and refuse an id seen before; records the id as seen."""
    command = cmds.validate(item.record)
    if command.id in seen_ids:
        raise cmds.CommandError(f"duplicate command id {command.id!r}")
    seen_ids.add(command.id)
    return command


def after_pause(state: str) -> str:
    """The state a ``pause`` command leads to from ``state``; refuses a pause that cannot apply."""
    if state == "paused":
        raise cmds.CommandError("already paused")
    if state == "diverged":
        raise cmds.CommandError("already paused after divergence; resume when ready")
    return "paused"


def after_resume(state: str) -> str:
    """The state a ``resume`` command leads to from ``state`` (also out of a divergence)."""
    if state not in ("paused", "diverged"):
        raise cmds.CommandError(f"not paused (state is {state})")
    return "running"


def answered_in(events: list[dict]) -> tuple[set[str], set[int]]:
    """Command ids answered in a journal, and the lines of malformed commands rejected in it."""
    ids = {e["command_id"] for e in events if e.get("command_id") and e.get("event") in ("applied", "rejected")}
    lines = {e["line"] for e in events if e.get("event") == "rejected" and e.get("command_id") is None and e.get("line")}
    return ids, lines


class SteeredRun:
    """The steering half of a trainer: journal, status, commands, checkpoints, rollbacks.

    A subclass calls :meth:`_init_steering`, sets ``store`` (a
    :class:`~trainer.checkpoints.CheckpointStore`), ``_inbox`` (a
    :class:`~trainer.inbox.CommandInbox`) and ``epochs`` (planned, or ``None``), and provides:

    * ``_hparams()``: the hyperparameters in force, for status and events;
    * ``_rewind_to(meta)``: restore checkpoint ``meta`` and start a new branch of the history;
    * ``_do_set_lr``, ``_do_scale_lr``, ``_do_set_beta``, ``_do_set_batch_size``.
    """

    #: Put before every line :meth:`_say` prints.
    say_prefix = ""

    def _init_steering(self, rundir: RunDir, verbose: bool) -> None:
        self.rundir = rundir
        self.verbose = verbose
        self.state = "starting"
        self.message: str | None = None
        self.epoch = 0
        self.step = 0
        self.branch = 0
        self.started = now()
        self.last_metrics: dict | None = None
        self.latest_checkpoint: str | None = None
        self._tb = None  # a trainer.tensorboard.TensorBoardLog when asked for
        self._stop_requested: str | None = None  # "command" or "signal"
        self._seen_ids: set[str] = set()
        self._paused_seconds = 0.0  # time spent in _handle_commands, kept out of epoch timings
        self._status_lock = threading.Lock()
        self._stop_heartbeat = threading.Event()
        self._heartbeat_thread: threading.Thread | None = None

    # ------------------------------------------------------------------ journal and status

    def _event(self, event: str, **fields: Any) -> dict:
        return self.rundir.append_event(event, epoch=self.epoch, step=self.step, **fields)

    def _status(self) -> dict:
        return {
            "name": self.rundir.name, "state": self.state, "epoch": self.epoch, "epochs": self.epochs,
            "step": self.step, "branch": self.branch, "pid": os.getpid(), "host": socket.gethostname(),
            "heartbeat": now(), "started": self.started, "hparams": self._hparams(), "last": self.last_metrics,
            "message": self.message, "checkpoint": self.latest_checkpoint,
        }

    def _write_status(self) -> None:
        with self._status_lock:
            self.rundir.write_status(self._status())

    def _set_state(self, state: str, message: str | None = None) -> None:
        self.state, self.message = state, message
        self._write_status()

    def _say(self, text: str) -> None:
        if self.verbose:
            print(f"{self.say_prefix}{text}", flush=True)

    def _start_heartbeat(self) -> None:
        """Refresh ``status.json`` every second from a thread, and re-read the command file."""
        self._stop_heartbeat.clear()
        self._heartbeat_thread = threading.Thread(target=self._heartbeat, name="panda-heartbeat", daemon=True)
        self._heartbeat_thread.start()

    def _end_heartbeat(self) -> None:
        self._stop_heartbeat.set()
        if self._heartbeat_thread is not None:
            self._heartbeat_thread.join(timeout=5)
            self._heartbeat_thread = None

    def _heartbeat(self) -> None:
        while not self._stop_heartbeat.wait(HEARTBEAT_SECONDS):
            try:
                self._write_status()
                self._inbox.poll()  # a safety net under the file watcher
            except Exception:  # the folder may be gone, a variable mid-update: try again next beat
                pass

    # ------------------------------------------------------------------ commands

    def _handle_commands(self) -> None:
        """Apply what arrived; while paused, wait on the inbox (no CPU) and keep obeying."""
        started = time.perf_counter()
        for item in self._inbox.drain():
            self._handle(item)
        while self.state in ("paused", "diverged") and not self._stop_requested:
            if self._inbox.wait(HEARTBEAT_SECONDS):
                for item in self._inbox.drain():
                    self._handle(item)
        self._paused_seconds += time.perf_counter() - started

    def _handle(self, item: Received) -> None:
        try:
            command = check_command(item, self._seen_ids)
            applied = getattr(self, f"_do_{command.cmd}")(command.value)
        except (cmds.CommandError, CheckpointError) as e:
            self._answer(item, False, str(e))
            return
        self._answer(item, True, **(applied or {}))
        self._write_status()
        if command.cmd in ("pause", "resume"):
            self._event("paused" if command.cmd == "pause" else "resumed", command_id=command.id)

    def _answer(self, item: Received, ok: bool, reason: str | None = None, **extra: Any) -> dict:
        """The ``applied`` or ``rejected`` event for ``item`` (the fields of docs/run-directory.md)."""
        info = CommandInbox.describe(item)
        stamps = {"received_time": item.time, "received_step": item.step}
        if ok:
            return self._event("applied", **info, hparams=self._hparams(), **stamps, **extra)
        self._say(f"rejected {info['cmd']} {info['value'] if info['value'] is not None else ''}: {reason}")
        return self._event("rejected", **info, reason=reason, **stamps)

    def _do_pause(self, _) -> None:
        self.state = after_pause(self.state)
        self._say(f"paused at epoch {self.epoch}, step {self.step}")

    def _do_resume(self, _) -> None:
        self.state, self.message = after_resume(self.state), None
        self._say(f"resumed at step {self.step}")

    def _do_stop(self, _) -> None:
        self._stop_requested = "command"

    def _do_checkpoint(self, _) -> dict:
        meta = self._save("command")
        self._event("checkpoint_saved", checkpoint=meta["name"], reason="command")
        return {"checkpoint": meta["name"]}

    def _do_rewind(self, spec: str) -> dict:
        meta = self.store.find(spec)
        self._rewind_to(meta)
        self._event("rewound", checkpoint=meta["name"], to_epoch=meta["epoch"], branch=self.branch)
        self._say(f"rewound to {meta['name']} (epoch {meta['epoch']}), branch {self.branch}")
        return {"checkpoint": meta["name"], "to_epoch": meta["epoch"], "branch": self.branch}

    # ------------------------------------------------------------------ checkpoints and endings

    def _save(self, reason: str, metrics: dict | None = None) -> dict:
        meta = self.store.save(epoch=self.epoch, step=self.step, branch=self.branch, reason=reason,
                               hparams=self._hparams(), metrics=metrics)
        self.latest_checkpoint = meta["name"]
        return meta

    def _commit_epoch(self, record: dict, batches: list[dict], keep_every: int) -> dict:
        """Make a finished epoch durable, in the order ``--resume`` relies on.

        The checkpoint (which holds the record) lands before the record is appended, so a crash
        in between loses nothing: ``--resume`` appends the record from the checkpoint.
        """
        self.epoch = record["epoch"]
        record = self._save("epoch", metrics=record)["metrics"]
        append_jsonl(self.rundir.batches_path, *batches, sync=False)
        append_jsonl(self.rundir.metrics_path, record)
        self.store.prune(keep_every)
        self.last_metrics = record
        self._write_status()
        if self._tb is not None:
            self._tb.epoch(record, batches)
        return record

    def _history_after_crash(self, meta: dict) -> list[dict]:
        """The run's current history when resuming from checkpoint ``meta``.

        A crash between an epoch's checkpoint and its record leaves the record only inside the
        checkpoint (see :meth:`_commit_epoch`): it is appended now, so every epoch is there once.
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
            highest = max(highest, record.get("branch", 0))
        return highest + 1

    def _diverge(self, reason: str) -> None:
        """Roll back to the last good checkpoint, then wait paused for the user."""
        lr = self._hparams().get("lr")
        meta = self.store.latest()
        self._rewind_to(meta)
        self._event("diverged", reason=reason, checkpoint=meta["name"], branch=self.branch, lr=lr)
        self._say(f"diverged: {reason}; rolled back to {meta['name']} (epoch {self.epoch}); paused — "
                  f"lower the learning rate and resume")
        self._set_state("diverged", f"{reason}; rolled back to {meta['name']}. Lower the learning rate, then resume.")

    def _stop_with_checkpoint(self) -> None:
        """The end of a run asked to stop: checkpoint, then finish (``--resume`` continues it)."""
        self._set_state("stopping")
        meta = self._save("stop")
        self._event("checkpoint_saved", checkpoint=meta["name"], reason="stop")
        self._finish("stopped" if self._stop_requested == "command" else "interrupted")

    def _finish(self, reason: str) -> None:
        """Answer what is still queued, journal the end, and say so."""
        for item in self._inbox.drain():
            self._answer(item, False, f"the run {reason} before this command was applied")
        self._event("finished", reason=reason)
        self._set_state("finished", FINISH_MESSAGES.get(reason))
        self._say(f"finished ({reason}) at epoch {self.epoch}, step {self.step}: {self.rundir.path}")
