"""A refresh of a sweep's page reads only what changed (issue 21: a 200-trial sweep refreshes in < 50 ms)."""

from __future__ import annotations

import pytest

from app.sweep_data import TrialCurves, load_sweep, trials_frame
from test_search_page import make_sweep, steer
from trainer.rundir import append_jsonl

pytestmark = pytest.mark.timeout(120)


def test_a_refresh_rereads_only_the_files_that_changed(tmp_path):
    sweep = make_sweep(tmp_path, n=200, epochs=4, running=3)
    curves = TrialCurves()
    first = load_sweep(sweep.path, curves)
    after_first = curves.reads
    assert after_first >= 200  # each trial's config (and status) read once
    again = load_sweep(sweep.path, curves)
    assert curves.reads == after_first  # nothing changed: no file read whole
    assert trials_frame(again).equals(trials_frame(first))
    assert trials_frame(again).equals(trials_frame(load_sweep(sweep.path)))  # the same as a cold read

    steer(sweep, "trial-0007", status={"hparams": {"lr": 0.5}})  # one trial's status replaced
    view = load_sweep(sweep.path, curves)
    assert curves.reads == after_first + 1
    assert view.now["trial-0007"]["lr"] == 0.5

    live = sweep.trial_run("trial-0200")
    append_jsonl(live.metrics_path, {"epoch": 5, "val_accuracy": 0.99, "loss": 0.1})  # an appended epoch
    sweep.append_trial({"trial": "trial-0199", "state": "finished", "best_val_accuracy": 0.5, "best_epoch": 4,
                        "epochs": 4})
    view = load_sweep(sweep.path, curves)
    assert curves.reads == after_first + 1  # appends are parsed from where the last read stopped
    assert [r["epoch"] for r in view.curves["trial-0200"]][-1] == 5
    assert view.trials["trial-0200"]["best_val_accuracy"] == 0.99  # a running trial's best so far
    assert view.trials["trial-0199"]["state"] == "finished"
    fresh = load_sweep(sweep.path)
    assert trials_frame(view).equals(trials_frame(fresh))
