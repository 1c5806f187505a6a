"""Real sweeps on digits with real TensorFlow trainer processes, through ``panda sweep``."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

import conftest
from trainer.contract.rundir import RunDir, iter_runs
from trainer.search.sweepdir import SweepDir

PANDA = [sys.executable, "-m", "app"]  # the `panda` command


def wait_for(predicate, root: Path, timeout: float, what: str):
    """Re-check ``predicate`` whenever anything under ``root`` (subfolders too) changes."""
    return conftest.wait_for(predicate, root, timeout, what, recursive=True)


def overlap(trials: dict) -> int:
    edges = sorted([(t["started"], 1) for t in trials.values()] + [(t["ended"], -1) for t in trials.values()])
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


@pytest.mark.timeout(180)
def test_real_sweep_four_trials_two_in_parallel(tmp_path):
    common = ["--run-dir", str(tmp_path), "--name", "digits", "--trials", "4", "--parallel", "2", "--epochs", "2",
              "--seed", "3", "--param", "lr=log:1e-3:1e-1", "--param", "units=int:16:32", "--param", "layers=int:1:2"]
    dry = subprocess.run([*PANDA, "sweep", *common, "--dry-run"], capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    planned = {line["trial"]: line for line in map(json.loads, dry.stdout.splitlines())}

    started = time.monotonic()
    result = subprocess.run([*PANDA, "sweep", *common], capture_output=True, text=True, timeout=170)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert "sweep finished" in result.stdout and "best trials:" in result.stdout
    assert "done 4/4" in result.stdout  # the progress lines (plain, as stdout is a pipe)

    sweep = SweepDir(tmp_path / "digits")
    trials = sweep.trials()
    assert list(trials) == sorted(planned)
    assert all(t["state"] == "finished" for t in trials.values()), trials
    assert overlap(trials) == 2  # two at a time, never more
    assert not (sweep.path / "config.json").exists()
    runs = list(iter_runs(tmp_path))
    assert [r.name for r in runs] == sorted(planned)
    for run in runs:
        config = run.read_config()
        plan = planned[run.name]
        # what the dry run printed is what each trainer trained
        assert config["hparams"]["lr"] == plan["lr"]
        assert (config["hparams"]["units"], config["hparams"]["layers"]) == (plan["units"], plan["layers"])
        assert config["hparams"]["beta"] == plan["beta"] and config["hparams"]["batch_norm"] == plan["batch_norm"]
        assert config["epochs"] == 2 and config["dataset"]["name"] == "digits"
        assert [m["epoch"] for m in run.read_metrics()] == [1, 2]
        assert run.read_status()["state"] == "finished"
        best = max(m["val_accuracy"] for m in run.read_metrics())
        assert trials[run.name]["best_val_accuracy"] == pytest.approx(best)
    assert sweep.read_spec()["state"] == "finished"
    print(f"real sweep: 4 trials, 2 in parallel, 2 epochs: {elapsed:.1f} s")


@pytest.mark.timeout(180)
@pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning")  # watchdog, on folders made fast
def test_ctrl_c_stops_every_trial_and_keeps_what_was_written(tmp_path):
    sweep = SweepDir(tmp_path / "s")
    process = subprocess.Popen(
        [*PANDA, "sweep", "--run-dir", str(tmp_path), "--name", "s", "--trials", "3", "--parallel", "2",
         "--epochs", "50", "--pace", "0.5", "--param", "lr=log:1e-3:1e-2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        def both_training():
            runs = [RunDir(sweep.path / n) for n in ("trial-0001", "trial-0002")]
            return all(r.metrics_path.exists() and r.read_metrics() for r in runs)

        wait_for(lambda: sweep.path.exists(), tmp_path, 60, "the sweep folder")
        wait_for(both_training, sweep.path, 90, "two trials to finish an epoch")
        pids = [t["pid"] for t in sweep.trials().values() if t.get("pid")]
        assert len(pids) == 2
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, output
    assert "sweep interrupted" in output
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    trials = sweep.trials()
    assert [t["state"] for t in trials.values()] == ["interrupted"] * 3
    assert trials["trial-0003"]["reason"] == "never started" and not (sweep.path / "trial-0003").exists()
    for name in ("trial-0001", "trial-0002"):
        run = RunDir(sweep.path / name)
        assert run.read_status()["state"] == "finished"  # stopped cleanly, resumable
        assert run.list_checkpoints() and run.read_metrics()
        assert trials[name]["epochs"] >= 1
    assert sweep.read_spec()["state"] == "interrupted"
