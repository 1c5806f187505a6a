"""Early-stopping rules, on hand-made validation-accuracy curves."""

from __future__ import annotations

import pytest

from trainer.search.stopping import MedianStopping, NoStopping, SuccessiveHalving, best_up_to, make_stopper


def test_median_rule_stops_below_the_median_of_others_at_the_same_epoch():
    rule = MedianStopping(grace=2, min_trials=3)
    curves = {"a": [0.5, 0.6, 0.9, 0.95], "b": [0.4, 0.7, 0.8], "c": [0.6, 0.8], "x": [0.3, 0.55]}
    # at epoch 2 the others' best are 0.6, 0.7, 0.8: median 0.7 > 0.55
    assert "median 0.7" in rule.should_stop("x", curves)
    assert rule.should_stop("c", curves) is None
    assert rule.should_stop("x", {**curves, "x": [0.3]}) is None  # inside the grace period
    assert rule.should_stop("x", {"a": [0.9, 0.9], "x": [0.1, 0.1]}) is None  # too few others
    # others compare at x's epoch, not at their own later epochs
    late = {"a": [0.1, 0.2, 0.99], "b": [0.1, 0.2, 0.99], "c": [0.1, 0.2, 0.99], "x": [0.3, 0.3]}
    assert rule.should_stop("x", late) is None


def test_median_rule_ignores_missing_values():
    rule = MedianStopping(grace=1, min_trials=2)
    assert best_up_to([None, 0.4, None], 3) == 0.4
    assert rule.should_stop("x", {"a": [None], "b": [None], "x": [0.1]}) is None


def test_successive_halving_keeps_the_top_third_at_each_rung():
    rule = SuccessiveHalving(grace=1, eta=3)
    assert rule.rungs(30) == [1, 3, 9, 27]
    curves = {"a": [0.9], "b": [0.5], "c": [0.2]}
    assert rule.should_stop("a", curves) is None
    assert "top 1 of 3" in rule.should_stop("b", curves)
    assert rule.should_stop("c", curves) is not None
    assert rule.should_stop("b", {"a": [0.9, 0.9], "b": [0.5, 0.5], "c": [0.2, 0.2]}) is None  # epoch 2: no rung
    assert rule.should_stop("b", {"a": [0.9], "b": [0.5]}) is None  # fewer than eta at the rung


def test_make_stopper():
    assert isinstance(make_stopper("none"), NoStopping)
    assert make_stopper("median", grace=4).grace == 4
    assert isinstance(make_stopper("halving"), SuccessiveHalving)
    with pytest.raises(ValueError, match="unknown early stopping rule"):
        make_stopper("hyperband")
