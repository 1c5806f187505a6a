"""Early stopping is Optuna's pruners, judged on hand-made validation-accuracy curves."""

from __future__ import annotations

import optuna
import pytest

from trainer.search.stopping import make_pruner


def study_with(pruner, finished: list[list[float]]) -> optuna.Study:
    """A study whose finished trials reported these curves (epoch 1, 2, ...)."""
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for curve in finished:  # as the runner does: report each epoch, ask the pruner, tell the result
        trial = study.ask()
        for epoch, value in enumerate(curve, start=1):
            trial.report(value, epoch)
            trial.should_prune()
        study.tell(trial, max(curve))
    return study


def judged(study: optuna.Study, curve: list[float]) -> bool:
    trial = study.ask()
    for epoch, value in enumerate(curve, start=1):
        trial.report(value, epoch)
        if trial.should_prune():
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return True
    study.tell(trial, max(curve))
    return False


def test_median_pruner_stops_below_the_median_of_finished_trials_at_the_same_epoch():
    good = [[0.5, 0.6, 0.9], [0.4, 0.7, 0.8], [0.6, 0.8, 0.85]]
    pruner = make_pruner("median", grace=2, min_trials=3)
    assert judged(study_with(pruner, good), [0.3, 0.55])  # median at epoch 2 is 0.7
    assert not judged(study_with(pruner, good), [0.3, 0.75])
    assert not judged(study_with(pruner, good), [0.1])  # inside the grace period
    assert not judged(study_with(pruner, good[:2]), [0.1, 0.1])  # fewer than 3 finished trials


def test_successive_halving_keeps_the_top_third_at_a_rung():
    pruner = make_pruner("halving", grace=1)
    study = study_with(pruner, [[0.9], [0.8], [0.7], [0.85], [0.95]])
    assert judged(study, [0.5])
    assert not judged(study_with(pruner, [[0.5], [0.4]]), [0.99])


def test_hyperband_prunes_a_bad_trial_and_spares_a_good_one():
    pruner = make_pruner("hyperband", grace=1, epochs=9)
    curves = [[0.8 + 0.01 * i] * 9 for i in range(12)]
    study = study_with(pruner, curves)
    verdicts = [judged(study, [0.05] * 9) for _ in range(6)]
    assert any(verdicts)  # every bracket's rungs rank 0.05 last
    assert not judged(study, [0.99] * 9)


def test_make_pruner():
    assert isinstance(make_pruner("none"), optuna.pruners.NopPruner)
    assert isinstance(make_pruner("median", grace=4), optuna.pruners.MedianPruner)
    with pytest.raises(ValueError, match="unknown early stopping rule"):
        make_pruner("asha")
