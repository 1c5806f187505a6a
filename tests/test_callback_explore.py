"""PandaCallback runs: find_lr runs on fit's own batches and puts the state back; undo works; fork is refused."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from conftest import answer, event_of, wait_for
from test_callback import digits_images, fits, small_cnn  # noqa: F401  (fixtures)
from trainer.keras_callback.explore import EPOCH_END, LrRangeTest
from trainer.training.exploration import LR_FINDER
from trainer.steering.undo import NOTHING_TO_UNDO


def state_of(model) -> list[np.ndarray]:
    """Weights, BN statistics, optimizer slots, iteration count and learning rate, as host copies."""
    return [np.array(v.numpy(), copy=True) for v in [*model.variables, *model.optimizer.variables]]


def test_the_range_test_stops_at_4x_its_minimum_or_not_finite_or_at_max():
    t = LrRangeTest({"steps": 10, "min": 1e-4, "max": 1.0})
    assert not any(t.add(x) for x in (2.0, 1.0, 0.5, 0.4))
    assert t.next_lr() == pytest.approx(t.lrs[4])
    assert [t.add(x) for x in (50.0, 50.0)][-1] and t.stopped == "loss over 4x its minimum"
    suggestion, points = t.result()
    assert len(points) == 6 and suggestion["lr"] is None and suggestion["reason"].startswith("too short")
    nan = LrRangeTest({"steps": 10, "min": 1e-4, "max": 1.0})
    assert nan.add(math.nan) and nan.stopped == "not finite" and nan.result()[1][0]["loss"] is None
    full = LrRangeTest({"steps": 2, "min": 1e-4, "max": 1.0})
    assert not full.add(1.0) and full.add(0.9) and full.stopped == "max"


def curve(losses, low=1e-5, high=1.0):
    test = LrRangeTest({"steps": len(losses), "min": low, "max": high})
    for loss in losses:
        test.add(loss)
    return test.result()[0]


def test_a_suggestion_only_from_a_curve_that_can_carry_one():
    # a clear descent and a rise: min_lr / 10, inside the range
    good = curve([2.3] * 4 + [2.2, 2.0, 1.6, 1.1, 0.7, 0.5, 0.45, 0.6, 1.5, 4.0, 9.0, 20.0])
    assert good["lr"] is not None and good["lr"] == pytest.approx(good["min_over_10"], rel=1e-2)
    assert "reason" not in good
    # the loss fell from the first batch on: the minimum's α / 10 is below the range, clamped to its floor
    low = LrRangeTest({"steps": 30, "min": 1e-6, "max": 1.0})  # `--steps 30`: the floor suggestions
    for loss in [2.0, 0.5, 0.5, 0.6, 0.8, 1.0, 1.3, 1.7, 2.2, 2.8, 3.6, 4.6, 6.0, 8.0, 10.0, 13.0, 17.0, 22.0]:
        if low.add(loss):
            break
    assert low.stopped == "loss over 4x its minimum" and low.result()[0]["lr"] is None
    assert low.result()[0]["reason"].startswith("at the low end of the range (1e-06)")
    # flat or noisy: no clear descent
    flat = curve([2.30, 2.31, 2.29, 2.30, 2.32, 2.28, 2.30, 2.31, 2.29, 2.30])
    assert flat["lr"] is None and flat["reason"].startswith("no clear descent")
    # still falling at the top of the range
    falling = curve([2.3 - 0.2 * k for k in range(10)], low=1e-6, high=1e-3)
    assert falling["lr"] is None and falling["reason"].startswith("at the high end of the range (0.001)")


def paused_fit(tmp_path, digits_images, fits):  # noqa: F811
    """A long ``fit`` of the small CNN (α 0.003) with a PandaCallback, paused after its first epoch."""
    from trainer import PandaCallback

    model = small_cnn(lr=0.003)
    t = fits(model, PandaCallback(tmp_path / "fit"), digits_images, epochs=1000)
    wait_for(lambda: t.run.read_metrics(), t.run.path, what="a first epoch")
    assert t.send("pause")["event"] == "applied"
    return model, t, t.run


def test_find_lr_runs_on_fit_batches_and_restores_the_exact_state(tmp_path, digits_images, fits):  # noqa: F811
    model, t, run = paused_fit(tmp_path, digits_images, fits)
    before = state_of(model)
    epochs_before = len(run.read_metrics())

    found = t.send("find_lr", {"steps": 8, "min": 1e-5, "max": 1.0})
    assert found["event"] == "applied", found.get("reason")
    assert 1 <= found["points"] <= 8 and found["steps_used"] == found["points"]
    assert (found["suggestion"]["lr"] is None) == ("reason" in found["suggestion"])
    after = state_of(model)
    assert len(after) == len(before)
    for b, a in zip(before, after):
        assert b.dtype == a.dtype and b.tobytes() == a.tobytes(), "find_lr must put the state back bit for bit"
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.003)
    assert run.read_status()["state"] == "paused", "a paused run waits paused again after the test"

    # more batches than the epoch has left: the test ends with the epoch's last batch
    longer = t.send("find_lr", {"steps": 5000, "min": 1e-6, "max": 1e-5})
    assert longer["event"] == "applied" and longer["stopped"] == EPOCH_END and 1 <= longer["points"] <= 23
    for b, a in zip(before, state_of(model)):
        assert b.tobytes() == a.tobytes()

    # a ramp that wrecks the model: stopped early, no divergence, and the state is still put back
    wild = t.send("find_lr", {"steps": 20, "min": 1e-2, "max": 10.0})
    assert wild["event"] == "applied" and wild["stopped"] in ("loss over 4x its minimum", "not finite"), wild
    for b, a in zip(before, state_of(model)):
        assert b.tobytes() == a.tobytes()
    assert event_of(run, "diverged") is None and run.read_status()["state"] == "paused"

    records = [json.loads(line) for line in (run.path / LR_FINDER).read_text().splitlines()]
    assert [r["command_id"] for r in records] == [found["command_id"], longer["command_id"], wild["command_id"]]
    assert records[0]["suggestion"] == found["suggestion"] and len(records[0]["points"]) == found["points"]
    assert records[0]["points"][0]["lr"] == pytest.approx(1e-5)
    assert all(p["loss"] is not None for r in records for p in r["points"])

    forked = t.send("fork", {"candidates": [{"lr": 0.01}], "steps": 5})
    assert forked["event"] == "rejected" and "not supported in a Keras model.fit" in forked["reason"]

    assert t.send("resume")["event"] == "applied"
    wait_for(lambda: len(run.read_metrics()) >= epochs_before + 2, run.path, what="epochs after find_lr")
    metrics = run.read_metrics()
    assert [r["epoch"] for r in metrics] == list(range(1, len(metrics) + 1)), "find_lr adds no epochs"
    assert all(math.isfinite(r["loss"]) for r in metrics)
    t.send("stop")
    t.join()
    assert run.read_status()["state"] == "finished"


def test_undo_works_in_a_keras_fit(tmp_path, digits_images, fits):  # noqa: F811
    model, t, run = paused_fit(tmp_path, digits_images, fits)

    assert t.send("undo")["reason"] == NOTHING_TO_UNDO

    changed = answer(run, run.send_command("set_lr", 0.03, source="dashboard"))
    assert changed["event"] == "applied" and changed["undo_point"]["checkpoint"]
    assert t.send("resume")["event"] == "applied"
    wait_for(lambda: [r for r in run.read_metrics() if r["step"] > changed["step"]], run.path, what="an epoch after")
    undone = t.send("undo")
    assert undone["event"] == "applied" and undone["undid"] == changed["command_id"]
    assert undone["hparams"]["lr"] == pytest.approx(0.003)
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.003)
    assert event_of(run, "rewound")["checkpoint"] == changed["undo_point"]["checkpoint"]
    meta = next(m for m in run.list_checkpoints() if m["name"] == undone["checkpoint"])
    assert undone["step"] == meta["step"], "fit goes on from the step of the page change"
    t.send("stop")
    t.join()
    assert run.read_status()["state"] == "finished"
