"""trainer.contract.hparams.step: PBT's explore step moves a value on the table's scale, inside the table's range."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, strategies as st

from trainer.contract.hparams import HYPERPARAMETERS, clamp, scale_of, step
from trainer.search.pbt import FACTORS

#: The float hyperparameters a sweep may search: the ones a step can move.
FLOATS = sorted(name for name, opt in HYPERPARAMETERS.items() if opt.kind == "float" and opt.search)


def _inside(name: str, value: float) -> float:
    """A value inside ``name``'s range (bounded to 0..1000 where the table has no end)."""
    return clamp(name, value)


def test_every_float_of_the_table_declares_a_scale_it_may_be_searched_on():
    assert all(HYPERPARAMETERS[name].scale for name in FLOATS)  # the table says it: no second list of scales
    for name in FLOATS:
        assert scale_of(name) in HYPERPARAMETERS[name].scales
    assert scale_of("lr") == "log" and scale_of("beta") == "log1m"


@pytest.mark.parametrize("factor", FACTORS)
def test_beta_099_stays_in_the_one_minus_beta_neighbourhood(factor):
    moved = step("beta", 0.99, factor)
    assert 1 - moved == pytest.approx(0.01 * factor)
    assert 0.98 < moved < 0.995  # the old × 0.8 gave 0.792: an averaging window of 100 steps cut to 5


@given(name=st.sampled_from(FLOATS), raw=st.floats(0, 1000, allow_nan=False), factor=st.sampled_from(FACTORS))
def test_a_step_stays_in_the_table_s_range_and_moves_by_the_factor_on_its_scale(name, raw, factor):
    opt = HYPERPARAMETERS[name]
    value = opt.check(_inside(name, raw))
    moved = step(name, value, factor)
    assert opt.check(moved) == moved  # inside the table's range, open ends included
    scale = scale_of(name)
    unclamped = 1 - (1 - value) * factor if scale == "log1m" else value * factor
    if clamp(name, unclamped) == unclamped:  # not at an end: exactly one factor on the scale
        assert moved == pytest.approx(unclamped, rel=1e-12, abs=1e-300)
    else:  # at an end: the nearest value the table allows
        ends = [e for e in (opt.low, opt.high) if e is not None]
        assert min(abs(moved - e) for e in ends) <= max(1e-12, 1e-12 * max(map(abs, ends)))


@given(value=st.floats(1e-6, 1 - 1e-6), factor=st.sampled_from(FACTORS))
def test_beta_moves_by_the_factor_in_one_minus_beta_and_back_again(value, factor):
    there = step("beta", value, factor)
    back = step("beta", there, 1 / factor)
    if 1 - (1 - value) * factor >= 0:  # not clamped at 0
        assert math.isclose(back, value, rel_tol=1e-9, abs_tol=1e-12)


def test_the_default_sweep_samples_each_float_on_the_scale_pbt_explores_it_on():
    from trainer.search.space import default_space

    space = default_space()
    floats = [name for name in space if name in FLOATS]
    assert floats and all(space[name].scale == scale_of(name) for name in floats)
