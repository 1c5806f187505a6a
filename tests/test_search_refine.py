"""Coarse to fine: ranges narrow around the best trials, in each parameter's own scale."""

from __future__ import annotations

import math

import pytest

from trainer.search.refine import narrow, narrow_param, top_trials
from trainer.search.samplers import RandomSampler
from trainer.search.space import Choice, IntUniform, Log1mUniform, LogUniform, parse_param_args


def test_log_range_narrows_in_decades_around_the_best():
    lr = LogUniform(1e-4, 1.0)
    narrowed = narrow_param(lr, [1e-3, 1e-2], margin=0.1)
    # span of the best in the exponent: [-3, -2], padded by 0.1 * 4 decades on each side
    assert narrowed.low == pytest.approx(10 ** -3.4, rel=1e-5)
    assert narrowed.high == pytest.approx(10 ** -1.6, rel=1e-5)
    # a uniform-scale narrowing would have been very different (the padding is 0.1 of [0, 1])
    assert narrowed.high < 0.1


def test_log1m_range_narrows_in_powers_of_ten_of_one_minus_beta():
    beta = Log1mUniform(0.9, 0.999)
    narrowed = narrow_param(beta, [0.99], margin=0.25)  # 1 - beta = 1e-2, +- half a decade
    assert narrowed.low == pytest.approx(1 - 10 ** -1.5, rel=1e-5)
    assert narrowed.high == pytest.approx(1 - 10 ** -2.5, rel=1e-5)


def test_int_range_rounds_outward_and_choice_keeps_the_used_values():
    assert narrow_param(IntUniform(50, 100), [60, 70], margin=0.1) == IntUniform(55, 75)
    assert narrow_param(IntUniform(2, 4), [3], margin=0.0) == IntUniform(3, 3)
    assert narrow_param(Choice(("sgd", "momentum", "adam")), ["adam", "sgd", "adam"]) == Choice(("sgd", "adam"))
    assert narrow_param(Choice((True, False)), [False]) == Choice((False,))
    assert narrow_param(Choice((1, True)), [True]) == Choice((True,))  # 1 == True, but not the same value


def test_narrowing_never_leaves_the_old_range_and_contains_the_best():
    space = parse_param_args(["lr=log:1e-4:1", "beta=log1m:0.9:0.999", "units=int:50:100", "dropout=float:0:0.5"])
    configs = RandomSampler(5).sample(space, 30)
    best = configs[:3]
    new = narrow(space, best, margin=0.05)
    for name in ("lr", "beta", "units", "dropout"):
        old, nw = space[name], new[name]
        assert old.low <= nw.low <= nw.high <= old.high
        for b in best:
            assert nw.low <= b[name] <= nw.high or math.isclose(b[name], nw.low, rel_tol=1e-5) or math.isclose(b[name], nw.high, rel_tol=1e-5)
        # narrower in its own scale unless the best already span nearly everything
        span = max(old.to_unit(b[name]) for b in best) - min(old.to_unit(b[name]) for b in best)
        rounding = 2 / (old.high - old.low) if name == "units" else 0  # whole numbers round outward
        assert old.to_unit(nw.high) - old.to_unit(nw.low) <= span + 0.1 + rounding + 1e-6


def test_no_scores_or_unused_parameters_keep_their_range():
    space = parse_param_args(["lr=log:1e-4:1", "beta=log1m:0.9:0.999", "optimizer=choice:sgd,adam"])
    new = narrow(space, [{"lr": 1e-2, "optimizer": "sgd"}])  # sgd trials have no beta
    assert new["beta"] == space["beta"] and new["optimizer"] == Choice(("sgd",))
    assert narrow(space, []) == space
    with pytest.raises(ValueError, match="margin"):
        narrow(space, [], margin=-1)


def test_top_trials_ranks_by_score_and_ignores_unscored():
    trials = [
        {"trial": "a", "best_val_accuracy": 0.5},
        {"trial": "b", "best_val_accuracy": None, "state": "failed"},
        {"trial": "c", "best_val_accuracy": 0.9},
        {"trial": "d", "best_val_accuracy": 0.7},
    ]
    assert [t["trial"] for t in top_trials(trials, 2)] == ["c", "d"]
    assert [t["trial"] for t in top_trials(trials, 10)] == ["c", "d", "a"]


def test_coarse_to_fine_rounds_home_in_on_the_optimum():
    """Simulated rounds on a known objective: the lr range shrinks around 10^-2.5 round by round."""
    space = parse_param_args(["lr=log:1e-5:1", "units=int:10:200"])
    target = -2.5

    def score(config):
        return -abs(math.log10(config["lr"]) - target) - abs(config["units"] - 120) / 400

    widths, trials = [], []
    for round in range(1, 5):
        for config in RandomSampler(11).sample(space, 12, round=round):
            trials.append({"params": config, "best_val_accuracy": score(config)})
        widths.append(math.log10(space["lr"].high) - math.log10(space["lr"].low))
        space = narrow(space, [t["params"] for t in top_trials(trials, 3)], margin=0.1)
    assert widths[0] == pytest.approx(5.0)
    assert all(later < earlier for earlier, later in zip(widths, widths[1:]))
    assert widths[-1] < 1.0  # under one decade after three narrowings
    assert space["lr"].low <= 10**target <= space["lr"].high
    # units weigh 20x less than lr in the score, so their range shrinks but need not hold 120
    assert space["units"].high - space["units"].low < 190
    assert space["units"].high - space["units"].low < 190
