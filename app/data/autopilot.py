"""The autopilot's decisions as a page reads them: each ``autopilot_stage`` event typed, whether it was
vetoed, its lookahead's curves (``forks.jsonl``, ``pick: "autopilot"``), why it chose in one sentence, and
the share of the run's steps spent exploring (docs/run-directory.md).

Every field is read through a check (a hostile journal gives missing values, never an exception), and
nothing here imports Streamlit: pages and the projector cache what this returns, once per change.

>>> (d,) = decisions([{"event": "autopilot_stage", "stage": 3, "action": "fork", "from_lr": 0.01, "to_lr": 0.01,
...                     "chosen": -1, "horizon": 110}])
>>> d.stage, d.index, d.horizon, d.vetoed
(3, None, 110, False)
>>> share_text(4, 12.5)
'Autopilot: 4 decisions · 12.5 % of steps spent exploring'
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from trainer.contract.event_records import AutopilotStage, AutopilotVetoed
from trainer.contract.file_records import ForkCandidate, ForkRecord
from trainer.contract.rundir import read_jsonl
from trainer.training.exploration import FORKS

#: A fork record's ``pick`` when the autopilot's lookahead made it: nobody's choice waits on it.
AUTOPILOT_PICK = "autopilot"
#: At most this many of a lookahead's candidates are drawn and described (a hostile line may hold thousands).
MAX_CANDIDATES = 12


@dataclass(frozen=True)
class Decision:
    """One decision of the autopilot (the typed ``autopilot_stage`` event) and whether it was vetoed since."""

    made: AutopilotStage
    vetoed: bool = False
    taken_back: bool = False  # vetoed by the autopilot itself: its raise of α left the run not learning

    def __getattr__(self, name: str):  # stage, epoch, trigger, from_lr …: the event's own fields
        if name == "made":  # not set yet (a copy being made): no field to forward to
            raise AttributeError(name)
        return getattr(self.made, name)

    @property
    def end(self) -> int | None:
        """The lookahead step the predictions are for (the stage's horizon), when it is a step (≥ 1)."""
        return self.horizon if self.horizon is not None and self.horizon >= 1 else None

    @property
    def index(self) -> int | None:
        """The chosen candidate's index, when it is one (a negative number is none)."""
        return self.chosen if self.chosen is not None and self.chosen >= 0 else None

    @property
    def vetoable(self) -> bool:
        """Whether a veto can name it: a stage number of at least 1, not vetoed already."""
        return self.stage is not None and self.stage >= 1 and not self.vetoed


def decisions(events: list[dict]) -> list[Decision]:
    """The run's decisions in journal order, each marked vetoed when an ``autopilot_vetoed`` event names its stage.

    >>> [d.vetoed for d in decisions([{"event": "autopilot_stage", "stage": 1}, {"event": "autopilot_stage", "stage": 2},
    ...                               {"event": "autopilot_vetoed", "stage": 2}])]
    [False, True]
    """
    vetoes = [v for v in map(AutopilotVetoed.from_json, events) if v is not None and v.stage is not None]
    vetoed, own = {v.stage for v in vetoes}, {v.stage for v in vetoes if v.by == "autopilot"}
    return [Decision(d, d.stage in vetoed, d.stage in own) for d in map(AutopilotStage.from_json, events)
            if d is not None]


def lookahead_record(run_path: Path | str, stage: int | None) -> ForkRecord | None:
    """The newest whole ``forks.jsonl`` line of the autopilot's lookahead for ``stage`` (``None``: no such line)."""
    if stage is None:
        return None
    for record in map(ForkRecord.from_json, reversed(read_jsonl(Path(run_path) / FORKS))):
        if record is not None and record.pick == AUTOPILOT_PICK and record.autopilot_stage == stage:
            return record
    return None


def share_text(n: int, percent: float | None) -> str:
    """``Autopilot: N decisions · K % of steps spent exploring`` (the share left out when unknown)."""
    words = f"Autopilot: {n} decision{'' if n == 1 else 's'}"
    return words + (f" · {percent:.3g} % of steps spent exploring" if percent is not None else "")


def fmt(value: Any) -> str:
    """A number as the page writes an α or a loss: ``0.003``, ``—`` when missing."""
    return format(value, ".3g") if isinstance(value, (int, float)) and math.isfinite(value) else "—"


def chosen_candidate(decision: Decision, record: ForkRecord | None) -> ForkCandidate | None:
    """The candidate the decision continued with, when it names one the record holds."""
    if record is None or decision.index is None or decision.index >= len(record.candidates):
        return None
    return record.candidates[decision.index]


def why(decision: Decision, record: ForkRecord | None) -> str:
    """Why the autopilot chose, in one sentence.

    >>> why(Decision(AutopilotStage(action="fork", from_lr=0.01, to_lr=0.003, chosen=0, horizon=110)),
    ...     ForkRecord(candidates=[ForkCandidate(candidate={"lr": 0.003}, predicted_loss=0.21)]))
    'α 0.01 → 0.003: lowest predicted loss 0.21 at step 110'
    >>> why(Decision(AutopilotStage(trigger="not learning", action="find_lr", from_lr=1e-5, to_lr=0.003)), None)
    'not learning: the finder suggested α=0.003'
    """
    trigger = f"{decision.trigger}: " if decision.trigger and decision.trigger != "stage" else ""
    if decision.action == "find_lr":
        text = f"{trigger}the finder suggested α={fmt(decision.to_lr)}"
    else:
        kept = decision.from_lr is not None and decision.to_lr is not None and math.isclose(
            decision.from_lr, decision.to_lr, rel_tol=1e-9)
        move = f"kept α={fmt(decision.to_lr)}" if kept or decision.from_lr is None else \
            f"α {fmt(decision.from_lr)} → {fmt(decision.to_lr)}"
        chosen = chosen_candidate(decision, record)
        at = f" at step {decision.end}" if decision.end is not None else ""
        if chosen is not None and chosen.predicted_loss is not None:
            reason = f"lowest predicted loss {fmt(chosen.predicted_loss)}{at}"
        elif decision.index is None:  # kept (nothing predicted lower), or lowered because every candidate diverged
            reason = "no candidate was predicted lower" if kept else "every candidate diverged"
        else:
            reason = "its lookahead's curves are not readable"
        text = f"{trigger}{move}: {reason}"
    if decision.taken_back:
        text += f" — taken back by the autopilot (the run stopped learning): α back to {fmt(decision.from_lr)}"
    elif decision.vetoed:
        text += f" — vetoed: α back to {fmt(decision.from_lr)}"
    return text


@dataclass(frozen=True)
class Summary:
    """What the page shows of the autopilot: how many decisions, the latest one, its lookahead and why."""

    count: int = 0
    latest: Decision | None = None
    record: ForkRecord | None = None
    sentence: str = ""
    all: tuple = ()


def summary(events: list[dict], run_path: Path | str) -> Summary:
    """The run's decisions read once (the pages cache it per change of the journal and of ``forks.jsonl``)."""
    made = decisions(events)
    if not made:
        return Summary()
    latest = made[-1]
    record = lookahead_record(run_path, latest.stage) if latest.action != "find_lr" else None
    if record is not None and len(record.candidates) > MAX_CANDIDATES:
        record = replace(record, candidates=record.candidates[:MAX_CANDIDATES])
    return Summary(len(made), latest, record, why(latest, record), tuple(made))
