"""fork on a live run: candidates from the same state on the same batches, curves recorded, state restored."""

from __future__ import annotations

import json

import pytest

from conftest import event_of, wait_for
from test_find_lr import state_of
from trainer.training.exploration import FORKS, best_of


def forks(run) -> list[dict]:
    return [json.loads(line) for line in (run.path / FORKS).read_text().splitlines()]


def test_fork_tries_each_candidate_then_restores_and_asks(start_trainer):
    t = start_trainer(epochs=60, pace=0.05, lr=0.003, batch_size=64)
    run = t.run
    wait_for(lambda: run.read_metrics(), run.path, what="a first epoch")
    epochs_before = len(run.read_metrics())
    assert t.send("pause")["event"] == "applied"
    before, step = state_of(t.trainer), t.trainer.steering.step

    candidates = [{"lr": 0.03}, {"lr": 0.003}, {"lr": 0.003}, {"lr": 0.003, "batch_size": 32}, {"beta": 0.5}]
    asked = t.send("fork", {"candidates": candidates, "steps": 25})
    assert asked["event"] == "applied" and asked["pick"] == "ask"
    after = state_of(t.trainer)
    assert all(b.tobytes() == a.tobytes() for b, a in zip(before, after)), "fork restores the exact state"
    assert t.trainer.steering.step == step and t.trainer.hp.lr == pytest.approx(0.003)

    record = forks(run)[-1]
    assert record["command_id"] == asked["command_id"] and len(record["candidates"]) == 5
    curves = [[p["loss"] for p in c["curve"]] for c in record["candidates"]]
    assert all(len(c) == 25 for c in curves)
    assert curves[1] == curves[2], "the same candidate from the same state on the same batches: the same curve"
    assert curves[0][0] == curves[1][0], "every candidate starts from the same weights on the same first batch"
    assert curves[0][1] != curves[1][1]
    assert record["candidates"][4]["hparams"] == {"lr": pytest.approx(0.003), "beta": 0.5, "batch_size": 64}
    assert all(c["val_loss"] is not None for c in record["candidates"])
    result = event_of(run, "fork_result")
    assert result["command_id"] == asked["command_id"] and result["best"] == best_of(record["candidates"])
    assert run.read_status()["state"] == "paused"
    assert len(run.read_metrics()) == epochs_before, "fork steps are no epochs of the run"

    best = t.send("fork", {"candidates": [{"lr": 0.001}, {"lr": 0.01}], "steps": 10, "pick": "best"})
    assert best["event"] == "applied"
    chosen = forks(run)[-1]["candidates"][best["best"]]["hparams"]["lr"]
    assert best["hparams"]["lr"] == pytest.approx(chosen) and best["undo_point"]["hparams"]["lr"] == pytest.approx(0.003)
    assert t.send("resume")["event"] == "applied"
    wait_for(lambda: len(run.read_metrics()) > epochs_before, run.path, what="training after the forks")
    t.send("stop")
    assert t.join() == "finished"
