"""bench/autopilot.py's parts: compute to target on a real run's records, the table and goals, the cosine decay,
and a diverged run that is stopped rather than waited on (the whole benchmark is not run here)."""

from __future__ import annotations

import math

import pytest

from bench import autopilot
from bench.autopilot_table import Outcome, Row, checks, compute_to_target, steps_spent, summary, table
from trainer.contract.hparams import Hyperparameters
from trainer.contract.rundir import RunDir, current_line
from trainer.reports.schedule import lr_at, lr_schedule
from trainer.training.loop import TrainConfig, Trainer

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A real 4-epoch digits run (23 steps an epoch), its records and journal."""
    config = TrainConfig(hparams=Hyperparameters(lr=3e-3, units=16), epochs=4, seed=0, internals=False)
    trainer = Trainer.create(tmp_path_factory.mktemp("bench") / "tiny", config, verbose=False)
    assert trainer.run() == "finished"
    run = trainer.rundir
    return run.read_metrics(), run.read_events()


def test_compute_to_target_is_the_step_of_the_first_epoch_that_reaches_it(tiny_run):
    records, events = tiny_run
    accuracies = [r["val_accuracy"] for r in records]
    assert [r["step"] for r in records] == [23, 46, 69, 92]
    for k, target in enumerate(accuracies):
        first = next(r for r in records if r["val_accuracy"] >= target)
        assert compute_to_target(records, events, target, steps_per_epoch=23) == first["step"] <= records[k]["step"]
    assert compute_to_target(records, events, max(accuracies) + 1e-9, steps_per_epoch=23) is None
    losses = [r["val_loss"] for r in records]  # a loss target is reached from above
    assert compute_to_target(records, events, min(losses), steps_per_epoch=23, metric="val_loss") == \
        records[losses.index(min(losses))]["step"]
    assert steps_spent(records, events, steps_per_epoch=23) == 92


def test_side_tracks_and_lost_epochs_count_as_compute(tiny_run):
    records, events = tiny_run
    between = lambda a, b: (records[a]["time"] + records[b]["time"]) / 2  # noqa: E731
    stage = {"event": "autopilot_stage", "step": records[0]["step"], "time": between(0, 1), "explore_steps": 40}
    after_last = {**stage, "time": records[-1]["time"] + 1, "explore_steps": 7}
    assert steps_spent(records, [*events, stage, after_last], steps_per_epoch=23, explore_total=47) == 92 + 47
    first = records[1]["val_accuracy"]
    reached = next(r for r in records if r["val_accuracy"] >= first)
    with_stage = compute_to_target(records, [*events, stage, after_last], first, steps_per_epoch=23, explore_total=47)
    assert with_stage == reached["step"] + (40 if reached["time"] > stage["time"] else 0)
    # a fork of another source (no stage event): its steps count from the start
    assert compute_to_target(records, events, records[0]["val_accuracy"], steps_per_epoch=23, explore_total=11) == 23 + 11
    # a divergence after epoch 2 threw epoch 3 away and put the run back at step 46: epoch 3 is trained again
    diverged = {"event": "diverged", "step": 46, "time": between(1, 2)}
    again = [*records[:2], {**records[2], "time": between(1, 2) + 1e-3}, *records[3:]]
    assert steps_spent(again, [diverged], steps_per_epoch=23) == 92 + 23
    spent = [23, 46, 69 + 23, 92 + 23]
    for target in (r["val_accuracy"] for r in again):
        first = next(k for k, r in enumerate(again) if r["val_accuracy"] >= target)
        assert compute_to_target(again, [diverged], target, steps_per_epoch=23) == spent[first]


def test_table_and_goals_judge_the_new_autopilot_against_the_sweep():
    d = Outcome(200, 0.96, 400, 0, lr=0.003)
    rows = [Row("digits-mlp", "adam", "low", 3e-5, {"a": Outcome(None, 0.3, 400), "b": Outcome(None, 0.4, 400),
                                                     "c": Outcome(250, 0.97, 520, 120), "d": d, "e": Outcome(180, 0.97, 400, lr=0.003)}),
            Row("digits-mlp", "adam", "high", 0.3, {"a": Outcome(None, 0.9, 400), "b": Outcome(300, 0.96, 400),
                                                     "c": Outcome(None, 0.95, 500, 100, note="diverged: stopped"),
                                                     "d": d, "e": None})]
    assert checks(rows[0]) == {"reached": True, "within": True, "faster": False, "final": True}
    assert checks(rows[1]) == {"reached": False, "within": False, "faster": False, "final": False}
    assert checks(Row("w", "adam", "low", 1.0, {"c": Outcome(100, 0.9), "d": Outcome(None, 0.8)}))["faster"] is True
    assert checks(Row("w", "adam", "low", 1.0, {"c": Outcome(None, 0.9), "d": Outcome(None, 0.8)}))["within"] is None
    text = table(rows, {"digits-mlp": "val acc ≥ 0.96"})
    lines = text.splitlines()
    assert len(lines) == 4 and lines[1] == "|" + "---|" * 13
    assert all(line.count("|") == 14 for line in lines)
    assert "| 250 (23 % exploring) |" in lines[2] and "| 200 α=0.003 |" in lines[2]
    assert "— (20 % exploring) (diverged: stopped)" in lines[3] and "| not run |" in lines[3]
    assert lines[3].endswith("| **no** | **no** | **no** |") and lines[2].endswith("| yes | yes | **no** |")
    line = summary(rows)
    assert "reaches the target on every start: missed (1/2)" in line
    assert "within 1.5× of (d)'s compute everywhere: missed (1/2)" in line
    assert "faster than (d) on at least half of the cells: missed (0/2)" in line
    assert "final accuracy ≥ (d)'s everywhere: missed (1/2)" in line
    assert summary([Row("w", "adam", "low", 1.0, {"a": Outcome(1, 1.0)})]).count("not run") == 4


def test_cosine_decay_anneals_over_the_runs_epochs(tmp_path):
    config = TrainConfig(hparams=Hyperparameters(lr=0.01, decay="cosine", units=8), epochs=4, seed=0, internals=False)
    trainer = Trainer.create(tmp_path / "cosine", config, verbose=False)
    assert trainer.run() == "finished"
    records = trainer.rundir.read_metrics()
    expected = [0.01 * 0.5 * (1 + math.cos(math.pi * t / 4)) for t in range(4)]  # epoch k trains with t = k - 1
    assert [r["lr"] for r in records] == pytest.approx(expected)
    schedule = lr_schedule(trainer.rundir.path)  # the export knows the decay too
    assert [lr_at(schedule, r["step"] - 1) for r in records] == pytest.approx(expected)
    with pytest.raises(ValueError, match="span"):
        Hyperparameters(decay="cosine").decayed_lr(0.1, 1)


def test_a_diverged_run_without_autopilot_is_stopped_not_waited_on(tmp_path):
    autopilot.write_digit_images(tmp_path / "digits-8x8x1.npz")
    outcome = autopilot.train(tmp_path, "wild", autopilot.WORKLOADS["digits-cnn"], "adam", 5.0, 3, 0, {})
    status = RunDir(tmp_path / "wild").read_status()
    assert outcome.note == "diverged: stopped" and status["ending"] == "stopped"
    assert outcome.compute is None and outcome.total >= 23  # the lost epoch counts
    assert len(current_line(RunDir(tmp_path / "wild").read_metrics())) < 3


def test_the_sweep_and_the_command_line():
    lrs = autopilot.sweep_lrs("adam", 6, 3)
    assert lrs == autopilot.sweep_lrs("adam", 6, 3) and all(1e-4 <= lr <= 1.0 for lr in lrs) and len(set(lrs)) == 6
    assert autopilot.best_of({0.1: Outcome(None, 0.99), 0.01: Outcome(None, 0.97)}) == 0.1
    with pytest.raises(SystemExit):
        autopilot.main(["--workloads", "imagenet"])


def test_it_runs_as_python_m_bench_autopilot():
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-m", "bench.autopilot", "--help"], cwd=root, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(root)}, timeout=120)
    assert result.returncode == 0 and "--quick" in result.stdout and "--out" in result.stdout
