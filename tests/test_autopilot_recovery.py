"""The lookahead autopilot undoes its own harm: a raise of α that left the run not learning is taken back,
and a finder on a state that learns at no α never drives α to nothing (bench/autopilot.py's CNN runs: a stage
raised α to 0.1 and killed a run that was learning; finder after finder then took α down to 6.5e-13)."""

from __future__ import annotations

import json

import pytest

from trainer.contract.hparams import Hyperparameters
from trainer.contract.rundir import current_line
from trainer.steering import autopilot as planner
from trainer.training.autopilot_stages import FLAT
from trainer.training.exploration import descent
from trainer.training.loop import TrainConfig, Trainer


def train(path, lr, epochs):
    """Adam without batch norm, and a divergence guard that never fires: a wrecked network stays finite."""
    config = TrainConfig(hparams=Hyperparameters(optimizer="adam", lr=lr, batch_norm=False), epochs=epochs, seed=0,
                         internals=False, autopilot=True, divergence_factor=1e6)
    trainer = Trainer.create(path, config, verbose=False)
    assert trainer.run() == "finished"
    return trainer


def events(run, *kinds):
    return [e for e in run.read_events() if e.get("event") in kinds]


def test_a_raise_that_leaves_the_run_not_learning_is_undone_by_the_autopilot(tmp_path, monkeypatch):
    """Stage 1 is made to take α ×300 (as the CNN's stage 2 took 0.1 on an extrapolation); the network dies."""
    monkeypatch.setattr(planner, "FIRST_FACTORS", (1.0, 300.0))
    real, calls = planner.choose, []
    monkeypatch.setattr(planner, "choose", lambda values, keep=None, margin=planner.KEEP_MARGIN:
                        1 if not calls.append(values) and len(calls) == 1 else real(values, keep, margin))
    trainer = train(tmp_path / "raised", 0.003, 10)
    run = trainer.rundir
    first = events(run, "autopilot_stage")[0]
    assert (first["from_lr"], first["to_lr"]) == (0.003, 0.9)
    line = current_line(run.read_metrics())
    dead = [r for r in run.read_metrics() if r["branch"] == 0 and r["epoch"] > first["epoch"]]
    assert dead and all(r["val_accuracy"] < 0.2 for r in dead), "α = 0.9 did not wreck the network"
    vetoed = events(run, "autopilot_vetoed")
    assert [(v["stage"], v["by"], v["lr"]) for v in vetoed] == [(1, "autopilot", 0.003)]
    undo = next(e for e in events(run, "applied") if e.get("cmd") == "undo")
    assert undo["undid"] == first["command_id"]
    assert [c for c in run.read_commands() if c["id"] == undo["command_id"]][0]["source"] == "autopilot"
    assert not [s for s in events(run, "autopilot_stage") if s["trigger"] == "not learning"], "a finder instead"
    resumed = [r for r in line if r["epoch"] > first["epoch"]]
    assert resumed[0]["lr"] == 0.003 and resumed[0]["branch"] > 0  # back to the state before the raise
    assert line[-1]["val_accuracy"] >= 0.9
    assert 1 in trainer.advising.planner.vetoed  # the sampler heard 0.9 was bad


def test_a_flat_finder_moves_alpha_as_the_advisor_says_and_never_below_the_floor(tmp_path):
    """α = 0.9 kills the network in epoch 1; every α the finder tries then learns nothing."""
    run = train(tmp_path / "wrecked", 0.9, 7).rundir
    finders = [json.loads(line) for line in (run.path / "lr_finder.jsonl").read_text().splitlines()]
    stages = [s for s in events(run, "autopilot_stage") if s["action"] == "find_lr"]
    assert finders and len(finders) == len(stages)
    for finder, stage in zip(finders, stages):
        smoothed = [p["smoothed"] if p["smoothed"] is not None else float("nan") for p in finder["points"]]
        assert descent(smoothed) < FLAT and finder["suggestion"]["lr"] <= 1e-5  # the noise's minimum
        assert stage["to_lr"] == pytest.approx(stage["from_lr"] * 0.1)  # the advisor's ×0.1 for a high α
    assert all(s["to_lr"] >= planner.ALPHA_FLOOR for s in events(run, "autopilot_stage"))


def test_the_planner_never_offers_an_alpha_below_the_floor():
    class Sampler:
        def ask(self, n):
            return [1e-12] * n

        def tell(self, lr, value):
            pass

    plan = planner.StagePlanner(Sampler())
    assert min(plan.candidates(1e-9)) == planner.ALPHA_FLOOR
    plan.stages.append({"stage": 1, "action": "fork"})
    assert min(plan.candidates(1e-5)) == planner.ALPHA_FLOOR
