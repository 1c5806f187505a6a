"""Samplers: turn a :class:`~trainer.search.space.SearchSpace` into configurations to train.

Random search is the default because, when only a few hyperparameters matter, a grid of N trials
tries only N^(1/d) distinct values of each, while N random trials try N distinct values of every
one. The grid is here to compare against, as in the course.

Both are seeded and reproducible: the same space, seed and round give the same configurations
(numpy's ``Generator`` seeded with ``[seed, round, ...]``, so rounds are independent streams).

>>> from trainer.search.space import parse_param_args
>>> space = parse_param_args(["lr=log:1e-4:1", "units=int:50:100"])
>>> RandomSampler(seed=0).sample(space, 2) == RandomSampler(seed=0).sample(space, 2)
True
>>> GridSampler().sample(space, 4)
[{'lr': 0.0001, 'units': 50}, {'lr': 0.0001, 'units': 100}, {'lr': 1.0, 'units': 50}, {'lr': 1.0, 'units': 100}]
"""

from __future__ import annotations

import itertools
import math
import zlib
from typing import Any

import numpy as np

from trainer.search.space import SearchSpace


class RandomSampler:
    """Every parameter drawn independently on its own scale, each from its own random stream.

    A stream per parameter (seeded with the seed, the round and the parameter's name) means that
    asking for more trials only appends configurations, and adding a parameter to the space leaves
    the values drawn for the others unchanged.
    """

    name = "random"

    def __init__(self, seed: int = 0):
        self.seed = int(seed)

    def _stream(self, name: str, round: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, round, zlib.crc32(name.encode("utf-8"))])

    def sample(self, space: SearchSpace, n: int, round: int = 1) -> list[dict[str, Any]]:
        """``n`` configurations for ``round`` (1-based)."""
        columns = {name: param.sample(self._stream(name, round), n) for name, param in space.items()}
        return [{name: columns[name][i] for name in space} for i in range(n)]


def grid_shape(space: SearchSpace, n: int) -> dict[str, int]:
    """Points per axis so that the grid has at most ``n`` points (and as many as fit).

    Choices keep all their values; the remaining budget is shared evenly by the ranges, one more
    point at a time, round-robin.

    >>> from trainer.search.space import parse_param_args
    >>> grid_shape(parse_param_args(["lr=log:1e-4:1", "beta=log1m:0.9:0.999", "batch_norm=choice:true,false"]), 20)
    {'lr': 3, 'beta': 3, 'batch_norm': 2}
    """
    shape = {name: int(p.size) if math.isfinite(p.size) and p.scale == "choice" else 1 for name, p in space.items()}
    ranges = [name for name, p in space.items() if p.scale != "choice"]
    total = math.prod(shape.values())
    grew = True
    while grew:
        grew = False
        for name in ranges:
            k = shape[name]
            if k + 1 > space[name].size:
                continue
            if total // k * (k + 1) <= n:
                total = total // k * (k + 1)
                shape[name] = k + 1
                grew = True
    return shape


class GridSampler:
    """The full grid of :func:`grid_shape`; its points in a fixed order, the first ``n`` kept."""

    name = "grid"

    def __init__(self, seed: int = 0):
        self.seed = int(seed)

    def sample(self, space: SearchSpace, n: int, round: int = 1) -> list[dict[str, Any]]:
        shape = grid_shape(space, n)
        axes = [space[name].grid(shape[name]) for name in space]
        points = [dict(zip(space, values)) for values in itertools.product(*axes)]
        if len(points) > n:  # more choices than trials: an even, seeded subset
            rng = np.random.default_rng([self.seed, round])
            keep = sorted(rng.choice(len(points), size=n, replace=False))
            points = [points[i] for i in keep]
        return points


SAMPLERS = {"random": RandomSampler, "grid": GridSampler}


def make_sampler(name: str, seed: int = 0):
    try:
        return SAMPLERS[name](seed)
    except KeyError:
        raise ValueError(f"unknown sampler {name!r}; known: {', '.join(SAMPLERS)}") from None
