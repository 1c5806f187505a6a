"""The Sweeps page (data, figures, page), on a sweep folder synthesized through RunDir and SweepDir."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from app.figures import sweep_charts
from app.data import sweeps as sweep_data
from trainer.contract.rundir import RunDir, append_jsonl
from trainer.search.runner import SweepSettings
from trainer.search.samplers import RandomSampler
from trainer.search.space import parse_param_args, resolve_trial
from trainer.search.sweepdir import SweepDir

SPACE = ["lr=log:1e-4:1", "beta=log1m:0.9:0.999", "units=int:50:100", "optimizer=choice:sgd,adam", "decay=none"]


def make_sweep(root: Path, n: int = 24, epochs: int = 4, running: int = 0, name: str = "s1") -> SweepDir:
    """A finished sweep of ``n`` trials (the last ``running`` still running), with curves."""
    space = parse_param_args(SPACE)
    sweep = SweepDir(root / name).create()
    sweep.write_spec({"name": name, "seed": 0, "sampler": "random", "space": space.to_json(), "param_order": list(space),
                      "settings": SweepSettings(trials=n, epochs=epochs).to_json(),
                      "rounds": [{"round": 1, "space": space.to_json(), "around": []}], "state": "running" if running else "finished"})
    for i, params in enumerate(RandomSampler(0).sample(space, n), start=1):
        params = resolve_trial(params)
        name = f"trial-{i:04d}"
        sweep.append_trial({"trial": name, "round": 1, "state": "queued", "params": params})
        run = RunDir(sweep.path / name).create()
        run.write_config({"name": name, "hparams": {"lr": params["lr"], "units": params["units"], "batch_norm": True}, "epochs": epochs})
        quality = 1 - abs(math.log10(params["lr"]) + 2) / 4
        curve = [quality * (e / epochs) for e in range(1, epochs + 1)]
        append_jsonl(run.metrics_path, *[{"epoch": e, "val_accuracy": v, "loss": 1 / e} for e, v in enumerate(curve, start=1)])
        if i > n - running:
            sweep.append_trial({"trial": name, "state": "running", "pid": 1})
        else:
            sweep.append_trial({"trial": name, "state": "finished", "best_val_accuracy": max(curve), "best_epoch": epochs, "epochs": epochs})
    return sweep


def test_load_and_table(tmp_path):
    sweep = make_sweep(tmp_path, n=10, running=2)
    view = sweep_data.load_sweep(sweep.path)
    assert view.searched() == ["lr", "beta", "units", "optimizer"]  # decay is fixed
    frame = sweep_data.trials_frame(view)
    assert len(frame) == 10 and list(frame.columns[:4]) == ["trial", "round", "state", "best_val_accuracy"]
    assert {"lr", "beta", "units", "optimizer"} <= set(frame.columns) and "decay" not in frame.columns
    scores = list(frame["best_val_accuracy"])
    assert scores == sorted(scores, reverse=True)  # best first
    assert frame.loc[0, "trial"] == sweep_data.best_trial(view)
    # running trials get their best so far from their metrics
    running = frame[frame["state"] == "running"]
    assert len(running) == 2 and running["best_val_accuracy"].notna().all()
    # sgd trials have no beta
    sgd = frame[frame["optimizer"] == "sgd"]
    assert len(sgd) and sgd["beta"].isna().all()
    assert sweep_data.counts(view)["running"] == 2 and sweep_data.counts(view)["finished"] == 8


def test_curves_overlay_every_trial_and_highlight_the_best(tmp_path):
    view = sweep_data.load_sweep(make_sweep(tmp_path, n=6).path)
    fig = sweep_charts.curves_figure(view)
    assert len(fig.data) == 6
    best = sweep_data.best_trial(view)
    assert fig.data[-1].name == best and fig.data[-1].line.width > fig.data[0].line.width
    assert list(fig.data[-1].x) == [1, 2, 3, 4]
    assert fig.layout.xaxis.title.text == "epoch"


def test_score_against_lr_uses_a_log_axis(tmp_path):
    view = sweep_data.load_sweep(make_sweep(tmp_path, n=12).path)
    fig = sweep_charts.score_vs_param_figure(view, "lr")
    assert fig.layout.xaxis.type == "log"
    xs = np.concatenate([np.array(t.x, dtype=float) for t in fig.data])
    assert len(xs) == 12 and xs.min() >= 1e-4 and xs.max() <= 1
    units = sweep_charts.score_vs_param_figure(view, "units")
    assert units.layout.xaxis.type == "linear"
    beta = sweep_charts.score_vs_param_figure(view, "beta")  # plotted as 1 - beta, on a reversed log axis
    assert beta.layout.xaxis.type == "log" and beta.layout.xaxis.autorange == "reversed"
    assert all(0 < x <= 0.1 + 1e-9 for t in beta.data for x in t.x)


def test_parallel_coordinates_one_axis_per_searched_parameter_plus_the_score(tmp_path):
    view = sweep_data.load_sweep(make_sweep(tmp_path, n=12).path)
    fig = sweep_charts.parallel_coordinates_figure(view)
    dims = fig.data[0].dimensions
    assert [d.label for d in dims] == ["lr", "beta", "units", "optimizer", "score"]  # short: they share a phone's width
    lr = dims[0]
    assert all(-4 <= v <= 0 for v in lr.values)  # log10(lr)
    labels = dict(zip(lr.tickvals, lr.ticktext))
    assert labels[-2.0] == "1e-2" and labels[-3.0] == "1e-3"  # ticks at decades, labelled as values
    assert list(dims[3].ticktext) == ["sgd", "adam"] and set(dims[3].values) <= {0.0, 1.0}
    assert list(fig.data[0].line.color) == list(dims[-1].values)


def test_histograms_bin_log_parameters_in_log_space(tmp_path):
    view = sweep_data.load_sweep(make_sweep(tmp_path, n=400, epochs=1).path)
    fig = sweep_charts.histograms_figure(view, bins=4)
    lr = fig.data[0]
    # four log10 bins over [1e-4, 1], one per decade, each holding about a quarter (5-sigma binomial)
    assert np.allclose(np.array(lr.x, dtype=float), [-3.5, -2.5, -1.5, -0.5])
    for count in lr.y:
        assert abs(count - 100) <= 5 * math.sqrt(400 * 0.25 * 0.75)
    assert sum(lr.y) == 400
    beta = fig.data[1]
    assert sum(beta.y) < 400  # sgd trials have no beta
    optimizer = fig.data[3]
    assert list(optimizer.x) == ["sgd", "adam"] and sum(optimizer.y) == 400
    titles = [a.text for a in fig.layout.annotations]
    assert titles[:2] == ["lr (log scale)", "beta (1 − beta on a log scale)"]


def test_trial_key_is_relative_to_the_dashboards_run_folder(tmp_path):
    view = sweep_data.load_sweep(make_sweep(tmp_path, n=2).path)
    assert sweep_data.trial_key(view, "trial-0001") == "s1/trial-0001"
    assert sweep_data.trial_key(view, "trial-0001", runs_root=tmp_path / "s1") == "trial-0001"
    assert sweep_data.trial_key(view, "trial-0001", runs_root="/elsewhere") == str(view.path / "trial-0001")


def test_the_page_renders_and_babysit_opens_the_trial(tmp_path):
    from streamlit.testing.v1 import AppTest

    sweep = make_sweep(tmp_path, n=8)

    def app(path: str) -> None:
        from pathlib import Path

        from app.views.sweep_page import render_sweep

        render_sweep(Path(path))

    at = AppTest.from_function(app, args=(str(sweep.path),), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    # curves, score, parallel coordinates, and one histogram per searched parameter (lr, beta, units, optimizer)
    assert [c.key for c in at.get("plotly_chart")] == [
        "sweep-curves-s1", "sweep-lr-s1", "sweep-parcoords-s1", *(f"sweep-hist-s1-{p}" for p in ("lr", "beta", "units", "optimizer"))]
    assert len(at.dataframe) == 1 and len(at.dataframe[0].value) == 8
    best = sweep_data.best_trial(sweep_data.load_sweep(sweep.path))
    assert at.selectbox[0].value == best
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert at.session_state["run"] == f"s1/{best}"
    assert at.query_params["run"] == f"s1/{best}"


def test_not_a_sweep_is_an_error_on_the_page(tmp_path):
    from streamlit.testing.v1 import AppTest

    def app(path: str) -> None:
        from pathlib import Path

        from app.views.sweep_page import render_sweep

        render_sweep(Path(path))

    at = AppTest.from_function(app, args=(str(tmp_path),), default_timeout=30)
    at.run()
    assert not at.exception
    assert "not a Panda sweep" in at.error[0].value


def test_no_tensorflow_import():
    import subprocess
    import sys

    code = "import sys, app.views.sweep_page; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_data_and_figures_import_no_streamlit():
    import subprocess
    import sys

    code = ("import sys, app.data.sweeps; plotly = 'plotly' in sys.modules; import app.figures.sweep_charts; "
            "print(plotly, 'streamlit' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False False"


def test_the_page_keeps_one_reader_per_sweep_and_the_data_layer_none(tmp_path):
    from app.views import sweep_page

    assert not [name for name, v in vars(sweep_data).items() if isinstance(v, sweep_data.TrialCurves)]
    sweep = make_sweep(tmp_path, n=2)
    assert sweep_page.trial_curves(str(sweep.path)) is sweep_page.trial_curves(str(sweep.path))
    assert sweep_page.trial_curves(str(sweep.path)) is not sweep_page.trial_curves(str(tmp_path))


def test_the_sweeps_page_lists_sweeps_and_opens_the_chosen_one(tmp_path):
    from streamlit.testing.v1 import AppTest

    make_sweep(tmp_path, n=6)
    second = make_sweep(tmp_path / "more", n=3).path.rename(tmp_path / "s2")
    (tmp_path / "plain-run").mkdir()

    def app(root: str) -> None:
        from pathlib import Path

        from app.views.sweep_page import render_sweeps

        render_sweeps(Path(root))

    at = AppTest.from_function(app, args=(str(tmp_path),), default_timeout=60)
    at.query_params["sweep"] = "s1"
    at.run()
    assert not at.exception, at.exception
    assert at.sidebar.selectbox[0].options == ["s1", "s2"]
    assert at.sidebar.selectbox[0].value == "s1" and len(at.dataframe[0].value) == 6
    at.sidebar.selectbox[0].select("s2").run()
    assert at.query_params["sweep"] == "s2"
    assert len(at.dataframe[0].value) == 3 and second.name == "s2"


def test_the_sweeps_page_without_sweeps_says_how_to_start_one(tmp_path):
    from streamlit.testing.v1 import AppTest

    def app(root: str) -> None:
        from pathlib import Path

        from app.views.sweep_page import render_sweeps

        render_sweeps(Path(root))

    at = AppTest.from_function(app, args=(str(tmp_path),), default_timeout=30)
    at.run()
    assert not at.exception, at.exception
    assert "panda sweep" in at.info[0].value


def test_trial_curves_read_only_what_was_appended_and_start_over_on_a_new_file(tmp_path):
    from trainer.contract.rundir import RunDir, append_jsonl

    run = RunDir(tmp_path / "t").create()
    curves = sweep_data.TrialCurves()
    append_jsonl(run.metrics_path, {"epoch": 1, "val_accuracy": 0.5}, {"epoch": 2, "val_accuracy": 0.6})
    assert [r["epoch"] for r in curves.current_line(run)] == [1, 2]
    append_jsonl(run.metrics_path, {"epoch": 3, "val_accuracy": 0.7})
    offset = curves._logs[str(run.metrics_path)][0].offset
    assert [r["epoch"] for r in curves.current_line(run)] == [1, 2, 3]
    assert curves._logs[str(run.metrics_path)][0].offset > offset, "the new line was read from where the last read ended"
    append_jsonl(run.metrics_path, {"epoch": 2, "val_accuracy": 0.9, "branch": 1})  # a rewind
    assert [(r["epoch"], r.get("branch", 0)) for r in curves.current_line(run)] == [(1, 0), (2, 1)]
    replacement = run.path / "new.jsonl"
    append_jsonl(replacement, {"epoch": 1, "val_accuracy": 0.1})
    replacement.replace(run.metrics_path)
    assert [r["val_accuracy"] for r in curves.current_line(run)] == [0.1]


# --------------------------------------------------------------------------- steering, notes, counts


def steer(sweep: SweepDir, name: str, *events: dict, status: dict | None = None) -> RunDir:
    """Append trainer events to a trial (as the trainer answers commands) and its status.json."""
    run = sweep.trial_run(name)
    for event in events:
        run.append_event(event.pop("event"), **event)
    if status is not None:
        run.write_status({"state": "finished", "pid": 1, "heartbeat": 0, **status})
    return run


def test_hand_steered_trials_show_sampled_and_current_values_and_are_marked(tmp_path):
    sweep = make_sweep(tmp_path, n=6)
    trials = sweep.trials()
    sampled = {name: t["params"]["lr"] for name, t in trials.items()}
    steer(sweep, "trial-0001", {"event": "applied", "cmd": "set_lr", "value": 0.5, "epoch": 2, "hparams": {"lr": 0.5}},
          status={"hparams": {"lr": 0.5, "beta": 0.9, "batch_size": 64}})
    steer(sweep, "trial-0002", {"event": "applied", "cmd": "pause"}, {"event": "rejected", "cmd": "set_beta", "value": 0.5},
          {"event": "resumed"})  # not steered: a pause changes no hyperparameter, a rejected command changes nothing
    steer(sweep, "trial-0003", {"event": "applied", "cmd": "rewind", "value": "epoch-0002", "epoch": 4})
    steer(sweep, "trial-0004", {"event": "applied", "cmd": "set_batch_size", "value": 128, "epoch": 1},
          status={"hparams": {"lr": sampled["trial-0004"], "batch_size": 128}})
    run5 = steer(sweep, "trial-0005", {"event": "applied", "cmd": "scale_lr", "value": 0.1, "epoch": 3})
    # no status.json: the last epoch of its history says where α is
    append_jsonl(run5.metrics_path, {"epoch": 5, "val_accuracy": 0.1, "lr": sampled["trial-0005"] / 10})

    curves = sweep_data.TrialCurves()
    view = sweep_data.load_sweep(sweep.path, curves)
    frame = sweep_data.trials_frame(view).set_index("trial")
    assert {"lr", "lr now", "batch_size", "batch_size now", "steered"} <= set(frame.columns)
    assert list(frame.columns).index("steered") < list(frame.columns).index("note")
    assert frame.loc["trial-0001", "lr"] == sampled["trial-0001"] and frame.loc["trial-0001", "lr now"] == 0.5
    assert frame.loc["trial-0004", "batch_size now"] == 128
    assert math.isclose(frame.loc["trial-0005", "lr now"], sampled["trial-0005"] / 10)
    assert frame.loc["trial-0006", "lr now"] == frame.loc["trial-0006", "lr"] == sampled["trial-0006"]  # untouched
    assert frame["steered"].to_dict() == {"trial-0001": True, "trial-0002": False, "trial-0003": True,
                                          "trial-0004": True, "trial-0005": True, "trial-0006": False}
    # events are read incrementally: a later nudge shows on the next refresh
    steer(sweep, "trial-0002", {"event": "applied", "cmd": "set_beta", "value": 0.95, "epoch": 5})
    view = sweep_data.load_sweep(sweep.path, curves)
    assert sweep_data.trials_frame(view).set_index("trial").loc["trial-0002", "steered"]
    assert "set_beta 0.95 at epoch 5" in sweep_data.steering_text(view.steering["trial-0002"])

    fig = sweep_charts.score_vs_param_figure(view, "lr")
    marked = [t for t in fig.data if t.name == "steered by hand"]
    assert len(marked) == 1 and set(marked[0].text) == {"trial-0001", "trial-0002", "trial-0003", "trial-0004", "trial-0005"}
    assert np.allclose(sorted(marked[0].x), sorted(sampled[n] for n in marked[0].text))  # ringed where they were sampled
    now = [t for t in fig.data if t.name == "lr now"]
    assert len(now) == 1 and 0.5 in now[0].x  # and a line to where α is now
    beta = sweep_charts.score_vs_param_figure(view, "beta")  # 1 - β axis: the marks move with the points
    assert all(x is None or 0 < x <= 0.1 + 1e-9 for t in beta.data for x in t.x)


def test_the_page_shows_the_steered_column(tmp_path):
    from streamlit.testing.v1 import AppTest

    sweep = make_sweep(tmp_path, n=3)
    steer(sweep, "trial-0002", {"event": "applied", "cmd": "set_lr", "value": 0.5, "epoch": 2},
          status={"hparams": {"lr": 0.5}})

    def app(path: str) -> None:
        from pathlib import Path

        from app.views.sweep_page import render_sweep

        render_sweep(Path(path))

    at = AppTest.from_function(app, args=(str(sweep.path),), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value.set_index("trial")
    assert table["steered"].to_dict() == {"trial-0001": False, "trial-0002": True, "trial-0003": False}
    assert table.loc["trial-0002", "lr now"] == 0.5
    assert len(at.get("plotly_chart")) == 3 + len(sweep_data.load_sweep(sweep.path).searched())  # a histogram each


def test_an_empty_note_is_an_empty_string(tmp_path):
    sweep = make_sweep(tmp_path, n=3)
    sweep.append_trial({"trial": "trial-0003", "state": "failed", "error": "exit code 1"})
    frame = sweep_data.trials_frame(sweep_data.load_sweep(sweep.path)).set_index("trial")
    assert frame["note"].to_dict() == {"trial-0001": "", "trial-0002": "", "trial-0003": "exit code 1"}


def test_histograms_count_whole_trials(tmp_path):
    fig = sweep_charts.histograms_figure(sweep_data.load_sweep(make_sweep(tmp_path, n=3).path))
    yaxes = [fig.layout[k] for k in ("yaxis", "yaxis2", "yaxis3", "yaxis4")]  # four searched parameters
    for axis in yaxes:  # three trials: ticks at 0, 1, 2, 3, never 0.5
        assert axis.tickformat == "d" and axis.dtick == 1
    many = sweep_charts.histograms_figure(sweep_data.load_sweep(make_sweep(tmp_path / "more", n=400, epochs=1).path), bins=4)
    assert many.layout.yaxis.tickformat == "d" and many.layout.yaxis.dtick is None  # ~100 a bar: Plotly's own whole steps


def make_pbt_sweep(root: Path) -> SweepDir:
    from trainer.search.pbt import PBT_LOG

    sweep = make_sweep(root, n=4, running=4)
    spec = sweep.read_spec()
    sweep.write_spec({**spec, "settings": {**spec["settings"], "scheduler": "pbt", "parallel": 4}})
    append_jsonl(sweep.path / PBT_LOG,
                 {"time": 1.0, "event": "proposed", "proposal": "p-0001", "target": "trial-0001", "source": "trial-0002",
                  "checkpoint": "ckpt-00004", "epoch": 2, "target_score": 0.2, "source_score": 0.9, "lr": 0.01,
                  "beta": 0.9, "deadline": 4e9},
                 {"time": 1.0, "event": "proposed", "proposal": "p-0002", "target": "trial-0003", "source": "trial-0004",
                  "checkpoint": "ckpt-00004", "epoch": 2, "target_score": 0.2, "source_score": 0.9, "lr": 0.02,
                  "beta": None, "deadline": None},
                 {"time": 2.0, "event": "applied", "proposal": "p-0002", "target": "trial-0003", "source": "trial-0004",
                  "command_id": "pbt-p-0002", "target_epoch": 2})
    return sweep


def pbt_app(path: str, can_steer: bool) -> None:
    from pathlib import Path

    from app.panels.controls import PageWriter
    from app.views.sweep_page import render_sweep

    render_sweep(Path(path), writer=PageWriter(Path(path).parent, can_steer))


def decisions(sweep: SweepDir) -> list[dict]:
    from trainer.search.pbt import read_log

    return [r for r in read_log(sweep.path) if r["event"] in ("approved", "vetoed")]


def test_pbt_proposals_approve_and_veto_write_one_decision_line_for_the_presenter(tmp_path):
    from streamlit.testing.v1 import AppTest

    sweep = make_pbt_sweep(tmp_path)
    view = sweep_data.load_sweep(sweep.path)
    assert [p["proposal"] for p in sweep_data.pending(view)] == ["p-0001"]
    assert [p["proposal"] for p in sweep_data.exploits(view)] == ["p-0002"]
    marks = [t for t in sweep_charts.curves_figure(view).data if (t.name or "").startswith("PBT exploit")]
    assert sorted(t.name for t in marks) == ["PBT exploit (source)", "PBT exploit (target)"]
    assert list(marks[0].x) == [2]

    at = AppTest.from_function(pbt_app, args=(str(sweep.path), True), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    approve = [b for b in at.button if b.label == "Approve"]
    assert len(approve) == 1 and not approve[0].disabled
    approve[0].click().run()
    assert not at.exception, at.exception
    assert [(d["event"], d["proposal"], d["by"]) for d in decisions(sweep)] == [("approved", "p-0001", "page")]
    assert not [b for b in at.button if b.label in ("Approve", "Veto")], "a decided proposal is no longer pending"

    sweep2 = make_pbt_sweep(tmp_path / "again")
    at = AppTest.from_function(pbt_app, args=(str(sweep2.path), True), default_timeout=60)
    at.run()
    [b for b in at.button if b.label == "Veto"][0].click().run()
    assert [(d["event"], d["proposal"]) for d in decisions(sweep2)] == [("vetoed", "p-0001")]


def test_a_viewer_sees_pbt_proposals_but_writes_nothing(tmp_path):
    from streamlit.testing.v1 import AppTest

    sweep = make_pbt_sweep(tmp_path)
    at = AppTest.from_function(pbt_app, args=(str(sweep.path), False), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    buttons = [b for b in at.button if b.label in ("Approve", "Veto")]
    assert len(buttons) == 2 and all(b.disabled for b in buttons)
    assert any("Read-only view" in c.value for c in at.caption)
    # a forged click (a disabled widget cannot be clicked) still stops at the PageWriter, as any write does
    import pytest

    from app.panels.controls import NotPresenter, PageWriter

    with pytest.raises(NotPresenter, match="Read-only"):
        PageWriter(tmp_path, False).decide_pbt(sweep.path, "p-0001", "approved")
    with pytest.raises(NotPresenter, match="outside the run directory"):
        PageWriter(tmp_path / "elsewhere", True).decide_pbt(sweep.path, "p-0001", "vetoed")
    assert decisions(sweep) == []


def test_an_integer_histogram_counts_every_trial(tmp_path):
    """The bins of an integer parameter reach its largest value (97 and 99 once fell past the last bin)."""
    for n in (6, 13, 40):
        view = sweep_data.load_sweep(make_sweep(tmp_path / str(n), n=n, epochs=1).path)
        values = [view.value(name, "units") for name in view.trials]
        for bins in (3, 4, 12):
            units = sweep_charts.histograms_figure(view, bins=bins).data[2]
            assert sum(units.y) == n, (n, bins, values)
            edges_high = max(units.x) + max(units.width) / 0.95 / 2
            assert edges_high >= max(values) + 0.5 - 1e-9


def test_score_against_lr_writes_powers_of_ten_as_every_chart_does(tmp_path):
    view = sweep_data.load_sweep(make_sweep(tmp_path, n=12).path)
    axis = sweep_charts.score_vs_param_figure(view, "lr").layout.xaxis
    assert axis.ticktext and all("μ" not in t for t in axis.ticktext)
    assert any(re_text in axis.ticktext for re_text in ("1e-3", "1e-2", "1e-1"))


def test_parallel_coordinates_tick_integers_whole_and_round_the_score_ends(tmp_path):
    view = sweep_data.load_sweep(make_sweep(tmp_path, n=12).path)
    dims = sweep_charts.parallel_coordinates_figure(view).data[0].dimensions
    units = dims[2]
    assert all(float(t).is_integer() for t in units.tickvals) and units.tickformat == "d"
    score = dims[-1]
    assert all(round(end, 2) == end for end in score.range) and score.range[0] <= min(score.values) <= max(score.values) <= score.range[1]
