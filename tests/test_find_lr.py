"""find_lr on a live panda train run: a curve, a suggestion, and the exact state put back."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import wait_for
from trainer.steering.durability import recorded_explore_steps
from trainer.training.exploration import LR_FINDER, Explorer, ramp, smooth, suggest


def state_of(trainer) -> list[np.ndarray]:
    """Every variable find_lr may touch, as host copies (weights, BN statistics, slots, data position)."""
    return [np.array(v.numpy(), copy=True) for v in Explorer(trainer).variables() if v is not None]


def test_find_lr_records_a_curve_and_restores_the_exact_state(start_trainer):
    t = start_trainer(epochs=50, pace=0.05, lr=0.003)
    run = t.run
    wait_for(lambda: run.read_metrics(), run.path, what="a first epoch")
    assert t.send("pause")["event"] == "applied"
    trainer = t.trainer
    before = state_of(trainer)
    names = [v.path if hasattr(v, "path") else v.name for v in Explorer(trainer).variables() if v is not None]
    assert any("moving_mean" in n for n in names) and any("velocity" in n for n in names)
    step, epoch, hp = trainer.steering.step, trainer.steering.epoch, trainer.hp.to_dict()
    traces = trainer.steps.step_on_batch.experimental_get_tracing_count()

    found = t.send("find_lr", {"steps": 60, "min": 1e-5, "max": 10})
    assert found["event"] == "applied", found.get("reason")
    after = state_of(trainer)
    assert len(before) == len(after)
    for b, a, n in zip(before, after, names):
        assert b.dtype == a.dtype and b.tobytes() == a.tobytes(), f"{n} differs after find_lr"
    assert (trainer.steering.step, trainer.steering.epoch, trainer.hp.to_dict()) == (step, epoch, hp)
    assert float(trainer.optimizer.learning_rate.numpy()) == pytest.approx(0.003)
    assert trainer.steps.step_on_batch.experimental_get_tracing_count() == traces, "find_lr must not retrace the step"

    suggestion = found["suggestion"]
    assert 1e-5 <= suggestion["lr"] <= 10 and suggestion["min_lr"] is not None
    assert suggestion["lr"] == pytest.approx(float(f"{suggestion['min_over_10']:.3g}"))
    records = [json.loads(line) for line in (run.path / LR_FINDER).read_text().splitlines()]
    assert len(records) == 1 and records[0]["command_id"] == found["command_id"]
    points = records[0]["points"]
    assert 2 <= len(points) <= 60 and points[0]["lr"] == pytest.approx(1e-5)
    assert records[0]["stopped"] != "max", "a ramp to α = 10 blows the loss past 4x its minimum"
    assert [p["lr"] for p in points] == sorted(p["lr"] for p in points)
    # every finder step is training compute: status.json counts it, and --resume rebuilds it from the record
    assert run.status().explore_steps == trainer.steering.explore_steps == len(points)
    assert recorded_explore_steps(run.path) == len(points)

    assert t.send("resume")["event"] == "applied"
    wait_for(lambda: len(run.read_metrics()) >= 3, run.path, what="training after find_lr")
    assert [r["epoch"] for r in run.read_metrics()] == list(range(1, len(run.read_metrics()) + 1)), \
        "find_lr adds no epochs"
    t.send("stop")
    assert t.join() == "finished"


def test_suggestions_from_a_known_curve():
    lrs = ramp(1e-4, 1.0, 5)
    assert lrs[0] == pytest.approx(1e-4) and lrs[-1] == pytest.approx(1.0)
    s = suggest(lrs, [2.0, 1.9, 1.0, 0.5, 9.0])
    assert s["steepest"] == pytest.approx(1e-2) and s["min_lr"] == pytest.approx(0.1)
    assert s["min_over_10"] == pytest.approx(0.01)
    assert suggest(lrs, [float("nan")] * 5)["lr"] is None
    assert smooth([1.0])[0] == pytest.approx(1.0)
