"""Typed events that a page acts on: advice and autopilot stages in ``events.jsonl``, a PBT proposal in ``pbt.jsonl``.

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

#: An ``autopilot_stage`` event's ``trigger`` (why it explored now) and ``action`` (what it explored with).
AUTOPILOT_TRIGGERS = ("stage", "not learning", "diverged", "bouncing", "plateau")
AUTOPILOT_ACTIONS = ("fork", "find_lr")

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


#: One candidate of an ``autopilot_stage`` event, and its checks.
STAGE_CANDIDATE_FIELDS = {"lr": real, "predicted_loss": real, "final_loss": real, "val_loss": real, "steps": whole}
#: An ``autopilot_stage`` event's fields (docs/run-directory.md) and their checks (``candidates``: its own reader).
AUTOPILOT_STAGE_FIELDS = {"stage": whole, "epoch": whole, "step": whole, "time": real, "trigger": string,
                          "action": string, "from_lr": real, "to_lr": real, "chosen": whole, "explore_steps": whole,
                          "horizon": whole, "record": string, "command_id": string}


@dataclass(frozen=True)
class AutopilotStage:
    """One decision of the lookahead autopilot: what it tried (``candidates``), what it chose, what it cost.

    >>> s = AutopilotStage.from_json({"event": "autopilot_stage", "stage": 2, "from_lr": 0.01, "to_lr": 0.003,
    ...                               "candidates": [{"lr": 0.003, "predicted_loss": "x"}, 7], "chosen": 0})
    >>> s.stage, s.to_lr, s.candidates, s.chosen
    (2, 0.003, ({'lr': 0.003},), 0)
    """

    stage: int | None = None  # 1-based: the run's decisions so far
    epoch: int | None = None
    step: int | None = None
    time: float | None = None
    trigger: str | None = None  # one of AUTOPILOT_TRIGGERS
    action: str | None = None  # fork or find_lr
    from_lr: float | None = None
    to_lr: float | None = None
    candidates: tuple = ()  # of {lr, predicted_loss, final_loss, val_loss, steps}; () for a find_lr
    chosen: int | None = None  # index into candidates, or None (kept from_lr, or the finder's α)
    explore_steps: int | None = None
    horizon: int | None = None  # the stage length the predictions are for, in steps
    record: str | None = None  # forks.jsonl or lr_finder.jsonl
    command_id: str | None = None  # the set_lr it sent (source autopilot)

    @classmethod
    def from_json(cls, data: Any) -> "AutopilotStage | None":
        """The stage ``data`` is, or ``None`` when it is no ``autopilot_stage`` event."""
        if not isinstance(data, dict) or data.get("event") != "autopilot_stage":
            return None
        raw = data.get("candidates")
        candidates = tuple(checked(STAGE_CANDIDATE_FIELDS, c) for c in raw if isinstance(c, dict)) \
            if isinstance(raw, list) else ()
        return cls(**checked(AUTOPILOT_STAGE_FIELDS, data), candidates=candidates)

    def to_json(self) -> dict:
        values = {k: v for k, v in asdict(self).items() if v is not None}
        return {"event": "autopilot_stage", **values, "candidates": list(self.candidates)}


assert set(AUTOPILOT_STAGE_FIELDS) | {"candidates"} == set(AutopilotStage.__dataclass_fields__), \
    "AUTOPILOT_STAGE_FIELDS and AutopilotStage disagree"

#: An ``autopilot_vetoed`` event's fields and their checks.
AUTOPILOT_VETOED_FIELDS = {"stage": whole, "lr": real, "command_id": string, "by": string, "reason": string,
                           "epoch": whole, "step": whole, "time": real}


@dataclass(frozen=True)
class AutopilotVetoed:
    """A ``veto`` applied: stage ``stage``'s change undone, α back to ``lr`` (that stage's ``from_lr``).
    ``by: "autopilot"``: the autopilot took back its own raise of α (the run stopped learning), with ``reason``."""

    stage: int | None = None
    lr: float | None = None
    command_id: str | None = None
    by: str | None = None
    reason: str | None = None
    epoch: int | None = None
    step: int | None = None
    time: float | None = None

    @classmethod
    def from_json(cls, data: Any) -> "AutopilotVetoed | None":
        if not isinstance(data, dict) or data.get("event") != "autopilot_vetoed":
            return None
        return cls(**checked(AUTOPILOT_VETOED_FIELDS, data))

    def to_json(self) -> dict:
        return {"event": "autopilot_vetoed", **{k: v for k, v in asdict(self).items() if v is not None}}


assert set(AUTOPILOT_VETOED_FIELDS) == set(AutopilotVetoed.__dataclass_fields__), \
    "AUTOPILOT_VETOED_FIELDS and AutopilotVetoed disagree"


def explore_share(step: Any, explore_steps: Any) -> float | None:
    """The percentage of a run's steps spent on side tracks: explore / (step + explore); ``None`` when unknown.
    The one rule for the autopilot's share of compute: ``panda status`` and the page both say it.

    >>> explore_share(300, 100), explore_share(0, 0), explore_share("x", 5)
    (25.0, None, None)
    """
    step, explore = whole(step), whole(explore_steps)
    if step is None or explore is None or step < 0 or explore < 0 or step + explore == 0:
        return None
    return 100.0 * explore / (step + explore)
