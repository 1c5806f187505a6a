"""What every Panda trainer does the same way when steered: the status snapshot, checking a
command, and answering it in the journal.

Both trainers use these: :class:`trainer.loop.Trainer` (``panda train``) and
:class:`trainer.callback.PandaCallback` (any Keras ``model.fit``). Keeping them here means a client
(the dashboard, ``panda ctl``, a sweep) cannot tell the two apart. Pure Python, no TensorFlow.

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
from typing import Any

from trainer import commands as cmds
from trainer.inbox import CommandInbox, Received
from trainer.rundir import RunDir, now


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


def answer(run: RunDir, item: Received, ok: bool, *, epoch: int, step: int, hparams: dict,
           reason: str | None = None, **extra: Any) -> dict:
    """Write the ``applied`` or ``rejected`` event for ``item`` (the fields of docs/run-directory.md)."""
    info = CommandInbox.describe(item)
    if ok:
        return run.append_event("applied", epoch=epoch, step=step, **info, hparams=hparams,
                                received_time=item.time, received_step=item.step, **extra)
    return run.append_event("rejected", epoch=epoch, step=step, **info, reason=reason,
                            received_time=item.time, received_step=item.step)


def status_record(run: RunDir, *, state: str, epoch: int, epochs: int | None, step: int, branch: int,
                  started: float, hparams: dict, last: dict | None, message: str | None,
                  checkpoint: str | None, **extra: Any) -> dict:
    """The body of ``status.json`` for a trainer living in this process."""
    return {
        "name": run.name, "state": state, "epoch": epoch, "epochs": epochs, "step": step,
        "branch": branch, "pid": os.getpid(), "host": socket.gethostname(), "heartbeat": now(),
        "started": started, "hparams": hparams, "last": last, "message": message,
        "checkpoint": checkpoint, **extra,
    }
