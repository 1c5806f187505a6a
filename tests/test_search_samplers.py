"""Statistical tests of the samplers (Optuna's, on Panda's scales): each scale spends trials where the course says it should.

Counts are compared with their binomial expectation within 5 standard deviations: with fixed seeds
the tests are deterministic, and a correct sampler would fail one only with probability ~6e-7 per
check, while a wrong scale misses by tens of sigmas (uniform lr puts 90% above 0.1, not 25%).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from trainer.search.samplers import GridSampler, RandomSampler, grid_shape, make_sampler
from trainer.search.space import parse_param_args

N = 4000


def within_5_sigma(count: int, n: int, p: float) -> bool:
    return abs(count - n * p) <= 5 * math.sqrt(n * p * (1 - p))


def draw(spec: str, n: int = N, seed: int = 0) -> np.ndarray:
    space = parse_param_args([spec])
    name = next(iter(space))
    return np.array([c[name] for c in RandomSampler(seed).sample(space, n)])


def test_log_uniform_lr_puts_a_quarter_in_each_decade():
    lr = draw("lr=log:1e-4:1")
    assert lr.min() >= 1e-4 and lr.max() <= 1.0
    for low in (1e-4, 1e-3, 1e-2, 1e-1):
        count = int(((lr >= low) & (lr < low * 10)).sum())
        assert within_5_sigma(count, N, 0.25), (low, count)


def test_log_uniform_exponent_passes_kolmogorov_smirnov():
    exponent = np.sort(np.log10(draw("lr=log:1e-4:1", seed=3)))
    cdf = (exponent + 4) / 4  # uniform on [-4, 0]
    n = len(cdf)
    d = max(np.max(np.arange(1, n + 1) / n - cdf), np.max(cdf - np.arange(0, n) / n))
    assert d < 1.95 / math.sqrt(n)  # the 0.1% critical value


def test_uniform_lr_puts_ninety_percent_in_the_top_decade():
    lr = draw("lr=float:1e-4:1")
    p = (1 - 0.1) / (1 - 1e-4)
    assert within_5_sigma(int((lr >= 0.1).sum()), N, p)
    # ...which is what the log scale avoids: the top decade gets a quarter there
    assert within_5_sigma(int((draw("lr=log:1e-4:1") >= 0.1).sum()), N, 0.25)


def test_log1m_beta_splits_evenly_between_0_9_to_0_99_and_0_99_to_0_999():
    beta = draw("beta=log1m:0.9:0.999")
    assert beta.min() >= 0.9 and beta.max() <= 0.999
    assert within_5_sigma(int((beta < 0.99).sum()), N, 0.5)
    # 1 - beta < 0.005 <=> -log10(1 - beta) > 2.301: (3 - 2.301) / 2 of the exponent range
    p = (3 - (-math.log10(0.005))) / 2
    assert within_5_sigma(int((beta > 0.995).sum()), N, p)
    # a uniform beta over the same range spends 90.9% of its trials below 0.99
    uniform = draw("beta=float:0.9:0.999")
    assert within_5_sigma(int((uniform < 0.99).sum()), N, 0.09 / 0.099)


def test_uniform_integers_hit_every_value_equally_and_both_ends():
    n = 51 * 200
    units = draw("units=int:50:100", n=n)
    assert units.dtype.kind == "i"
    values, counts = np.unique(units, return_counts=True)
    assert list(values) == list(range(50, 101))
    for count in counts:
        assert within_5_sigma(int(count), n, 1 / 51)
    layers = draw("layers=int:2:4", n=3000)
    for value in (2, 3, 4):
        assert within_5_sigma(int((layers == value).sum()), 3000, 1 / 3)


def test_choices_are_equally_likely():
    space = parse_param_args(["optimizer=choice:sgd,momentum,rmsprop,adam", "batch_norm=choice:true,false"])
    samples = RandomSampler(1).sample(space, N)
    for name in ("sgd", "momentum", "rmsprop", "adam"):
        assert within_5_sigma(sum(s["optimizer"] == name for s in samples), N, 0.25)
    assert within_5_sigma(sum(s["batch_norm"] is True for s in samples), N, 0.5)
    assert all(isinstance(s["batch_norm"], bool) for s in samples)


def test_seeded_and_reproducible_and_rounds_differ():
    space = parse_param_args(["lr=log:1e-4:1", "units=int:50:100", "optimizer=choice:adam,sgd"])
    a = RandomSampler(7).sample(space, 20)
    assert a == RandomSampler(7).sample(space, 20)
    assert a != RandomSampler(8).sample(space, 20)
    assert a != RandomSampler(7).sample(space, 20, round=2)
    assert RandomSampler(7).sample(space, 5) == a[:5]  # a prefix: more trials never reshuffles the first
    wider = parse_param_args(["lr=log:1e-4:1", "units=int:50:100", "optimizer=choice:adam,sgd", "dropout=float:0:0.5"])
    b = RandomSampler(7).sample(wider, 20)
    assert [{k: v for k, v in p.items() if k != "dropout"} for p in b] == a  # a new parameter leaves the others


def test_grid_is_even_in_each_parameters_scale():
    space = parse_param_args(["lr=log:1e-4:1", "beta=log1m:0.9:0.999"])
    assert grid_shape(space, 9) == {"lr": 3, "beta": 3}
    points = GridSampler().sample(space, 9)
    assert len(points) == 9 and len({(p["lr"], p["beta"]) for p in points}) == 9
    assert sorted({p["lr"] for p in points}) == [1e-4, 1e-2, 1.0]
    assert sorted({p["beta"] for p in points}) == [0.9, 0.99, 0.999]


def test_grid_fits_the_budget_and_keeps_every_choice():
    space = parse_param_args(["lr=log:1e-4:1", "units=int:50:100", "batch_norm=choice:true,false"])
    shape = grid_shape(space, 20)
    assert shape["batch_norm"] == 2 and math.prod(shape.values()) <= 20
    assert math.prod(shape.values()) * 2 > 20 or shape["lr"] * shape["units"] > 1  # uses the budget
    assert len(GridSampler().sample(space, 20)) == math.prod(shape.values())
    # fewer trials than choices: a seeded subset
    many = parse_param_args(["optimizer=choice:sgd,momentum,rmsprop,adam", "batch_norm=choice:true,false"])
    subset = GridSampler(seed=1).sample(many, 3)
    assert len(subset) == 3 and subset == GridSampler(seed=1).sample(many, 3)
    # an integer range never repeats a value
    assert sorted(p["layers"] for p in GridSampler().sample(parse_param_args(["layers=int:2:4"]), 10)) == [2, 3, 4]


def test_random_search_tries_more_distinct_values_than_a_grid():
    space = parse_param_args(["lr=log:1e-4:1", "beta=log1m:0.9:0.999"])
    random_lrs = {p["lr"] for p in RandomSampler(0).sample(space, 16)}
    grid_lrs = {p["lr"] for p in GridSampler().sample(space, 16)}
    assert len(random_lrs) == 16 and len(grid_lrs) == 4


def test_unknown_sampler():
    with pytest.raises(ValueError, match="unknown sampler 'sobol'"):
        make_sampler("sobol")


def test_the_samplers_are_optunas():
    import optuna

    space = parse_param_args(["lr=log:1e-4:1", "beta=log1m:0.9:0.999"])
    assert isinstance(RandomSampler(0).optuna(space, 4), optuna.samplers.RandomSampler)
    assert isinstance(GridSampler(0).optuna(space, 4), optuna.samplers.GridSampler)
    assert isinstance(make_sampler("tpe").optuna(space, 4), optuna.samplers.TPESampler)
    # log1m is stored as 1 - beta, log-scaled; lr as a log-scaled float
    dists = space.distributions()
    assert dists["lr"].log and (dists["lr"].low, dists["lr"].high) == (1e-4, 1.0)
    assert dists["1-beta"].log and dists["1-beta"].low == pytest.approx(1e-3) and dists["1-beta"].high == pytest.approx(0.1)
