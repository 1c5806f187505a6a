"""Typed events that a page acts on: advice in ``events.jsonl``, a PBT proposal in a sweep's ``pbt.jsonl``.

:func:`~trainer.contract.records.log_record` makes any event safe to show; an event the dashboard
*acts on* — advice or a proposal it offers as a button — is read here into a frozen record whose fields have
their documented types, so a hostile line offers nothing instead of a wrong command.

>>> a = Advice.from_json({"event": "advice", "kind": "plateau", "cmd": "scale_lr", "value": 0.1, "epoch": "7"})
>>> a.cmd, a.value, a.epoch, a.autopilot
('scale_lr', 0.1, None, False)
>>> Advice.from_json({"event": "applied"}) is None
True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from trainer.contract.records import checked, flag, real, string, whole

#: An ``advice`` event's fields and their checks.
ADVICE_FIELDS = {"kind": string, "reason": string, "cmd": string, "value": real, "autopilot": flag,
                 "autopilot_command": string, "epoch": whole, "step": whole, "time": real}


@dataclass(frozen=True)
class Advice:
    """The advisor's ``advice`` event: what it saw (``kind``, ``reason``) and the command that acts on it."""

    kind: str | None = None  # exploding, not learning, bouncing, overfitting, plateau
    reason: str | None = None
    cmd: str | None = None  # scale_lr or stop
    value: float | None = None  # scale_lr's factor; None for stop
    autopilot: bool = False  # whether the autopilot applied it
    autopilot_command: str | None = None
    epoch: int | None = None
    step: int | None = None
    time: float | None = None

    @classmethod
    def from_json(cls, data: Any) -> "Advice | None":
        """The advice ``data`` is, or ``None`` when it is no ``advice`` event."""
        if not isinstance(data, dict) or data.get("event") != "advice":
            return None
        return cls(**checked(ADVICE_FIELDS, data))

    def to_json(self) -> dict:
        return {"event": "advice", **{k: v for k, v in asdict(self).items() if v is not None}}


assert set(ADVICE_FIELDS) == set(Advice.__dataclass_fields__), "ADVICE_FIELDS and Advice disagree"


#: A PBT proposal's fields (docs/sweeps.md), folded with what followed (``state``), and their checks.
PROPOSAL_FIELDS = {"proposal": string, "state": string, "target": string, "source": string, "checkpoint": string,
                   "epoch": whole, "target_score": real, "source_score": real, "lr": real, "beta": real,
                   "deadline": real}


@dataclass(frozen=True)
class Proposal:
    """A PBT proposal as ``trainer.search.pbt.proposals`` folds it: copy ``source`` into ``target`` with new α and β."""

    proposal: str
    state: str | None = None  # pending, approved, vetoed, expired, applied or failed
    target: str | None = None
    source: str | None = None
    checkpoint: str | None = None
    epoch: int | None = None
    target_score: float | None = None
    source_score: float | None = None
    lr: float | None = None
    beta: float | None = None  # None: the optimizer has no β
    deadline: float | None = None  # None with --auto

    @classmethod
    def from_json(cls, data: Any) -> "Proposal | None":
        """The proposal, or ``None`` when it has no id."""
        values = checked(PROPOSAL_FIELDS, data)
        return cls(**values) if "proposal" in values else None

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


assert set(PROPOSAL_FIELDS) == set(Proposal.__dataclass_fields__), "PROPOSAL_FIELDS and Proposal disagree"
