"""Early stopping of hopeless trials, so a sweep spends its epochs on the promising ones.

Both rules look only at validation-accuracy curves (one value per epoch, current history) and are
asked once each time a trial finishes an epoch. They answer with a reason to stop, or ``None``.
The runner then sends the trial a ``stop`` command: it checkpoints and finishes cleanly, so a
trial stopped by mistake can still be resumed (``panda train --resume``).

* :class:`MedianStopping` (Google Vizier's median stopping rule): after ``grace`` epochs, stop a
  trial whose best accuracy so far is below the median of the other trials' best at the same
  epoch. It never stops more than half of the field and needs no schedule.
* :class:`SuccessiveHalving` (asynchronous, as in ASHA): at rungs ``grace``, ``grace·η``,
  ``grace·η²``, … keep only the top 1/η of the trials that reached that rung so far.

>>> curves = {"a": [0.5, 0.6, 0.7], "b": [0.5, 0.7, 0.8], "c": [0.6, 0.8, 0.9], "d": [0.1, 0.2]}
>>> MedianStopping(grace=2, min_trials=3).should_stop("d", curves)
'median rule: best val_accuracy 0.2 at epoch 2 < median 0.7 of 3 other trials'
>>> MedianStopping(grace=2, min_trials=3).should_stop("c", curves) is None
True
"""

from __future__ import annotations

import statistics
from typing import Mapping, Sequence

Curves = Mapping[str, Sequence[float | None]]


def best_up_to(curve: Sequence[float | None], epochs: int) -> float | None:
    """The best value among the first ``epochs`` epochs (``None`` values skipped)."""
    values = [v for v in curve[:epochs] if v is not None]
    return max(values) if values else None


class NoStopping:
    name = "none"

    def should_stop(self, trial: str, curves: Curves) -> str | None:
        return None


class MedianStopping:
    """Stop a trial whose best so far is below the median of the others' at the same epoch."""

    name = "median"

    def __init__(self, grace: int = 2, min_trials: int = 3):
        self.grace = max(1, int(grace))
        self.min_trials = max(1, int(min_trials))

    def should_stop(self, trial: str, curves: Curves) -> str | None:
        curve = curves.get(trial) or []
        epoch = len(curve)
        if epoch < self.grace:
            return None
        mine = best_up_to(curve, epoch)
        others = [best_up_to(c, epoch) for name, c in curves.items() if name != trial and len(c) >= epoch]
        others = [v for v in others if v is not None]
        if mine is None or len(others) < self.min_trials:
            return None
        median = statistics.median(others)
        if mine < median:
            return f"median rule: best val_accuracy {mine:.4g} at epoch {epoch} < median {median:.4g} of {len(others)} other trials"
        return None


class SuccessiveHalving:
    """At each rung epoch, keep the top 1/η of the trials that got there; stop the rest.

    >>> rule = SuccessiveHalving(grace=1, eta=2)
    >>> rule.rungs(10)
    [1, 2, 4, 8]
    >>> rule.should_stop("b", {"a": [0.9], "b": [0.3]})
    'successive halving: val_accuracy 0.3 at rung epoch 1 is not in the top 1 of 2'
    """

    name = "halving"

    def __init__(self, grace: int = 1, eta: int = 3):
        self.grace = max(1, int(grace))
        self.eta = max(2, int(eta))

    def rungs(self, epochs: int) -> list[int]:
        out, rung = [], self.grace
        while rung < epochs:
            out.append(rung)
            rung *= self.eta
        return out

    def should_stop(self, trial: str, curves: Curves) -> str | None:
        curve = curves.get(trial) or []
        epoch = len(curve)
        rung = self.grace
        while rung < epoch:
            rung *= self.eta
        if rung != epoch:
            return None
        scores = {name: best_up_to(c, epoch) for name, c in curves.items() if len(c) >= epoch}
        scores = {name: v for name, v in scores.items() if v is not None}
        if trial not in scores or len(scores) < self.eta:
            return None
        keep = max(1, len(scores) // self.eta)
        ranked = sorted(scores, key=lambda name: scores[name], reverse=True)
        if trial in ranked[:keep]:
            return None
        return f"successive halving: val_accuracy {scores[trial]:.4g} at rung epoch {epoch} is not in the top {keep} of {len(scores)}"


STOPPERS = {"none": NoStopping, "median": MedianStopping, "halving": SuccessiveHalving}


def make_stopper(name: str, grace: int = 2):
    if name == "none":
        return NoStopping()
    if name == "median":
        return MedianStopping(grace=grace)
    if name == "halving":
        return SuccessiveHalving(grace=grace)
    raise ValueError(f"unknown early stopping rule {name!r}; known: {', '.join(STOPPERS)}")
