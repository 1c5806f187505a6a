"""Coarse to fine: after a round, zoom every range in on the region where the best trials are.

Each range is narrowed *in its own scale*: the best trials' values are placed on the unit
interval of that scale (:meth:`~trainer.search.space.LogUniform.to_unit`), the new range is their
span padded by ``margin`` of the old range on each side, and it is mapped back. So a learning
rate zooms by decades, a β by powers of ten in 1 - β, and a width by units. A choice keeps only
the values the best trials used. The next round then samples densely inside the smaller box.

>>> from trainer.search.space import parse_param_args
>>> space = parse_param_args(["lr=log:1e-4:1", "units=int:50:100", "batch_norm=choice:true,false"])
>>> best = [{"lr": 1e-3, "units": 60, "batch_norm": True}, {"lr": 1e-2, "units": 70, "batch_norm": True}]
>>> narrow(space, best, margin=0.1).describe()
['lr=log:0.000398107:0.0251189', 'units=int:55:75', 'batch_norm=true']
"""

from __future__ import annotations

from typing import Any, Iterable

from trainer.search.space import Choice, Param, SearchSpace

#: The default padding around the best trials, as a fraction of the current range in its scale.
DEFAULT_MARGIN = 0.1


def narrow_param(param: Param, values: list[Any], margin: float = DEFAULT_MARGIN) -> Param:
    """``param`` narrowed to the span of ``values`` plus ``margin`` on each side."""
    if not values:
        return param
    if isinstance(param, Choice):
        kept = tuple(v for v in param.values if any(v == w and type(v) is type(w) for w in values))
        return Choice(kept) if kept else param
    units = [min(max(param.to_unit(v), 0.0), 1.0) for v in values]
    return param.within(min(units) - margin, max(units) + margin)


def narrow(space: SearchSpace, best: Iterable[dict[str, Any]], margin: float = DEFAULT_MARGIN) -> SearchSpace:
    """A smaller space around the configurations in ``best`` (the top trials, any order).

    A parameter that none of the best trials used (β when they all ran plain sgd) keeps its range.
    """
    if not margin >= 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    best = list(best)
    out = {}
    for name, param in space.items():
        values = [b[name] for b in best if b.get(name) is not None]
        out[name] = narrow_param(param, values, margin)
    return SearchSpace(out)


def top_trials(trials: Iterable[dict], k: int, key: str = "best_val_accuracy") -> list[dict]:
    """The ``k`` trials with the highest ``key`` (trials without a score are never among them).

    >>> [t["trial"] for t in top_trials([{"trial": "a", "best_val_accuracy": 0.5},
    ...     {"trial": "b", "best_val_accuracy": 0.9}, {"trial": "c", "best_val_accuracy": None}], 2)]
    ['b', 'a']
    """
    scored = [t for t in trials if isinstance(t.get(key), (int, float))]
    return sorted(scored, key=lambda t: t[key], reverse=True)[: max(0, k)]
