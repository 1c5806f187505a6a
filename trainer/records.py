"""Typed records of the run-directory contract: what ``status.json`` and an answer to a command hold.

Files in a run directory are written by one trainer but read by many clients, some of them
careless or hostile, so a reader never trusts a field's type: :meth:`Status.from_json` and
:meth:`Answer.from_json` keep what has the documented type and use the default for the rest.
The trainer writes them through :meth:`Status.to_json`; the CLI, the sweeps and the dashboard
read them as attributes, not as ``.get(...) or {}`` chains.

>>> s = Status.from_json({"state": "running", "epoch": "three", "hparams": {"lr": 0.01}})
>>> s.state, s.epoch, s.hparams["lr"]
('running', 0, 0.01)
>>> Answer.from_json({"event": "applied", "command_id": "c-1", "epoch": 4}).applied
True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


def _typed(cls, data: Any) -> dict[str, Any]:
    """``data``'s fields that have the type the dataclass declares (bools are never numbers)."""
    if not isinstance(data, dict):
        return {}
    out = {}
    for f in fields(cls):
        value = data.get(f.name)
        want = _TYPES[f.name]
        if value is None or isinstance(value, bool) and bool not in want:
            continue
        if isinstance(value, want):
            out[f.name] = float(value) if float in want and int not in want and isinstance(value, int) else value
    return out


@dataclass(frozen=True)
class Status:
    """``status.json``: the trainer's state now, replaced atomically on every change and heartbeat."""

    name: str = ""
    state: str = "unknown"
    epoch: int = 0
    epochs: int | None = None
    step: int = 0
    branch: int = 0
    pid: int | None = None
    host: str | None = None
    heartbeat: float = 0.0
    started: float | None = None
    hparams: dict = field(default_factory=dict)
    last: dict | None = None
    message: str | None = None
    checkpoint: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> "Status":
        return cls(**_typed(cls, data))

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Answer:
    """The trainer's ``applied`` or ``rejected`` event for one command (``events.jsonl``)."""

    event: str
    command_id: str | None = None
    cmd: str | None = None
    time: float | None = None
    epoch: int | None = None
    step: int | None = None
    reason: str | None = None
    line: int | None = None

    @property
    def applied(self) -> bool:
        return self.event == "applied"

    @classmethod
    def from_json(cls, data: Any) -> "Answer | None":
        """The answer an event is, or ``None`` when it is no answer (another kind of event)."""
        values = _typed(cls, data)
        return cls(**values) if values.get("event") in ("applied", "rejected") else None


_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,), "state": (str,), "epoch": (int,), "epochs": (int,), "step": (int,), "branch": (int,),
    "pid": (int,), "host": (str,), "heartbeat": (int, float), "started": (int, float), "hparams": (dict,),
    "last": (dict,), "message": (str,), "checkpoint": (str,), "event": (str,), "command_id": (str,), "cmd": (str,),
    "time": (int, float), "reason": (str,), "line": (int,),
}
