"""Undo: the state before each hyperparameter change or rewind, kept in the journal.

Before a command the command table marks undoable (:data:`trainer.contract.commands.UNDOABLE`) is applied, :class:`~trainer.steering.core.Steering` notes an
*undo point*: the hyperparameters in force and — when the command came from the page
(``source`` in :data:`CHECKPOINTED_SOURCES`) — a checkpoint taken just before (``reason:
"undo"``, never pruned). A command that changed something carries its point in its ``applied``
event as ``undo_point``, so the stack survives restarts: :func:`undo_points` rebuilds it from
``events.jsonl``. ``undo`` rewinds to the newest point's checkpoint (if it has one) and puts its
hyperparameters back; its own ``applied`` event names the command undone (``undid``), which
:func:`undo_points` pops. Nothing to undo: rejected with a reason.

>>> undo_points([{"event": "applied", "cmd": "set_lr", "undo_point": {"command_id": "a", "hparams": {"lr": 1}}},
...              {"event": "applied", "cmd": "set_lr", "undo_point": {"command_id": "b", "hparams": {"lr": 2}}},
...              {"event": "applied", "cmd": "undo", "undid": "b"}])
[{'command_id': 'a', 'hparams': {'lr': 1}}]
"""

from __future__ import annotations

from trainer.contract import commands as cmds

#: Command sources whose changes take a checkpoint first (the page and its autopilot).
CHECKPOINTED_SOURCES = ("dashboard", "autopilot")
NOTHING_TO_UNDO = ("nothing to undo: no hyperparameter change or rewind has been applied since the run started "
                   "(or every one was undone)")


def undo_points(events: list[dict]) -> list[dict]:
    """The undo stack a journal leaves, oldest first."""
    stack: list[dict] = []
    for e in events:
        if e.get("event") != "applied":
            continue
        if e.get("cmd") == "undo":
            if stack:
                stack.pop()
        elif isinstance(e.get("undo_point"), dict) and isinstance(e["undo_point"].get("hparams"), dict):
            stack.append(e["undo_point"])
    return stack


def changed(cmd: str, before: dict, after: dict) -> bool:
    """Whether applying ``cmd`` left something to undo (a rewind always moves the state)."""
    return cmd == "rewind" or before != after


def point_before(steering, source, command: cmds.Command) -> dict | None:
    """The state to come back to if ``command`` is undone; page commands checkpoint it first."""
    if command.cmd not in cmds.UNDOABLE or (command.cmd == "fork" and command.value["pick"] != "best"):
        return None  # a fork that asks changes nothing
    if command.cmd == "rewind":
        steering.store.find(command.value)  # an unknown target is rejected before anything is saved
    point = {"command_id": command.id, "cmd": command.cmd, "checkpoint": None, "hparams": steering.trainer.hparams()}
    if source in CHECKPOINTED_SOURCES and steering.trainer.refuse_checkpoint() is None:
        meta = steering.save("undo")
        steering.event("checkpoint_saved", checkpoint=meta["name"], reason="undo")
        point["checkpoint"] = meta["name"]
    return point


def undo(steering) -> dict:
    """The ``undo`` command: back to the newest undo point (its checkpoint, then its hyperparameters)."""
    if not steering.undo_points:
        raise cmds.CommandError(NOTHING_TO_UNDO)
    point = steering.undo_points[-1]
    if point.get("checkpoint"):
        steering._rewind(point["checkpoint"])
    steering.trainer.restore_hparams(point["hparams"])
    steering.undo_points.pop()
    steering.say(f"undid {point.get('cmd')} ({point.get('command_id')})")
    return {"undid": point.get("command_id"), "undid_cmd": point.get("cmd"), "checkpoint": point.get("checkpoint")}
