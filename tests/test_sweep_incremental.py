"""A refresh of a sweep's page reads only what changed (issue 21: a 200-trial sweep refreshes in < 50 ms)."""

from __future__ import annotations

import json

import pytest

from app.data.sweeps import TrialCurves, load_sweep, trials_frame
from test_search_page import make_sweep, steer
from trainer.contract.rundir import append_jsonl

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
    assert view.trials["trial-0200"].best_val_accuracy == 0.99  # a running trial's best so far
    assert view.trials["trial-0199"].state == "finished" and view.trials["trial-0199"].best_epoch == 4
    fresh = load_sweep(sweep.path)
    assert trials_frame(view).equals(trials_frame(fresh))


def test_a_refresh_in_which_nothing_changed_builds_no_figure(tmp_path):
    """Two tabs of a 60-trial sweep's page, refreshed: the figures are built once per change of the data."""
    from streamlit.testing.v1 import AppTest

    from app.views.sweep_page import sweep_charts

    sweep = make_sweep(tmp_path, n=60, epochs=4, running=2)

    def app(path: str) -> None:
        from pathlib import Path

        from app.views.sweep_page import render_sweep

        render_sweep(Path(path))

    tabs = [AppTest.from_function(app, args=(str(sweep.path),), default_timeout=60) for _ in range(2)]
    for at in tabs:
        at.run()
        assert not at.exception, at.exception
    built = sweep_charts().builds
    assert built == 3 + 4  # curves, score, parallel coordinates, a histogram per searched parameter: once
    keys = [c.key for c in tabs[1].get("plotly_chart")]
    assert keys[0] == "sweep-curves-s1" and len(keys) == 7
    for at in tabs:
        at.run()
    assert sweep_charts().builds == built
    append_jsonl(sweep.trial_run("trial-0060").metrics_path, {"epoch": 5, "val_accuracy": 0.99, "loss": 0.1})
    tabs[0].run()
    assert sweep_charts().builds == 2 * built  # the data changed: built again, once
    tabs[1].run()
    assert sweep_charts().builds == 2 * built
    spec = json.loads(tabs[1].get("plotly_chart")[0].proto.spec)
    assert any(5 in (trace.get("x") or []) for trace in spec["data"])  # the new epoch is drawn
