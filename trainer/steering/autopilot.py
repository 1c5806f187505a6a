"""The lookahead autopilot's planner: stage lengths, candidate α's, curve fits, the choice, and vetoes.

AutoLRS (Jin et al., ICLR 2021) on Panda's own primitives. Every *stage* the trainer forks a few
candidate α's from the current state (:mod:`trainer.training.autopilot_stages` runs them), fits each
candidate's lookahead losses and goes on with the one predicted to be lowest at the stage's end. This
module holds the decisions, as pure functions and one small class, so they are tested without
TensorFlow (the Optuna sampler is injected: :mod:`trainer.search.stage_sampler`).

The rules (docs/run-directory.md, ``autopilot_stage``):

* **Stage length** (:func:`stage_length`): whole epochs, at least :data:`STAGE_MIN_STEPS` (50) steps —
  one epoch when an epoch has 50 steps or more. Stages end at epoch ends (the hot loop stays free of
  per-step Python).
* **Lookahead** (:func:`lookahead_steps`): a fifth of the stage, at least :data:`MIN_LOOKAHEAD` (10) steps, per candidate.
* **Prediction** (:func:`predict`): loss(s) ≈ a + b·exp(−c·s) fitted by least squares to the lookahead's
  losses (s = 1..n), then read at s = the stage length. For each c on a log grid from 1/n to 2, a and b
  are linear least squares; the c with the smallest residual wins. The decay's time constant is at
  most the lookahead itself, so a straight stretch is never extrapolated over the whole stage. With
  fewer than 5 points, or an unusable fit, the prediction is the mean of the last tenth; a
  candidate whose loss stopped being finite has none (it diverged).
* **Choice** (:func:`choose`): the lowest prediction, unless the current α's is within
  :data:`KEEP_MARGIN` (5 %) of it: then keep (a short lookahead cannot tell α's apart near convergence).
* **Candidates** (:meth:`StagePlanner.candidates`): stage 1 tries the current α × {1/3, 1, 3}; later
  stages the current α plus :data:`ASKED` α's the sampler proposes over log10 α, clipped to within
  :data:`TRUST` (10×) of the current α. It is told each
  candidate's prediction relative to its stage's best, ``(p − best) / max(|best|, 0.001)`` (0 for the
  winner, :data:`PENALTY` for a diverged or vetoed one), so stages at different loss levels compare.
"""

from __future__ import annotations

import math
from typing import Protocol, Sequence

from trainer.contract import commands as cmds

#: A stage is whole epochs of at least this many steps.
STAGE_MIN_STEPS = 50
#: Each candidate trains this fraction of the stage (at least MIN_LOOKAHEAD steps).
LOOKAHEAD_FRACTION = 0.2
MIN_LOOKAHEAD = 10
#: Stage 1's candidates: the current α times these.
FIRST_FACTORS = (1 / 3, 1.0, 3.0)
#: Later stages: the current α and this many α's the sampler asks for.
ASKED = 2
#: A stage moves α by at most this factor either way (the sampler's proposals are clipped to it): a short
#: lookahead near convergence favours a tiny α that merely stops moving, which would freeze the run.
TRUST = 10.0
#: What the sampler is told for a candidate that diverged or was vetoed (the stage's best is 0).
PENALTY = 10.0
#: Another α replaces the current one only when predicted more than this fraction lower.
KEEP_MARGIN = 0.05
#: The autopilot never sets α below this: a finder on a state that learns nothing at any α suggests the
#: noise's minimum, and stage after stage drove α to 1e-13 (bench/autopilot.py, a CNN wrecked by α = 0.1).
ALPHA_FLOOR = 1e-6
#: Fewer lookahead losses than this: no fit, the mean of the last tenth.
MIN_FIT_POINTS = 5
#: The decay rates c tried, from 1/n to this, spaced on a log scale.
MAX_DECAY = 2.0
DECAY_GRID = 60


def stage_length(steps_per_epoch: int) -> int:
    """Whole epochs of at least STAGE_MIN_STEPS steps.

    >>> stage_length(23), stage_length(50), stage_length(120)
    (69, 50, 120)
    """
    per = max(1, int(steps_per_epoch))
    return math.ceil(STAGE_MIN_STEPS / per) * per


def lookahead_steps(horizon: int) -> int:
    """Steps each candidate trains: a fifth of the stage, at least MIN_LOOKAHEAD.

    >>> lookahead_steps(69), lookahead_steps(500)
    (13, 100)
    """
    return max(MIN_LOOKAHEAD, int(horizon * LOOKAHEAD_FRACTION))


def _finite(values: Sequence[float]) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def tail_mean(losses: Sequence[float]) -> float:
    """The mean of the last tenth (at least one value)."""
    tail = list(losses[-max(1, len(losses) // 10):])
    return sum(tail) / len(tail)


def fit_curve(losses: Sequence[float]) -> dict | None:
    """``{"a", "b", "c"}`` of loss(s) ≈ a + b·exp(−c·s), s = 1..n, by least squares; ``None`` when it cannot fit.

    >>> f = fit_curve([0.5 + 2.0 * math.exp(-0.3 * s) for s in range(1, 21)])
    >>> round(f["a"], 3), round(f["b"], 3), round(f["c"], 3)
    (0.5, 2.0, 0.3)
    """
    n = len(losses)
    if n < MIN_FIT_POINTS or not _finite(losses):
        return None
    ys = [float(v) for v in losses]
    low, best = math.log(1.0 / n), None
    for k in range(DECAY_GRID):
        c = math.exp(low + (math.log(MAX_DECAY) - low) * k / (DECAY_GRID - 1))
        fitted = _linear(ys, c)
        if fitted is not None and (best is None or fitted[2] < best[3]):
            best = (fitted[0], fitted[1], c, fitted[2])
    if best is None:
        return None
    # refine c around the grid's best by golden-section search on the residual
    lo, hi = best[2] / 1.1, min(best[2] * 1.1, MAX_DECAY)
    for _ in range(40):
        m1, m2 = hi - (hi - lo) / 1.618, lo + (hi - lo) / 1.618
        r1, r2 = _linear(ys, m1), _linear(ys, m2)
        if r1 is None or r2 is None:
            break
        lo, hi = (lo, m2) if r1[2] < r2[2] else (m1, hi)
    c = (lo + hi) / 2
    fitted = _linear(ys, c)
    if fitted is not None and fitted[2] <= best[3]:
        best = (fitted[0], fitted[1], c, fitted[2])
    a, b, c, _ = best
    return {"a": a, "b": b, "c": c} if _finite((a, b, c)) else None


def _linear(ys: list[float], c: float) -> tuple[float, float, float] | None:
    """a, b and the squared residual of ys ≈ a + b·exp(−c·s) for a fixed c (closed-form least squares)."""
    xs = [math.exp(-c * s) for s in range(1, len(ys) + 1)]
    n, mx, my = len(ys), sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx < 1e-18:
        return None
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    a = my - b * mx
    return a, b, sum((a + b * x - y) ** 2 for x, y in zip(xs, ys)) / n


def predict(losses: Sequence[float], horizon: int) -> tuple[float | None, dict | None]:
    """The loss predicted at step ``horizon``, and the fit (``None``: the last tenth's mean was used).

    A candidate whose losses are not all finite diverged: no prediction.

    >>> predict([2.0, 1.0, float("nan")], 50)
    (None, None)
    >>> predict([1.0, 0.8, 0.6], 50)
    (0.6, None)
    """
    if not losses or not _finite(losses):
        return None, None
    fit = fit_curve(losses)
    if fit is not None:
        value = fit["a"] + fit["b"] * math.exp(-fit["c"] * horizon)
        if math.isfinite(value) and value >= 0:
            return value, fit
    return tail_mean(losses), None


def choose(predictions: Sequence[float | None], keep: int | None = None, margin: float = KEEP_MARGIN) -> int | None:
    """The index of the lowest prediction; ``None`` when every candidate diverged.

    ``keep`` (the current α) stays unless another is predicted more than ``margin`` (relative) lower:
    near convergence a short lookahead cannot tell α's apart, and a change on noise would do harm.

    >>> choose([0.3, 0.2, None]), choose([0.2, 0.199], keep=0), choose([0.2, 0.1], keep=0), choose([None, None])
    (1, 0, 1, None)
    """
    scored = [(p, i) for i, p in enumerate(predictions) if p is not None]
    if not scored:
        return None
    best, index = min(scored)
    held = predictions[keep] if keep is not None and 0 <= keep < len(predictions) else None
    if held is not None and best >= held - margin * abs(held):
        return keep
    return index


def scores(predictions: Sequence[float | None]) -> list[float]:
    """What the sampler is told for each candidate: its excess over the stage's best, relative (PENALTY if none).

    >>> scores([0.25, 0.5, None])
    [0.0, 1.0, 10.0]
    """
    finite = [p for p in predictions if p is not None]
    if not finite:
        return [PENALTY] * len(predictions)
    best = min(finite)
    return [PENALTY if p is None else min(PENALTY, (p - best) / max(abs(best), 1e-3)) for p in predictions]


class Sampler(Protocol):
    """Proposes α's and learns from what they did (an Optuna study in :mod:`trainer.search.stage_sampler`)."""

    def ask(self, n: int) -> list[float]: ...

    def tell(self, lr: float, value: float) -> None: ...


class StagePlanner:
    """The autopilot's memory across stages: its decisions (``autopilot_stage`` events) and its sampler."""

    def __init__(self, sampler: Sampler):
        self.sampler = sampler
        self.stages: list[dict] = []  # the autopilot_stage events, oldest first
        self.vetoed: set[int] = set()
        self.hold = False  # a veto keeps the user's α through the next stage

    @property
    def next_stage(self) -> int:
        return len(self.stages) + 1

    def candidates(self, lr: float) -> list[float]:
        """The α's a stage tries, the current one first (so keeping it is always possible)."""
        if not any(s.get("action") == "fork" for s in self.stages):
            raw = [lr * f for f in FIRST_FACTORS]
            raw.insert(0, raw.pop(FIRST_FACTORS.index(1.0)))
        else:
            raw = [lr, *[min(max(x, lr / TRUST), lr * TRUST) for x in self.sampler.ask(ASKED)]]
        out: list[float] = []
        for value in raw:  # valid α's, to 3 digits, each once
            value = cmds.check_lr(float(f"{min(max(value, ALPHA_FLOOR), cmds.MAX_LR):.3g}"))
            if value not in out:
                out.append(value)
        return out

    def decide(self, lrs: Sequence[float], curves: Sequence[Sequence[float]], horizon: int) -> dict:
        """Each candidate's prediction and fit, and the chosen one's index (``None``: all diverged)."""
        predicted = [predict(curve, horizon) for curve in curves]
        values = [p for p, _ in predicted]
        return {"predicted": values, "fits": [f for _, f in predicted], "chosen": choose(values, keep=0),
                "scores": scores(values), "lrs": list(lrs)}

    def record(self, event: dict) -> None:
        """A decision was journaled: remember it and tell the sampler how its candidates did."""
        self.stages.append(event)
        candidates = event.get("candidates") or []
        for candidate, score in zip(candidates, scores([c.get("predicted_loss") for c in candidates])):
            if isinstance(candidate.get("lr"), (int, float)):
                self.sampler.tell(candidate["lr"], score)

    def veto(self, stage: int) -> float:
        """Stage ``stage`` undone: its ``from_lr``, to set again. Only the latest stage, once."""
        if not self.stages:
            raise cmds.CommandError("veto: the autopilot has made no stage decision yet")
        latest = self.stages[-1].get("stage", len(self.stages))
        if stage != latest:
            raise cmds.CommandError(f"veto: only the latest autopilot stage ({latest}) can be vetoed, not {stage}; "
                                    f"use undo to go further back")
        if stage in self.vetoed:
            raise cmds.CommandError(f"veto: stage {stage} was already vetoed")
        event = self.stages[-1]
        self.vetoed_stage(stage, event)
        return float(event["from_lr"])

    def vetoed_stage(self, stage: int, event: dict) -> None:
        """Tell the sampler the stage's chosen α was bad; keep the user's α through the next stage."""
        self.vetoed.add(stage)
        self.hold = True
        if isinstance(event.get("to_lr"), (int, float)) and event.get("to_lr") != event.get("from_lr"):
            self.sampler.tell(event["to_lr"], PENALTY)

    def resumed(self, events: list[dict]) -> None:
        """After ``--resume``: the decisions and vetoes of the journal, told to a fresh sampler in order."""
        by_stage: dict[int, dict] = {}
        for event in events:
            if event.get("event") == "autopilot_stage" and isinstance(event.get("from_lr"), (int, float)):
                self.record(event)
                by_stage[event.get("stage")] = event
            elif event.get("event") == "autopilot_vetoed" and event.get("stage") in by_stage:
                self.vetoed_stage(event["stage"], by_stage[event["stage"]])
        self.hold = bool(self.stages) and self.stages[-1].get("stage") in self.vetoed
