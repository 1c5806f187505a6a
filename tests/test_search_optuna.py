"""The sweep on Optuna: TPE learns, a pruner stops a real trainer, --resume finishes a killed sweep."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import optuna
import psutil
import pytest

import conftest
from trainer.contract.rundir import RunDir, current_line
from trainer.search.runner import SweepRunner, SweepSettings, TrialPlan
from trainer.search.samplers import make_sampler
from trainer.search.space import parse_param_args
from trainer.search.study import JOURNAL, open_study
from trainer.search.sweepdir import SweepDir

PANDA = [sys.executable, "-m", "app"]


def test_tpe_homes_in_on_a_tiny_spaces_optimum():
    space = parse_param_args(["lr=log:1e-4:1", "beta=log1m:0.9:0.999"])
    study = optuna.create_study(direction="maximize", sampler=make_sampler("tpe", seed=0).optuna(space, 60))
    distance = []
    for _ in range(60):
        trial = study.ask(space.distributions())
        config = space.from_optuna(trial.params)
        assert 1e-4 <= config["lr"] <= 1 and 0.9 <= config["beta"] <= 0.999
        d = abs(math.log10(config["lr"]) + 2) + abs(math.log10(1 - config["beta"]) + 2)
        distance.append(d)
        study.tell(trial, -d)
    # random search averages 1.5 decades off (1 for lr, 0.5 for 1 - beta; the mean of 20 draws has a
    # standard deviation of about 0.13); TPE's last 20 proposals must be much closer
    assert sum(distance[:10]) / 10 > 1.0  # its random start-up trials
    assert sum(distance[-20:]) / 20 < 0.95


@pytest.mark.timeout(240)
def test_a_pruner_stops_a_real_hopeless_trainer_judged_on_its_run_directory(tmp_path):
    sweep = SweepDir(tmp_path / "s")
    # paced, so the hopeless trial cannot finish its 5 epochs before the sweep has read its first ones
    settings = SweepSettings(trials=2, parallel=1, epochs=5, early_stop="halving", grace=1, seed=0,
                             run_options={"pace": 0.5})
    runner = SweepRunner(sweep, parse_param_args(["lr=log:1e-6:1e-1"]), settings, poll_seconds=0.2)
    plans = [TrialPlan("trial-0001", 1, 1, {"lr": 0.01, "units": 16, "layers": 1}),
             TrialPlan("trial-0002", 2, 1, {"lr": 1e-6, "units": 16, "layers": 1})]
    assert runner.run(plans) == "finished"
    trials = sweep.trials()
    assert trials["trial-0001"]["state"] == "finished" and trials["trial-0001"]["epochs"] == 5
    assert trials["trial-0002"]["state"] == "stopped" and "halving pruner" in trials["trial-0002"]["reason"]
    assert trials["trial-0002"]["epochs"] < 5
    stops = [c for c in RunDir(sweep.path / "trial-0002").read_commands() if c["cmd"] == "stop"]
    assert len(stops) == 1 and stops[0]["source"] == "sweep"
    study = open_study(sweep.path, "s", create=False)
    states = {t.user_attrs["panda_trial"]: t.state.name for t in study.get_trials()}
    assert states == {"trial-0001": "COMPLETE", "trial-0002": "PRUNED"}
    for t in study.get_trials():  # the pruner saw exactly the run directory's curve
        line = current_line(RunDir(sweep.path / t.user_attrs["panda_trial"]).read_metrics())
        assert t.intermediate_values == {r["epoch"]: r["val_accuracy"] for r in line}


@pytest.mark.timeout(300)
@pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning")
def test_resume_of_a_sweep_killed_mid_round_finishes_with_every_trial_once(tmp_path):
    sweep = SweepDir(tmp_path / "k")
    process = subprocess.Popen(
        [*PANDA, "sweep", "--run-dir", str(tmp_path), "--name", "k", "--trials", "4", "--parallel", "2",
         "--epochs", "3", "--pace", "1", "--checkpoint-every", "1", "--seed", "2", "--param", "lr=log:1e-3:1e-1",
         "--param", "units=int:16:32", "--param", "layers=int:1:2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        first = [RunDir(sweep.path / n) for n in ("trial-0001", "trial-0002")]
        conftest.wait_for(lambda: sweep.path.exists(), tmp_path, 60, "the sweep folder")
        conftest.wait_for(lambda: all(r.metrics_path.exists() and r.read_metrics() and r.list_checkpoints() for r in first),
                          sweep.path, 120, "two trials with a checkpoint")
        pids = [t["pid"] for t in sweep.trials().values() if t.get("pid")]
        process.kill()  # the sweep dies mid-round: no clean shutdown, nothing recorded
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    psutil.wait_procs([psutil.Process(p) for p in pids if psutil.pid_exists(p)], timeout=60)  # they stop with it
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids)
    assert sweep.read_spec()["state"] == "running"
    before = {n: len(current_line(RunDir(sweep.path / n).read_metrics())) for n in ("trial-0001", "trial-0002")}

    result = subprocess.run([*PANDA, "sweep", "--resume", str(sweep.path)], capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "resuming" in result.stdout and "sweep finished" in result.stdout

    trials = sweep.trials()
    assert sorted(trials) == [f"trial-000{i}" for i in range(1, 5)]
    assert all(t["state"] == "finished" and t["epochs"] == 3 for t in trials.values()), trials
    launches = {}
    for record in sweep.read_trial_records():
        if record["state"] == "running":
            launches[record["trial"]] = launches.get(record["trial"], 0) + 1
    # trials 3 and 4 started once; 1 and 2 once before the kill and once to resume (unless already done)
    assert launches["trial-0003"] == launches["trial-0004"] == 1
    for name, epochs in before.items():
        run = RunDir(sweep.path / name)
        line = current_line(run.read_metrics())
        assert [r["epoch"] for r in line] == [1, 2, 3]
        if epochs < 3:
            assert launches[name] == 2 and trials[name]["resumed"] == "resumed from its checkpoint"
            assert run.read_config()["name"] == name  # the same run directory, continued
    study = open_study(sweep.path, "k", create=False)
    assert sorted(t.user_attrs["panda_trial"] for t in study.get_trials()) == sorted(trials)  # each trial once
    assert all(t.state.name == "COMPLETE" for t in study.get_trials())
    assert sweep.read_spec()["state"] == "finished"


def test_resume_of_a_folder_that_is_not_a_sweep_is_a_clear_error(tmp_path):
    run = RunDir(tmp_path / "a-run").create()
    for path, message in ((tmp_path / "missing", "is not a Panda sweep"), (run.path, "is not a Panda sweep")):
        result = subprocess.run([*PANDA, "sweep", "--resume", str(path)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 2 and message in result.stderr, result.stderr
    finished = SweepDir(tmp_path / "done").create()
    finished.write_spec({"name": "done", "state": "finished"})
    (finished.path / JOURNAL).touch()
    result = subprocess.run([*PANDA, "sweep", "--resume", str(finished.path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "already finished" in result.stderr


def test_dry_run_with_tpe(tmp_path):
    result = subprocess.run([*PANDA, "sweep", "--trials", "3", "--sampler", "tpe", "--param", "lr=log:1e-4:1",
                             "--dry-run"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(l) for l in result.stdout.splitlines()]
    assert len(lines) == 3 and all(1e-4 <= l["lr"] <= 1 for l in lines)
