"""Pure functions behind the page's and the CLI's words: outcomes, ETA, markers, ticks, 'not learning'."""

from __future__ import annotations

import math
import os
import time

import numpy as np
import pytest

from app.figures import run_charts as charts
from app.serving import panda_cli as cli
from app.data import run_progress as progress
from app.data import RunData
from trainer.steering.advice_rules import not_learning
from conftest_app import make_run, write_status
from trainer.cli import format_status
from trainer.contract.outcome import outcome
from trainer.contract.rundir import append_jsonl

GONE_PID = 2**22 + 12345  # above Linux's pid_max: never a live process


def test_four_endings_have_four_words():
    assert outcome("finished") == "completed" and outcome("finished", reason="completed") == "completed"
    assert outcome("finished", reason="stopped") == "stopped"
    assert outcome("finished", reason="stopped by the user") == "completed"  # a message is no reason
    assert outcome("finished", reason="interrupted") == "interrupted"
    assert outcome("not answering", pid_gone=True) == "killed"
    assert outcome("not answering", pid_gone=False) == "not answering"  # stopped (SIGSTOP) is not killed
    assert outcome("paused") == "paused"


def test_panda_status_says_how_a_run_ended_and_prints_short_numbers(tmp_path):
    done = make_run(tmp_path, "done", state="finished", hparams={"lr": 0.1 * 0.1})
    text = format_status(done)
    assert text.splitlines()[0] == "done: completed" and "lr=0.01," in text and "0.010000000000000002" not in text
    stopped = make_run(tmp_path, "stopped", state="finished")
    write_status(stopped, state="finished", epoch=10, message="stopped by the user", ending="stopped")
    assert format_status(stopped).splitlines()[0] == "stopped: stopped"
    write_status(stopped, state="finished", epoch=10, message="interrupted by Ctrl-C or SIGTERM",
                 ending="interrupted")
    assert format_status(stopped).splitlines()[0] == "stopped: interrupted"
    killed = make_run(tmp_path, "killed", pid=GONE_PID)
    assert format_status(killed).splitlines()[0] == "killed: killed"
    alive = make_run(tmp_path, "alive", pid=os.getpid())
    assert format_status(alive).splitlines()[0] == "alive: running"


def test_the_eta_leaves_pauses_out(tmp_path):
    run = make_run(tmp_path, "paused", epochs_done=0, epochs=20)
    t0 = time.time() - 100
    for epoch in range(1, 11):  # 0.5 s an epoch, and a 10 s pause between epochs 5 and 6
        t = t0 + epoch * 0.5 + (10.0 if epoch > 5 else 0.0)
        append_jsonl(run.metrics_path, {"epoch": epoch, "branch": 0, "step": epoch * 20, "lr": 0.003, "loss": 1.0,
                                        "time": t, "epoch_seconds": 0.2})
        if epoch == 5:
            run.append_event("paused", epoch=5, step=100, command_id="c-1", time=t + 0.1)
            run.append_event("resumed", epoch=5, step=100, command_id="c-2", time=t + 10.1)
    write_status(run, state="running", epoch=10, epochs=20)
    view = RunData(run.path, watch=False).view()
    assert progress.seconds_per_epoch(view) == pytest.approx(0.5)
    assert progress.eta_seconds(view, "running") == pytest.approx(5.0)


def test_interventions_at_one_epoch_share_one_marker_that_lists_them_all(tmp_path):
    run = make_run(tmp_path, "steered", epochs_done=6)
    run.append_event("paused", epoch=6, step=120, command_id="c-1")
    run.append_event("applied", epoch=6, step=120, command_id="c-2", cmd="scale_lr", value=0.1,
                     hparams={"lr": 0.0003}, received_time=time.time(), received_step=120)
    run.append_event("resumed", epoch=6, step=120, command_id="c-3")
    view = RunData(run.path, watch=False).view()
    markers = [t for t in charts.loss_figure(view).to_plotly_json()["data"] if t.get("mode") == "markers"]
    assert sum(len(t["x"]) for t in markers) == 1
    (hover,) = markers[0]["hovertext"]
    assert "3 interventions" in hover and "paused" in hover and "learning rate" in hover and "resumed" in hover
    assert "after epoch 6," in hover and "6.00" not in hover  # whole epochs


def test_the_learning_rate_axis_has_a_few_readable_ticks():
    for low, high in ((1e-3, 1e-2), (1e-5, 1.0), (6e-4, 1.6e-3), (2.0001e-3, 8e-3), (0.9e-3, 1.1e-3)):
        values, texts = charts.log_ticks(low, high)
        assert 2 <= len(values) <= 6, (low, high, texts)
        assert all(low * 0.999 <= v <= high * 1.001 for v in values)
        assert all(float(t) == v for t, v in zip(texts, values)) and all(len(t) <= 5 for t in texts)
    assert charts.log_ticks(1e-3, 1e-2)[1] == ["1e-3", "2e-3", "5e-3", "1e-2"]


def test_the_learning_rate_figure_uses_those_ticks(tmp_path):
    view = RunData(make_run(tmp_path, "lr", hparams={"lr": 0.003}).path, watch=False).view()
    yaxis = charts.learning_rate_figure(view).to_plotly_json()["layout"]["yaxis"]
    assert yaxis["type"] == "log" and 2 <= len(yaxis["tickvals"]) <= 6 and "3e-3" in yaxis["ticktext"]
    low, high = (10 ** v for v in yaxis["range"])
    assert low < 0.003 < high


def test_not_learning_needs_several_epochs_at_ln_classes_and_chance():
    stuck_loss, stuck_acc = [math.log(10)] * 5, [0.1] * 5
    assert not_learning(stuck_loss, stuck_acc, 10).startswith("not learning")
    assert not_learning(stuck_loss[:2], stuck_acc[:2], 10) is None  # too soon to say
    assert not_learning(stuck_loss[:4] + [1.5], stuck_acc, 10) is None  # the loss moved
    assert not_learning(stuck_loss, stuck_acc[:4] + [0.4], 10) is None  # the accuracy moved
    assert not_learning([2.7] * 3, [0.12] * 3, 10)  # worse than guessing counts as not learning
    assert not_learning([math.log(3) * 1.04] * 6, [0.36] * 6, 3)  # within the documented tolerances
    assert not_learning(stuck_loss, stuck_acc, None) is None
    assert not_learning(np.array(stuck_loss + [float("nan")]), np.array(stuck_acc + [0.1]), 10) is None


def test_ctrl_c_says_what_it_stops():
    assert "trainers keep training" in cli.ctrl_c_text("app")
    assert "demo's trainer" in cli.ctrl_c_text("demo")
    assert "trainers keep training" in cli.ctrl_c_text("demo", keep_training=True)
