"""The advisor: reads a run's live curves and says what a babysitter would do, with one action.

A table of rules (:data:`RULES`), each a small pure function of the epoch records
(``metrics.jsonl``) and sampled batch records (``batches.jsonl``) since the hyperparameters were
last changed, returning an :class:`Advice` — its kind, a one-line reason, and the one command
(``cmd``, ``value``) that acts on it — or ``None``. The trainer runs them at each epoch's end and
journals an ``advice`` event (see :mod:`trainer.steering.advice`); the page shows the latest with a
one-click action; ``--autopilot`` applies it. Pure Python, no TensorFlow.

The thresholds (documented in docs/run-directory.md, tested on synthetic curves):

=============  =====================================================================  ==========
kind           fires when                                                             action
=============  =====================================================================  ==========
exploding      the epoch's mean gradient norm ≥ ``EXPLODE_FACTOR`` (5) × the median    α ×0.1
               of the epochs before it (at least 2)
not learning   loss ≥ 95 % of ln C and accuracy ≤ 1/C + 5 points for 3 epochs        α ×10, or
                                                                                      ×0.1 when α
                                                                                      is already
                                                                                      high
bouncing       the training or validation loss rose by more than ``BOUNCE_RISE`` (3 %)  α ×0.5
               at least twice, and fell after a rise, in the last ``BOUNCE_WINDOW`` (5) epochs
               (oscillating), or the spread (standard
               deviation) of the sampled mini-batch losses grew ``SPREAD_FACTOR``
               (1.5) × above its smallest while the loss stopped improving
overfitting    the gap val_loss − loss widened in each of the last ``OVERFIT_EPOCHS``  stop
               (4) epochs, validation above training, and the val loss above its best  (checkpoints)
plateau        the validation loss flat: none of the last ``PLATEAU_EPOCHS`` (5) epochs  α ×0.1
               beat the best before them by more than ``PLATEAU_TOL`` (2 %)
               (Keras's ReduceLROnPlateau with patience 5, min_delta 2 %)
=============  =====================================================================  ==========

Bouncing and plateau say nothing once the run has *converged*: its training loss is at most
``CONVERGED_LOSS`` (5 %) of ln C (a mean probability of about 89 % on the right class for 10
classes). There a loss's wobbles are noise, and advice on a run at 98 % is a false alarm
(``bench/advisor_alarms.py`` measures the rate on the demo scenarios' healthy runs). Bouncing also
keeps quiet on a *settled* run — its validation loss within ``NEAR_BEST`` (10 %) of its best and at most
``SETTLED_LOSS`` (10 %) of ln C — whose training loss dropout keeps higher (issue #22: it fired on a
healthy run at 97.8 % and kept halving α).

>>> flat = [{"epoch": e, "loss": 0.30, "val_loss": 0.40, "accuracy": 0.9, "val_accuracy": 0.88,
...          "grad_norm": 1.0, "lr": 0.01} for e in range(1, 8)]
>>> [a.kind for a in advise(flat, [], Context(n_classes=10))]
['plateau']
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Callable, Sequence

#: Epochs in a row the run must sit at chance before "not learning" (also the page's notice).
STUCK_EPOCHS = 3
#: A loss counts as "at ln C" when it is no better than ln C less this fraction (≥ 2.19 for 10
#: classes); a loss above ln C is worse than guessing, so it counts too.
LOSS_TOLERANCE = 0.05
#: An accuracy counts as "chance" up to 1/C plus this many points (10 % + 5 points for 10 classes).
ACCURACY_MARGIN = 0.05
#: Exploding gradients: the epoch's gradient norm over this many times the median before it.
EXPLODE_FACTOR = 5.0
#: Bouncing: a rise of the epoch loss by more than this fraction counts as one bounce...
BOUNCE_RISE = 0.03
#: ... and two bounces within this many epochs make the loss "oscillating".
BOUNCE_WINDOW = 5
#: Bouncing: the mini-batch losses' spread this many times its smallest (with no progress).
SPREAD_FACTOR = 1.5
#: Plateau: no validation loss this fraction below the best before, for PLATEAU_EPOCHS epochs.
PLATEAU_TOL = 0.02
PLATEAU_EPOCHS = 5
#: Overfitting: the train–validation gap widening in each of this many epochs.
OVERFIT_EPOCHS = 4
#: Converged: the training loss at or below this fraction of ln C (bouncing and plateau keep quiet).
CONVERGED_LOSS = 0.05
#: Settled: the validation loss within this fraction of its best and at most SETTLED_LOSS × ln C.
NEAR_BEST = 0.10
SETTLED_LOSS = 0.10
#: Learning rates at or above which a run stuck at chance is told to go *down* (per optimizer).
HIGH_LR = {"sgd": 1.0, "momentum": 0.3, "rmsprop": 0.03, "adam": 0.03}


@dataclass(frozen=True)
class Advice:
    """What a rule says: ``kind``, a one-line ``reason``, and the command that acts on it."""

    kind: str
    reason: str
    cmd: str
    value: float | None = None

    def to_event(self) -> dict:
        return {"kind": self.kind, "reason": self.reason, "cmd": self.cmd, "value": self.value}


@dataclass(frozen=True)
class Context:
    """What the rules know besides the records: the class count and the optimizer."""

    n_classes: int | None = None
    optimizer: str | None = None
    commands: frozenset[str] = frozenset()  # commands the trainer knows: find_lr is named only if there


def _num(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _series(epochs: Sequence[dict], key: str) -> list[float] | None:
    """``key`` of every record, or ``None`` if any is missing or not finite."""
    values = [r.get(key) for r in epochs]
    return [float(v) for v in values] if values and all(_num(v) for v in values) else None


def not_learning(loss: Sequence[float], accuracy: Sequence[float], n_classes: int | None, *,
                 epochs: int = STUCK_EPOCHS, loss_tolerance: float = LOSS_TOLERANCE,
                 accuracy_margin: float = ACCURACY_MARGIN) -> str | None:
    """Why the run looks stuck, in words, or ``None`` (the one source of this rule: page and advisor).

    Stuck: each of the last ``epochs`` epochs has a training loss no lower than ln C less
    ``loss_tolerance`` × ln C (a loss above ln C counts: worse than guessing) and a training accuracy at most 1/C + ``accuracy_margin``. Fewer epochs, an unknown
    or single class count, or a missing value: not judged (``None``).

    >>> not_learning([2.30, 2.6, 2.4], [0.1] * 3, 10)
    'not learning: the loss has stayed at ln(10) = 2.30 or above and the accuracy at chance (10%) for 3 epochs'
    >>> not_learning([2.30] * 4 + [1.9], [0.1] * 4 + [0.3], 10) is None
    True
    """
    if not isinstance(n_classes, int) or n_classes < 2 or len(loss) < epochs or len(accuracy) < epochs:
        return None
    level, chance = math.log(n_classes), 1.0 / n_classes
    for l, a in zip(list(loss)[-epochs:], list(accuracy)[-epochs:]):
        if not (_num(l) and _num(a)):
            return None
        if l < (1 - loss_tolerance) * level or a > chance + accuracy_margin:
            return None
    return (f"not learning: the loss has stayed at ln({n_classes}) = {level:.2f} or above and the accuracy at chance "
            f"({chance:.0%}) for {epochs} epochs")


def converged(epochs: Sequence[dict], ctx: Context) -> bool:
    """Whether the newest epoch's training loss is at most ``CONVERGED_LOSS`` × ln C (C known, ≥ 2).

    >>> converged([{"loss": 0.05}], Context(n_classes=10)), converged([{"loss": 0.5}], Context(n_classes=10))
    (True, False)
    """
    loss = epochs[-1].get("loss") if epochs else None
    return (isinstance(ctx.n_classes, int) and ctx.n_classes >= 2 and _num(loss)
            and loss <= CONVERGED_LOSS * math.log(ctx.n_classes))


# --------------------------------------------------------------------------- the rules


def exploding(epochs: Sequence[dict], batches: Sequence[dict], ctx: Context) -> Advice | None:
    norms = _series(epochs, "grad_norm")
    if norms is None or len(norms) < 3:
        return None
    before = statistics.median(norms[-6:-1])
    if before <= 0 or norms[-1] < EXPLODE_FACTOR * before:
        return None
    return Advice("exploding", f"exploding gradients: the gradient norm jumped {norms[-1] / before:.0f}× "
                  f"({before:.3g} → {norms[-1]:.3g}); lower α before the loss diverges", "scale_lr", 0.1)


def stuck(epochs: Sequence[dict], batches: Sequence[dict], ctx: Context) -> Advice | None:
    loss, accuracy = _series(epochs, "loss"), _series(epochs, "accuracy")
    if loss is None or accuracy is None:
        return None
    why = not_learning(loss, accuracy, ctx.n_classes)
    if why is None:
        return None
    lr = epochs[-1].get("lr")
    high = _num(lr) and lr >= HIGH_LR.get(ctx.optimizer or "", 0.03)
    factor = 0.1 if high else 10.0
    hint = " (or run find_lr)" if "find_lr" in ctx.commands else ""
    direction = "α is already high: try ×0.1" if high else "α is probably far too small: try ×10"
    return Advice("not learning", f"{why}; {direction}{hint}", "scale_lr", factor)


def _spreads(epochs: Sequence[dict], batches: Sequence[dict]) -> list[float]:
    """The standard deviation of each epoch's sampled mini-batch losses (epochs with ≥ 3 samples)."""
    by_epoch: dict[int, list[float]] = {}
    wanted = {r.get("epoch") for r in epochs}
    for b in batches:
        if b.get("epoch") in wanted and _num(b.get("loss")):
            by_epoch.setdefault(b["epoch"], []).append(float(b["loss"]))
    return [statistics.pstdev(by_epoch[e]) for e in sorted(by_epoch) if len(by_epoch[e]) >= 3]


def settled(epochs: Sequence[dict], ctx: Context) -> bool:
    """Whether the newest validation loss is within NEAR_BEST of its best and at most SETTLED_LOSS × ln C.

    >>> ep = lambda v: {"val_loss": v}
    >>> settled([ep(0.08), ep(0.10), ep(0.085)], Context(n_classes=10)), settled([ep(0.08), ep(0.2)], Context(n_classes=10))
    (True, False)
    """
    val = _series(epochs, "val_loss")
    if val is None or not isinstance(ctx.n_classes, int) or ctx.n_classes < 2:
        return False
    return val[-1] <= (1 + NEAR_BEST) * min(val) and val[-1] <= SETTLED_LOSS * math.log(ctx.n_classes)


def _bounces(series: list[float]) -> int:
    """Rises of more than BOUNCE_RISE in the last BOUNCE_WINDOW values; 0 unless it fell after a rise.

    Up and down again is oscillating; a U (down, then up and up) is not: that is overfitting's shape.
    """
    recent = series[-BOUNCE_WINDOW:]
    ups = [b > a * (1 + BOUNCE_RISE) for a, b in zip(recent, recent[1:])]
    downs = [b < a for a, b in zip(recent, recent[1:])]
    fell_after_rise = any(ups[i] and any(downs[i + 1:]) for i in range(len(ups)))
    return sum(ups) if fell_after_rise else 0


def bouncing(epochs: Sequence[dict], batches: Sequence[dict], ctx: Context) -> Advice | None:
    loss = _series(epochs, "loss")
    if loss is None or len(loss) < 3 or converged(epochs, ctx) or settled(epochs, ctx):
        return None
    for name, series in (("training", loss), ("validation", _series(epochs, "val_loss"))):
        rises = _bounces(series) if series else 0
        if rises >= 2:
            return Advice("bouncing", f"bouncing: the {name} loss went up {rises} times in the last "
                          f"{min(len(series), BOUNCE_WINDOW)} epochs; halve α", "scale_lr", 0.5)
    spreads = _spreads(epochs, batches)
    if len(spreads) >= 3 and min(spreads[:-1]) > 0 and spreads[-1] >= SPREAD_FACTOR * min(spreads[:-1]) \
            and loss[-1] >= min(loss[:-1]):
        return Advice("bouncing", f"bouncing: the mini-batch loss's spread rose to {spreads[-1] / min(spreads[:-1]):.1f}× "
                      f"its smallest while the loss stopped improving; halve α", "scale_lr", 0.5)
    return None


def overfitting(epochs: Sequence[dict], batches: Sequence[dict], ctx: Context) -> Advice | None:
    loss, val = _series(epochs, "loss"), _series(epochs, "val_loss")
    if loss is None or val is None or len(loss) < OVERFIT_EPOCHS + 1:
        return None
    gap = [v - l for l, v in zip(loss, val)][-(OVERFIT_EPOCHS + 1):]
    if not all(b > a for a, b in zip(gap, gap[1:])) or gap[-1] <= 0 or val[-1] <= min(val):
        return None
    best = min(range(len(val)), key=val.__getitem__)
    return Advice("overfitting", f"overfitting: the train–validation gap widened for {OVERFIT_EPOCHS} epochs "
                  f"({gap[0]:.3f} → {gap[-1]:.3f}); the best validation loss was epoch {epochs[best].get('epoch')}: "
                  f"stop here (checkpointed)", "stop", None)


def plateau(epochs: Sequence[dict], batches: Sequence[dict], ctx: Context) -> Advice | None:
    val = _series(epochs, "val_loss")
    if val is None or len(val) < PLATEAU_EPOCHS + 1 or converged(epochs, ctx):
        return None
    best_before, recent = min(val[:-PLATEAU_EPOCHS]), val[-PLATEAU_EPOCHS:]
    if min(recent) < (1 - PLATEAU_TOL) * best_before:
        return None
    return Advice("plateau", f"plateau: the validation loss has not beaten {best_before:.3g} by {PLATEAU_TOL:.0%} "
                  f"for {PLATEAU_EPOCHS} epochs; lower α ×0.1", "scale_lr", 0.1)


Rule = Callable[[Sequence[dict], Sequence[dict], Context], "Advice | None"]

#: Every rule, most urgent first (the autopilot applies only the first advice of an epoch).
RULES: dict[str, Rule] = {
    "exploding": exploding,
    "not learning": stuck,
    "bouncing": bouncing,
    "overfitting": overfitting,
    "plateau": plateau,
}


def advise(epochs: Sequence[dict], batches: Sequence[dict], ctx: Context) -> list[Advice]:
    """Every rule that fires on these records, most urgent first."""
    out = []
    for rule in RULES.values():
        advice = rule(epochs, batches, ctx)
        if advice is not None:
            out.append(advice)
    return out


__all__ = ["Advice", "Context", "RULES", "advise", "converged", "not_learning", "settled"]
