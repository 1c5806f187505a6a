"""Samplers: Optuna's, fed with Panda's search space (random by default, a grid, TPE).

Sampling is Optuna's: :class:`RandomSampler` is ``optuna.samplers.RandomSampler``,
:class:`GridSampler` builds an ``optuna.samplers.GridSampler``, :class:`TPESampler` an
``optuna.samplers.TPESampler``. Panda adds two things on top:

* what the grid is: :func:`grid_shape` fits a grid into ``--trials`` (every value of a choice,
  the rest of the budget shared by the ranges) and each range's points are spread evenly *in its
  own scale* (:meth:`~trainer.search.params.LogUniform.grid`);
* reproducible streams for random search: each draw comes from Optuna's random sampler seeded
  with ``[seed, round, parameter, trial number]``, so asking for more trials only appends
  configurations, and adding a parameter leaves the others' values as they were.

Each class makes the Optuna sampler for one round (:meth:`PandaSampler.optuna`);
:meth:`PandaSampler.sample` asks an in-memory study for configurations (the dry run, the tests).

>>> from trainer.search.space import parse_param_args
>>> space = parse_param_args(["lr=log:1e-4:1", "units=int:50:100"])
>>> RandomSampler(seed=0).sample(space, 2) == RandomSampler(seed=0).sample(space, 2)
True
>>> sorted(map(str, GridSampler().sample(space, 4)))
["{'lr': 0.0001, 'units': 100}", "{'lr': 0.0001, 'units': 50}", "{'lr': 1.0, 'units': 100}", "{'lr': 1.0, 'units': 50}"]
"""

from __future__ import annotations

import math
import warnings
import zlib
from typing import Any

import numpy as np
import optuna

from trainer.search.space import SearchSpace

__all__ = ["PandaSampler", "RandomSampler", "GridSampler", "TPESampler", "SAMPLERS", "grid_shape", "make_sampler"]

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _seed(*entropy: int) -> int:
    return int(np.random.SeedSequence([int(e) for e in entropy]).generate_state(1)[0])


class _StreamRandomSampler(optuna.samplers.RandomSampler):
    """Optuna's random sampler, with one seeded stream per (seed, round, parameter, trial number)."""

    def __init__(self, seed: int, round: int):
        super().__init__(seed=_seed(seed, round))
        self._panda_seed, self._panda_round = int(seed), int(round)

    def sample_independent(self, study, trial, param_name, param_distribution):
        seed = _seed(self._panda_seed, self._panda_round, zlib.crc32(param_name.encode("utf-8")), trial.number)
        return optuna.samplers.RandomSampler(seed=seed).sample_independent(study, trial, param_name, param_distribution)


class PandaSampler:
    """``--sampler NAME``: makes the Optuna sampler of each round."""

    name = ""

    def __init__(self, seed: int = 0):
        self.seed = int(seed)

    def optuna(self, space: SearchSpace, n: int, round: int = 1) -> optuna.samplers.BaseSampler:
        raise NotImplementedError

    def round_size(self, space: SearchSpace, n: int) -> int:
        """How many trials a round of ``n`` asks for (a grid may have fewer points)."""
        return n

    def sample(self, space: SearchSpace, n: int, round: int = 1) -> list[dict[str, Any]]:
        """A round's configurations from an in-memory study (no results told: what a dry run shows)."""
        study = optuna.create_study(direction="maximize", sampler=self.optuna(space, n, round))
        distributions = space.distributions()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return [space.from_optuna(study.ask(distributions).params) for _ in range(self.round_size(space, n))]


class RandomSampler(PandaSampler):
    """Every parameter drawn independently on its own scale (the default)."""

    name = "random"

    def optuna(self, space: SearchSpace, n: int, round: int = 1) -> optuna.samplers.BaseSampler:
        return _StreamRandomSampler(self.seed, round)


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


class GridSampler(PandaSampler):
    """Optuna's grid sampler over :func:`grid_shape`'s grid, in a seeded order; a round never
    asks for more trials than the grid has points."""

    name = "grid"

    def _grid(self, space: SearchSpace, n: int) -> dict[str, list]:
        shape = grid_shape(space, n)
        return {p.optuna_name(name): [p.to_optuna(v) for v in p.grid(shape[name])] for name, p in space.items()}

    def round_size(self, space: SearchSpace, n: int) -> int:
        return min(n, math.prod(len(values) for values in self._grid(space, n).values()))

    def optuna(self, space: SearchSpace, n: int, round: int = 1) -> optuna.samplers.BaseSampler:
        return optuna.samplers.GridSampler(self._grid(space, n), seed=_seed(self.seed, round))


class TPESampler(PandaSampler):
    """Optuna's Tree-structured Parzen Estimator: random for the first trials, then it proposes
    configurations near the good ones seen so far (sequential: it learns from finished trials)."""

    name = "tpe"

    def optuna(self, space: SearchSpace, n: int, round: int = 1) -> optuna.samplers.BaseSampler:
        return optuna.samplers.TPESampler(seed=_seed(self.seed, round), n_startup_trials=min(10, max(2, n // 2)))


SAMPLERS: dict[str, type[PandaSampler]] = {"random": RandomSampler, "grid": GridSampler, "tpe": TPESampler}


def make_sampler(name: str, seed: int = 0) -> PandaSampler:
    try:
        return SAMPLERS[name](seed)
    except KeyError:
        raise ValueError(f"unknown sampler {name!r}; known: {', '.join(SAMPLERS)}") from None
