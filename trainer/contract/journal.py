"""Reading a run's journal (``events.jsonl``) back when a trainer reopens it.

What was answered (so no line is answered twice, across any number of restarts), which
hyperparameters were in force, and whether the run was left waiting paused or diverged.
Pure functions of the list of events; every field is checked, since the file may hold anything.

>>> ids, lines = answered_in([{"event": "applied", "command_id": "a", "line": 1},
...                           {"event": "rejected", "command_id": None, "line": 2},
...                           {"event": "rejected", "command_id": None, "duplicate_id": "a", "line": 3}])
>>> ids, sorted(lines, key=str)
({'a'}, [(1, 'a'), (2, None), (3, 'a')])
>>> state_at_end([{"event": "paused"}]), state_at_end([{"event": "paused"}, {"event": "resumed"}])
('paused', None)
"""

from __future__ import annotations

from trainer.contract import commands as cmds
from trainer.contract.rundir import WAITING_STATES

#: Hyperparameters the journal carries forward across a restart (the user's latest word wins).
RESUMED_HPARAMS = ("lr", "beta", "batch_size", "lr0", "lr0_epoch")


def answered_in(events: list[dict]) -> tuple[set[str], set[tuple[int, str | None]]]:
    """Command ids answered in a journal, and every answered line as ``(line, id)``.

    The pairs are what :class:`~trainer.contract.inbox.CommandInbox` skips (:attr:`Received.key`): a line
    without a valid id by ``(line, None)``, a duplicate by ``(line, duplicate_id)``.
    """
    ids: set[str] = set()
    keys: set[tuple[int, str | None]] = set()
    for e in events:
        if e.get("event") not in ("applied", "rejected"):
            continue
        command_id = cmds.valid_id(e.get("command_id"))
        if command_id is not None:
            ids.add(command_id)
        line = e.get("line")
        if isinstance(line, int) and not isinstance(line, bool):
            keys.add((line, command_id if command_id is not None else cmds.valid_id(e.get("duplicate_id"))))
    return ids, keys


def state_at_end(events: list[dict]) -> str | None:
    """``paused`` or ``diverged`` when the journal's process ended while waiting for the user, else ``None``.

    A run paused (or diverged) and then killed, crashed or interrupted comes back the same way on
    ``--resume``; one the user ended on purpose (``stop``, or completed) comes back running.
    """
    state = None
    for e in events:
        kind = e.get("event")
        applied = e.get("cmd") if kind == "applied" else None  # the answer lands before its paused event
        if (kind in WAITING_STATES and not e.get("autopilot")) or applied == "pause":  # the autopilot's: no wait
            state = "diverged" if kind == "diverged" else "paused"
        elif kind == "resumed" or applied == "resume" or (kind == "finished" and e.get("reason") in ("stopped", "completed")):
            state = None
    return state


def last_hparams(events: list[dict], meta: dict) -> dict:
    """The hyperparameters in force when the process ended: the journal's last word, else the checkpoint's."""
    latest = meta.get("hparams") or {}
    for event in events:
        if isinstance(event.get("hparams"), dict):
            latest = event["hparams"]
    return {k: latest[k] for k in RESUMED_HPARAMS if latest.get(k) is not None}
