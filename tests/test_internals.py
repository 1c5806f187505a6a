"""internals.jsonl: what the trainer records of the network is right, bounded, and shown on the Lessons page."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf
from streamlit.testing.v1 import AppTest

from app.figures import lessons
from trainer.training import internals
from trainer.contract.config import TrainConfig
from trainer.contract.hparams import Hyperparameters
from trainer.training.loop import Trainer

pytestmark = pytest.mark.timeout(300)


def _page(root: str, run: str) -> None:
    from pathlib import Path

    import streamlit as st

    from app.views.lessons_page import render_lessons

    st.query_params["run"] = run
    render_lessons(Path(root))


def _train(path, epochs=3, commands=(), seed=0, **hparams) -> Trainer:
    config = TrainConfig(hparams=Hyperparameters(**hparams), epochs=epochs, seed=seed)
    trainer = Trainer.create(path, config, verbose=False)
    for cmd, value in commands:
        trainer.rundir.send_command(cmd, value, source="test")
    assert trainer.run() == "finished"
    return trainer


def test_recorded_values_are_right(tmp_path):
    trainer = _train(tmp_path / "r", commands=[("set_lr", 0.01), ("set_beta", 0.8)], optimizer="momentum", lr=0.05)
    records = trainer.rundir.read_internals()
    assert records[0]["kind"] == "probes" and len(records[0]["examples"]) == 10
    assert sorted(records[0]["labels"]) == list(range(10))  # one example per class of digits
    epochs = [r for r in records if r["kind"] == "epoch"]
    measured = [r["epoch"] for r in epochs]
    assert measured[0] == 1 and measured == sorted(set(measured)) and set(measured) <= {1, 2, 3}
    for record in epochs:  # softmax rows are probabilities
        assert all(abs(sum(row) - 1) < 1e-3 for row in record["softmax"])
        assert sum(map(sum, record["confusion"])) == min(len(trainer.data.x_val), internals.PROBE_SIZE)
    last = epochs[-1]
    assert last["tracing"] == {"traces": 1, "hparam_changes": 2}  # lr and beta changed; the step never retraced
    # the moving mean recorded for an epoch is the one in that epoch's checkpoint
    meta = next(m for m in trainer.rundir.list_checkpoints() if m["epoch"] == last["epoch"] and m["reason"] == "epoch")
    reader = tf.train.load_checkpoint(str(meta["path"]) + "/ckpt")
    keys = sorted(k for k in reader.get_variable_to_shape_map() if "moving_mean" in k and "OPTIMIZER" not in k)
    stored = [float(np.mean(reader.get_tensor(k))) for k in keys]
    recorded = sorted(b["moving_mean"] for b in last["batch_norm"])
    assert len(stored) == 2 and sorted(stored) == pytest.approx(recorded, abs=1e-4)
    modes = last["bn_accuracy"]
    assert 0 <= modes["test_mode"] <= 1 and 0 <= modes["train_mode"] <= 1
    assert all(layer["grad_norm"] >= 0 and layer["weight_norm"] > 0 for layer in last["layers"])


def test_measuring_leaves_the_moving_statistics_as_they_were(tmp_path):
    trainer = Trainer.create(tmp_path / "r", TrainConfig(epochs=1), verbose=False)
    before = [layer.moving_mean.numpy().copy() for layer in internals._bn_layers(trainer.model)]
    internals.measure(trainer.model, trainer._probe, epoch=1, step=1, branch=0)
    after = [layer.moving_mean.numpy() for layer in internals._bn_layers(trainer.model)]
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    trainer.close()


def test_a_long_run_stays_small_and_measuring_stays_within_its_budget():
    assert sum(internals.due(e) for e in range(1, 10_001)) == 200 + (10_000 - 200) // 10
    generous, stingy = internals.Cadence(share=1e9), internals.Cadence(share=0.0)
    for epoch in range(1, 6):
        for schedule in (generous, stingy):
            if schedule.due(epoch):
                schedule.timed(lambda: sum(range(20_000)))
    assert generous.measured == 5
    assert stingy.measured == 2  # the first (free: it compiles) and the next, then the budget is spent


def test_no_internals_flag_and_the_page_without_batch_norm(tmp_path):
    quiet = Trainer.create(tmp_path / "quiet", TrainConfig(epochs=1, internals=False), verbose=False)
    quiet.run()
    assert not quiet.rundir.internals_path.exists()
    _train(tmp_path / "plain", epochs=2, batch_norm=False)
    at = AppTest.from_function(_page, args=(str(tmp_path), "plain"), default_timeout=60).run()
    assert not at.exception
    assert any("no batch normalization layers" in i.value for i in at.info)
    assert len([c for c in at.get("plotly_chart")]) >= 5  # α, β, grid, softmax pictures, confusion


def test_the_page_shows_batch_norm_and_softmax_of_a_real_run_and_offers_its_twin(tmp_path):
    trainer = _train(tmp_path / "bn", epochs=2)
    at = AppTest.from_function(_page, args=(str(tmp_path), "bn"), default_timeout=60).run()
    assert not at.exception
    assert at.selectbox(key="lesson-bn-layer").options == ["batch_norm_1", "batch_norm_2"]
    assert at.button(key="lesson-twin-go").label == "Start its twin without batch norm"
    internals_read = lessons.read_internals(trainer.rundir.path)
    assert lessons.softmax_figure(internals_read) is not None and lessons.confusion_figure(internals_read) is not None
    twin = lessons.twin_config(trainer.rundir.read_config())
    assert twin.seed == trainer.config.seed and twin.hparams.batch_norm is False
    assert twin.dataset == "digits" and twin.hparams.lr == trainer.config.hparams.lr


def test_an_old_run_and_hostile_lines_give_the_empty_state(tmp_path):
    from tests.conftest_app import make_run

    run = make_run(tmp_path, "old", epochs_done=3)
    assert lessons.read_internals(run.path) == lessons.Internals(None, [])
    run.internals_path.write_text('{"kind": "epoch", "epoch": "x"}\n[1,2]\n{"kind": "probes", "examples": 3}\n')
    assert lessons.read_internals(run.path) == lessons.Internals(None, [])
    assert math.isfinite(lessons.averaging_window(0.5))


def _steered_page(root: str, run: str, can_steer: bool) -> None:
    from pathlib import Path

    import streamlit as st

    from app.panels.controls import PageWriter
    from app.views.lessons_page import render_lessons

    st.query_params["run"] = run
    render_lessons(Path(root), PageWriter(Path(root), can_steer))


def test_the_twin_button_launches_the_same_run_without_batch_norm_for_the_presenter_only(tmp_path, monkeypatch):
    import subprocess
    import sys

    from app.serving import launch

    _train(tmp_path / "bn", epochs=1, seed=5)
    launched = []

    def spawn(command, log_path):
        launched.append(command)
        return subprocess.Popen([sys.executable, "-c", "pass"])

    monkeypatch.setattr(launch, "_spawn", spawn)
    viewer = AppTest.from_function(_steered_page, args=(str(tmp_path), "bn", False), default_timeout=60).run()
    assert viewer.button(key="lesson-twin-go").disabled
    presenter = AppTest.from_function(_steered_page, args=(str(tmp_path), "bn", True), default_timeout=60).run()
    presenter.button(key="lesson-twin-go").click().run()
    assert not presenter.exception and len(launched) == 1
    argv = launched[0]
    assert argv[argv.index("--name") + 1] == "bn-no-bn" and "--no-batch-norm" in argv
    assert argv[argv.index("--seed") + 1] == "5"


def test_a_keras_fit_records_what_the_model_holds_and_with_a_probe_the_rest(tmp_path):
    from test_callback import small_cnn

    from sklearn.datasets import load_digits
    from trainer import PandaCallback

    digits = load_digits()
    x, y = (digits.images / 16.0).astype("float32")[..., None], digits.target.astype("int32")
    plain = PandaCallback(tmp_path / "plain")
    small_cnn().fit(x, y, epochs=2, batch_size=64, verbose=0, callbacks=[plain])
    record = [r for r in plain.rundir.read_internals() if r["kind"] == "epoch"][0]
    (bn,) = record["batch_norm"]
    assert "moving_mean" in bn and "gamma_mean" in bn and "batch_mean" not in bn  # no data: no batch statistics
    assert all("grad_norm" not in layer for layer in record["layers"]) and "softmax" not in record
    probed = PandaCallback(tmp_path / "probed", probe=(x[-300:], y[-300:]))
    small_cnn().fit(x[:-300], y[:-300], epochs=2, batch_size=64, verbose=0, callbacks=[probed])
    records = probed.rundir.read_internals()
    assert records[0]["kind"] == "probes" and records[0]["shape"] == [8, 8, 1]
    epoch = next(r for r in records if r["kind"] == "epoch")
    assert all(abs(sum(row) - 1) < 1e-3 for row in epoch["softmax"]) and "bn_accuracy" in epoch
    assert "batch_mean" in epoch["batch_norm"][0] and all("grad_norm" in layer for layer in epoch["layers"])
    assert "tracing" not in epoch  # fit compiles its own step: there is no count to report
