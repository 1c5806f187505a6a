"""The sweep runner with a stand-in trainer: crashes, divergence, early stopping, the parallel cap.

The stand-in is a small script that writes a real run directory through :mod:`trainer.contract.rundir`
and obeys ``stop`` commands, so these tests exercise the runner's process handling and file
contract in about a second each. The real trainer is used in ``test_search_sweep.py``.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from trainer.contract.rundir import RunDir, iter_runs
from trainer.search.runner import Progress, SweepRunner, SweepSettings, TrialPlan, plan_round
from trainer.search.space import parse_param_args
from trainer.search.sweepdir import SweepDir

FAKE_TRAINER = r'''
"""A stand-in for `panda train`: quality depends on lr; some lrs crash, diverge, or go slowly."""
import argparse, math, os, sys, time
from pathlib import Path
from trainer.contract.rundir import JsonlTail, RunDir
from trainer.contract.watch import FileWatcher

p = argparse.ArgumentParser()
p.add_argument("--run-dir"); p.add_argument("--name"); p.add_argument("--epochs", type=int)
p.add_argument("--lr", type=float, default=0.01)
args, _ = p.parse_known_args()
run = RunDir(Path(args.run_dir) / args.name).create()
run.write_config({"name": args.name, "hparams": {"lr": args.lr}, "epochs": args.epochs, "argv": sys.argv[1:]})
commands = JsonlTail(run.commands_path)

def status(state, epoch, message=None):
    run.write_status({"state": state, "epoch": epoch, "epochs": args.epochs, "pid": os.getpid(),
                      "heartbeat": time.time(), "message": message, "hparams": {"lr": args.lr}})

def stop_requested(wait):
    with FileWatcher(run.path, ["commands.jsonl"]) as watcher:
        deadline = time.monotonic() + wait
        while True:
            if any(c.get("cmd") == "stop" for c in commands.read_new()):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            watcher.wait(min(left, 1.0))

status("running", 0)
if args.lr >= 0.5:
    print("Traceback (most recent call last):\nRuntimeError: boom, lr too high", file=sys.stderr)
    sys.exit(1)
quality = max(0.05, 1 - abs(math.log10(args.lr) + 2) / 4)
slow = 60.0 if args.lr < 1e-3 else 0.0
for epoch in range(1, args.epochs + 1):
    run.append_event("epoch")
    from trainer.contract.rundir import append_jsonl
    append_jsonl(run.metrics_path, {"epoch": epoch, "val_accuracy": quality * epoch / args.epochs, "loss": 1.0 / epoch})
    if 0.2 <= args.lr < 0.5:
        status("diverged", epoch, "loss blew up")
        if stop_requested(60.0):
            status("finished", epoch, "stopped by the user")
            sys.exit(0)
    status("running", epoch)
    if stop_requested(slow if epoch >= 2 else 0.0):
        status("finished", epoch, "stopped by the user")
        sys.exit(0)
status("finished", args.epochs)
'''


@pytest.fixture
def fake_trainer(tmp_path) -> list[str]:
    path = tmp_path / "fake_trainer.py"
    path.write_text(FAKE_TRAINER)
    return [sys.executable, str(path)]


def plans(*lrs: float) -> list[TrialPlan]:
    return [TrialPlan(f"trial-{i:04d}", i, 1, {"lr": lr}) for i, lr in enumerate(lrs, start=1)]


def overlap(trials: dict) -> int:
    """Most trials running at the same moment, from their started / ended times."""
    edges = sorted([(t["started"], 1) for t in trials.values() if "started" in t] + [(t["ended"], -1) for t in trials.values() if "ended" in t])
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def test_a_crashing_trial_is_failed_with_its_error_and_the_sweep_goes_on(tmp_path, fake_trainer):
    sweep = SweepDir(tmp_path / "runs" / "s")
    settings = SweepSettings(trials=4, parallel=2, epochs=3, seed=0)
    runner = SweepRunner(sweep, parse_param_args(["lr=log:1e-3:1e-1"]), settings, command=fake_trainer, poll_seconds=0.1)
    state = runner.run(plans(0.01, 0.9, 0.001, 0.05))
    assert state == "finished"
    trials = sweep.trials()
    assert [t["state"] for t in trials.values()] == ["finished", "failed", "finished", "finished"]
    assert "boom, lr too high" in trials["trial-0002"]["error"]
    assert trials["trial-0001"]["best_val_accuracy"] == pytest.approx(1.0)
    assert trials["trial-0001"]["best_epoch"] == 3 and trials["trial-0001"]["epochs"] == 3
    assert overlap(trials) <= 2
    # the sweep folder is not a run; its trials are, one level down
    assert not (sweep.path / "config.json").exists()
    assert [r.name for r in iter_runs(tmp_path / "runs")] == ["trial-0001", "trial-0002", "trial-0003", "trial-0004"]
    spec = sweep.read_spec()
    assert spec["state"] == "finished" and spec["settings"]["parallel"] == 2 and spec["space"]["lr"]["scale"] == "log"


def test_a_diverged_trial_is_stopped_and_marked(tmp_path, fake_trainer):
    sweep = SweepDir(tmp_path / "s")
    runner = SweepRunner(sweep, parse_param_args(["lr=log:1e-3:1"]), SweepSettings(trials=2, parallel=2, epochs=3),
                         command=fake_trainer, poll_seconds=0.1)
    assert runner.run(plans(0.3, 0.01)) == "finished"
    trials = sweep.trials()
    assert trials["trial-0001"]["state"] == "diverged" and "loss blew up" in trials["trial-0001"]["reason"]
    assert trials["trial-0002"]["state"] == "finished"
    stops = [c for c in RunDir(sweep.path / "trial-0001").read_commands() if c["cmd"] == "stop"]
    assert len(stops) == 1 and stops[0]["source"] == "sweep"


def test_median_rule_stops_a_hopeless_trial_through_its_run_directory(tmp_path, fake_trainer):
    sweep = SweepDir(tmp_path / "s")
    settings = SweepSettings(trials=4, parallel=1, epochs=5, early_stop="median", grace=2)
    runner = SweepRunner(sweep, parse_param_args(["lr=log:1e-4:1e-1"]), settings, command=fake_trainer, poll_seconds=0.1)
    # three good trials first, then one that is hopeless and slow (60 s an epoch from epoch 2 on):
    # the median rule must stop it after epoch 2
    assert runner.run(plans(0.01, 0.02, 0.005, 0.0001)) == "finished"
    trials = sweep.trials()
    assert [t["state"] for t in trials.values()] == ["finished", "finished", "finished", "stopped"]
    assert "median pruner" in trials["trial-0004"]["reason"]
    assert trials["trial-0004"]["epochs"] == 2
    assert trials["trial-0004"]["ended"] - trials["trial-0004"]["started"] < 30  # never waited out its slow epochs
    states = [r["state"] for r in sweep.read_trial_records() if r["trial"] == "trial-0004"]
    assert states == ["queued", "running", "stopping", "stopped"]


def test_rounds_narrow_the_space_and_are_recorded(tmp_path, fake_trainer):
    sweep = SweepDir(tmp_path / "s")
    settings = SweepSettings(trials=6, parallel=2, epochs=1, rounds=2, keep=2, margin=0.05, seed=4)
    space = parse_param_args(["lr=log:1e-3:1e-1"])
    runner = SweepRunner(sweep, space, settings, command=fake_trainer, poll_seconds=0.1)
    assert runner.run() == "finished"
    spec = sweep.read_spec()
    assert [r["round"] for r in spec["rounds"]] == [1, 2]
    round2 = spec["rounds"][1]
    trials = sweep.trials()
    best = sorted((t for t in trials.values() if t["round"] == 1), key=lambda t: -t["best_val_accuracy"])[:2]
    assert sorted(round2["around"]) == sorted(t["trial"] for t in best)
    low, high = round2["space"]["lr"]["min"], round2["space"]["lr"]["max"]
    assert (high / low) < 1e2  # narrower than the first round's two decades
    for t in best:
        assert low * 0.9999 <= t["params"]["lr"] <= high * 1.0001
    round2_trials = [t for t in trials.values() if t["round"] == 2]
    assert len(round2_trials) == 6 and [t["trial"] for t in round2_trials][0] == "trial-0007"
    assert all(low <= t["params"]["lr"] <= high for t in round2_trials)


def test_progress_is_one_updating_line_on_a_terminal_and_plain_lines_otherwise():
    tty = io.StringIO()
    progress = Progress(tty, tty=True)
    progress.update("round 1/1 · done 0/4 · running 2")
    progress.update("round 1/1 · done 1/4 · running 2")
    progress.message("trial-0002 failed: boom")
    progress.close()
    text = tty.getvalue()
    assert text.startswith("\rround 1/1 · done 0/4") and "\rround 1/1 · done 1/4" in text
    assert text.count("\n") == 2  # the message, and the final newline
    plain = io.StringIO()
    progress = Progress(plain, tty=False)
    progress.update("a")
    progress.update("a")  # unchanged: not repeated
    progress.update("b")
    assert plain.getvalue() == "a\nb\n"


def test_plan_round_drops_beta_for_sgd_and_names_trials_in_sequence():
    space = parse_param_args(["lr=log:1e-4:1", "beta=log1m:0.9:0.999", "optimizer=choice:sgd,momentum"])
    planned = plan_round(space, SweepSettings(trials=40, seed=2), 1, first_index=5)
    assert [p.name for p in planned[:2]] == ["trial-0005", "trial-0006"]
    for p in planned:
        assert ("beta" in p.params) == (p.params["optimizer"] != "sgd")
    argv = planned[0].argv(Path("runs/s"), SweepSettings(epochs=3, seed=2))
    assert argv[-1] == "--quiet" and argv[argv.index("--name") + 1] == "trial-0005"
    assert argv[argv.index("--epochs") + 1] == "3" and argv[argv.index("--run-dir") + 1] == str(Path("runs/s"))


def test_dry_run_prints_one_json_object_a_line_and_writes_nothing(tmp_path):
    import subprocess

    result = subprocess.run(
        [sys.executable, "-m", "app", "sweep", "--run-dir", str(tmp_path), "--name", "s", "--trials", "5",
         "--seed", "9", "--param", "optimizer=choice:sgd,adam", "--dry-run"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [l["trial"] for l in lines] == [f"trial-000{i}" for i in range(1, 6)]
    assert all(1e-4 <= l["lr"] <= 1 and 50 <= l["units"] <= 100 for l in lines)
    assert all(("beta" in l) == (l["optimizer"] != "sgd") for l in lines)
    assert not (tmp_path / "s").exists()
