"""Early stopping of hopeless trials: Optuna's pruners, judged on what each run really did.

``--early-stop`` picks one of Optuna's pruners; ``--grace`` is the first epoch it may judge:

* ``median`` — :class:`optuna.pruners.MedianPruner` (Google Vizier's median stopping rule): a
  trial whose best validation accuracy so far is below the median of the finished trials' at the
  same epoch is stopped; it waits until ``min_trials`` trials have finished.
* ``halving`` — :class:`optuna.pruners.SuccessiveHalvingPruner` (asynchronous, as in ASHA): at
  rungs ``grace``, ``grace·η``, ``grace·η²``, … only the top 1/η go on (η = 3).
* ``hyperband`` — :class:`optuna.pruners.HyperbandPruner`: several halving brackets with
  different grace periods, from ``grace`` to ``--epochs``.

The runner reads each trial's ``metrics.jsonl`` (its own run directory), reports every new
epoch's ``val_accuracy`` to the trial's Optuna record, and asks ``should_prune()``. A steered
trial (α nudged by hand in the dashboard) is therefore judged on the curve it really trained.
A pruned trial gets a ``stop`` command through its run directory: it checkpoints and finishes
cleanly, so one stopped by mistake can still be resumed (``panda train --resume``).

>>> type(make_pruner("median", grace=3)).__name__, make_pruner("median", grace=3)._n_warmup_steps
('MedianPruner', 3)
"""

from __future__ import annotations

import optuna

__all__ = ["PRUNERS", "make_pruner"]

#: ``--early-stop`` values.
PRUNERS = ("none", "median", "halving", "hyperband")


def make_pruner(name: str, grace: int = 2, epochs: int = 100, min_trials: int = 3) -> optuna.pruners.BasePruner:
    """The Optuna pruner for ``--early-stop NAME``; ``grace`` is the first epoch it may stop a trial at."""
    grace = max(1, int(grace))
    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=min_trials, n_warmup_steps=grace)  # judged from epoch `grace` on
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=grace, reduction_factor=3)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=grace, max_resource=max(grace, int(epochs)), reduction_factor=3)
    raise ValueError(f"unknown early stopping rule {name!r}; known: {', '.join(PRUNERS)}")
