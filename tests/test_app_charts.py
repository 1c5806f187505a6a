"""Charts built from a run directory, with every intervention marked."""

from __future__ import annotations

import numpy as np
import pytest

from app.figures import run_charts as charts
from app.data import journal_view as journal
from app.data import RunData
from conftest_app import HPARAMS, make_run

pytestmark = pytest.mark.timeout(60)


def _steered_run(tmp_path):
    run = make_run(tmp_path, "steered", epochs_done=20)
    lr_id = run.send_command("scale_lr", 0.1, source="dashboard")
    run.append_event("applied", epoch=8, step=170, command_id=lr_id, cmd="scale_lr", value=0.1,
                     hparams={**HPARAMS, "lr": 0.0003}, received_time=0, received_step=169)
    pause_id = run.send_command("pause", source="cli")
    run.append_event("applied", epoch=12, step=240, command_id=pause_id, cmd="pause", value=None,
                     hparams={**HPARAMS, "lr": 0.0003}, received_time=0, received_step=240)
    run.append_event("paused", epoch=12, step=240, command_id=pause_id)
    run.append_event("resumed", epoch=12, step=240, command_id=None)
    bad = run.send_command("set_beta", 0.5, source="dashboard")
    run.append_event("rejected", epoch=13, step=260, command_id=bad, cmd="set_beta", value=0.5, reason="no beta")
    run.append_event("diverged", epoch=15, step=300, reason="the training loss became nan", checkpoint="ckpt-00015",
                     branch=1)
    return run, lr_id, pause_id, bad


def _traces(fig, name):
    return [t for t in fig.data if t.name == name]


def test_loss_chart_draws_train_and_validation_from_the_files(tmp_path):
    run = make_run(tmp_path, "r", epochs_done=12)
    view = RunData(run.path, watch=False).view()
    fig = charts.loss_figure(view)
    records = run.read_metrics()
    (train,) = _traces(fig, "train")
    (val,) = _traces(fig, "validation")
    assert list(train.x) == [r["epoch"] for r in records]
    np.testing.assert_allclose(train.y, [r["loss"] for r in records])
    np.testing.assert_allclose(val.y, [r["val_loss"] for r in records])
    assert fig.layout.yaxis.type == "linear"
    assert charts.loss_figure(view, log_y=True).layout.yaxis.type == "log"


def test_every_intervention_is_a_marker_with_its_details_on_hover(tmp_path):
    run, *_ = _steered_run(tmp_path)
    view = RunData(run.path, watch=False).view()
    items = charts.interventions(view)
    assert [i.kind for i in items] == ["lr", "pause", "resume", "diverged"]
    lr = items[0]
    assert lr.x == pytest.approx(8.5)  # step 170 lies half-way through epoch 9 (steps 160..180)
    assert "0.003 → 0.0003 (×0.1)" in lr.text and "by dashboard" in lr.detail
    assert "by cli" in items[1].detail
    assert "nan" in items[3].detail
    for fig in (charts.loss_figure(view), charts.accuracy_figure(view), charts.learning_rate_figure(view),
                charts.batch_loss_figure(view)):
        markers = _traces(fig, "learning rate") if fig.layout.title.text != "Learning rate α" else \
            [t for t in fig.data if t.mode == "markers" and t.name == "learning rate"]
        assert len(markers) == 1 and markers[0].x[0] == pytest.approx(8.5)
        assert "0.0003" in markers[0].hovertext[0]
        assert sum(1 for s in fig.layout.shapes if s.x0 == pytest.approx(8.5)) == 1  # the dotted line
        assert _traces(fig, "divergence")


def test_a_rewind_drops_the_markers_it_undid(tmp_path):
    run, *_ = _steered_run(tmp_path)
    run.append_event("rewound", epoch=5, step=100, checkpoint="ckpt-00005", to_epoch=5, branch=2)
    view = RunData(run.path, watch=False).view()
    assert [i.kind for i in charts.interventions(view)] == ["rewind"]


def test_learning_rate_is_a_step_line_on_a_log_axis(tmp_path):
    run, *_ = _steered_run(tmp_path)
    view = RunData(run.path, watch=False).view()
    fig = charts.learning_rate_figure(view)
    line = [t for t in fig.data if t.mode == "lines"][0]
    assert fig.layout.yaxis.type == "log" and line.line.shape == "hv"
    xs, ys = np.asarray(line.x), np.asarray(line.y)
    assert 0.0003 in ys and ys[xs < 8].max() == pytest.approx(0.003)


def test_batch_chart_has_raw_and_smoothed_losses_placed_on_epochs(tmp_path):
    run = make_run(tmp_path, "b", epochs_done=5)
    view = RunData(run.path, watch=False).view()
    fig = charts.batch_loss_figure(view)
    (raw,) = _traces(fig, "batch loss")
    (smooth,) = _traces(fig, "smoothed")
    assert raw.opacity < 1 and len(raw.x) == len(view.batches["step"])
    assert min(raw.x) > 0 and max(raw.x) <= 5
    assert np.all(np.diff(np.asarray(smooth.x)) > 0)


def test_decimation_bounds_the_points_and_keeps_spikes():
    x = np.arange(200_000, dtype=float)
    y = np.sin(x / 1000)
    y[123_457] = 50.0
    dx, dy = charts.decimate_minmax(x, y, 2000)
    assert len(dx) <= 2001 and dy.max() == 50.0 and np.all(np.diff(dx) > 0)
    mx, my = charts.decimate_mean(x, y, 1000)
    assert len(mx) <= 1001
    small_x, small_y = charts.decimate_minmax(x[:10], y[:10])
    assert len(small_x) == 10


def test_overlay_of_many_runs(tmp_path):
    views = [RunData(make_run(tmp_path, f"t{i}", epochs_done=5).path, watch=False).view() for i in range(12)]
    fig = charts.overlay_figure(views, "val_loss", highlight="t3")
    assert [t.name for t in fig.data] == [f"t{i}" for i in range(12)]
    assert fig.data[3].line.width > fig.data[0].line.width


def test_journal_shows_each_command_with_its_answer(tmp_path):
    run, lr_id, pause_id, bad = _steered_run(tmp_path)
    waiting = run.send_command("checkpoint", source="dashboard")
    table = journal.commands_table(RunData(run.path, watch=False).view())
    rows = {r["id"]: r for r in table.to_dict("records")}
    assert rows[lr_id]["answer"] == journal.APPLIED and "α = 0.0003" in rows[lr_id]["detail"]
    assert rows[pause_id]["source"] == "cli"
    assert rows[bad]["answer"] == journal.REJECTED and rows[bad]["detail"] == "no beta"
    assert rows[waiting]["answer"] == journal.PENDING
    assert table.iloc[0]["id"] == waiting  # newest first


def test_a_pbt_exploit_is_marked_in_both_trials(tmp_path):
    target = make_run(tmp_path, "target", epochs_done=6)
    target.append_event("adopted", epoch=4, step=80, command_id="pbt-p-0001", source_run=str(tmp_path / "source"),
                        source_checkpoint="ckpt-00004", source_epoch=4, checkpoint="ckpt-00009", branch=1, lr=0.002)
    source = make_run(tmp_path, "source", epochs_done=6)
    source.append_event("note", epoch=4, step=80, command_id="pbt-p-0001-source", kind="pbt_source",
                        text="target adopts this run's ckpt-00004 (PBT p-0001)")
    (adopt,) = charts.interventions(RunData(target.path, watch=False).view())
    assert adopt.kind == "adopt" and "adopted source's ckpt-00004" in adopt.text and "branch 1" in adopt.detail
    assert _traces(charts.accuracy_figure(RunData(target.path, watch=False).view()), "adopted (PBT)")
    (note,) = charts.interventions(RunData(source.path, watch=False).view())
    assert note.kind == "note" and "target adopts" in note.text
    table = journal.events_table(RunData(target.path, watch=False).view())
    assert "ckpt-00004 of" in table.to_string()


def test_short_runs_tick_whole_epochs_and_a_narrow_accuracy_range_gets_a_decimal(tmp_path):
    from app.data import RunData
    from conftest_app import make_run

    short = RunData(make_run(tmp_path, "short", epochs_done=3).path, watch=False).view()
    assert charts.loss_figure(short).layout.xaxis.dtick == 1
    long = RunData(make_run(tmp_path, "long", epochs_done=12).path, watch=False).view()
    assert charts.loss_figure(long).layout.xaxis.dtick is None
    assert charts.accuracy_figure(long).layout.yaxis.tickformat == ".0%"  # 0 % to 100 %: whole percents
    run = make_run(tmp_path, "flat", epochs_done=12)
    from trainer.contract.rundir import append_jsonl
    from conftest_app import epoch_record
    run.metrics_path.write_text("")
    append_jsonl(run.metrics_path, *[{**epoch_record(e), "accuracy": 0.10 + e / 1000, "val_accuracy": 0.11} for e in range(1, 13)])
    flat = RunData(run.path, watch=False).view()
    assert charts.accuracy_figure(flat).layout.yaxis.tickformat == ".1%"


def test_every_marker_has_its_own_symbol_and_a_word_in_the_legend():
    symbols = [kind.symbol for kind in charts.KINDS.values()]
    assert len(set(symbols)) == len(symbols)  # stop is not pause's square, several is not a star
    legend = charts.legend_markdown()
    for word in ("pause", "stop", "checkpoint", "several at once"):
        assert word in legend
