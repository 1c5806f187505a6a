"""The trainer as users run it: ``panda train`` / ``ctl`` / ``status`` processes, and kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from conftest import wait_for
from trainer.contract.rundir import RunDir, current_line

PANDA = [sys.executable, "-m", "trainer"]


def panda(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*PANDA, *map(str, args)], capture_output=True, text=True, timeout=300, **kwargs)


def start(*args) -> subprocess.Popen:
    return subprocess.Popen([*PANDA, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_kill_9_then_resume_keeps_every_epoch_exactly_once(tmp_path):
    run = RunDir(tmp_path / "k")
    proc = start("train", "--run-dir", tmp_path, "--name", "k", "--epochs", 12, "--pace", 0.25, "--checkpoint-every", 4, "--quiet")
    wait_for(run.metrics_path.exists, tmp_path, what="the run directory")
    wait_for(lambda: len(run.read_metrics()) >= 3, run.path, what="three epochs")
    lr = panda("ctl", run.path, "set-lr", "0.0015", "--wait", 30)
    assert lr.returncode == 0, lr.stderr
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    before = run.read_metrics()
    assert panda("status", run.path).stdout.startswith("k: killed")  # its process is gone (not merely silent)

    # The worst moment: the checkpoint of the last epoch landed, its record did not, and a torn
    # half line was left behind.
    last = before[-1]
    lines = run.metrics_path.read_bytes().splitlines(keepends=True)
    run.metrics_path.write_bytes(b"".join(lines[:-1]) + lines[-1][:17])

    resumed = panda("train", "--resume", run.path, "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    records = run.read_metrics()
    assert [r["epoch"] for r in records] == list(range(1, 13)), "every epoch exactly once, in order"
    assert records[len(before) - 1] == last, "the lost record came back from its checkpoint"
    assert records[-1]["lr"] == pytest.approx(0.0015), "the learning rate set before the kill survives"
    started = [e for e in run.read_events() if e["event"] == "started"]
    assert started[1]["resumed_from"] is not None
    assert run.read_status()["state"] == "finished"


def test_ctl_wait_reports_applied_and_rejected_and_status_reads_it(tmp_path):
    run = RunDir(tmp_path / "c")
    proc = start("train", "--run-dir", tmp_path, "--name", "c", "--epochs", 100, "--pace", 0.2, "--quiet")
    try:
        wait_for(lambda: (run.read_status() or {}).get("state") == "running", tmp_path, what="running")
        ok = panda("ctl", run.path, "pause", "--wait", 30)
        assert ok.returncode == 0 and "applied pause" in ok.stdout
        bad = panda("ctl", run.path, "set-beta", "1.5", "--wait", 30)
        assert bad.returncode == 1 and "beta must be in [0, 1)" in bad.stderr
        status = json.loads(panda("status", run.path, "--json").stdout)
        assert status["state"] == "paused" and status["liveness"] == "paused"
        assert "paused" in panda("status", run.path).stdout
        assert panda("ctl", run.path, "stop", "--wait", 30).returncode == 0
        assert proc.wait(60) == 0
    finally:
        proc.kill()
    late = panda("ctl", run.path, "resume", "--wait", 1)
    assert late.returncode == 1 and "finished" in late.stderr
    resumed = panda("train", "--resume", run.path, "--epochs", run.read_status()["epoch"] + 1, "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert [r["epoch"] for r in current_line(run.read_metrics())][-1] == run.read_status()["epoch"]


@pytest.mark.parametrize("args, message", [
    (["--lr", "-1"], "learning rate must be > 0"),
    (["--lr", "nan"], "finite"),
    (["--beta", "1"], "beta must be in [0, 1)"),
    (["--batch-size", "0"], "at least 1"),
    (["--epochs", "0"], "at least 1"),
    (["--optimizer", "adagrad"], "invalid choice"),
    (["--dataset", "nope.npz"], "does not exist"),
    (["--dataset", "cifar"], "unknown data set"),
])
def test_bad_train_arguments_exit_2_before_anything_is_written(tmp_path, args, message):
    result = panda("train", "--run-dir", tmp_path, "--name", "x", *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "usage" in result.stderr.lower() or "error" in result.stderr
    assert not (tmp_path / "x").exists()


def test_ctl_usage_errors(tmp_path):
    assert panda("ctl", tmp_path / "missing", "pause").returncode == 1
    assert panda("ctl", tmp_path, "fly").returncode == 2


def test_a_name_that_exists_is_never_overwritten(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "precious.txt").write_text("keep me")
    result = panda("train", "--run-dir", tmp_path, "--name", "taken", "--epochs", 1)
    assert result.returncode == 1 and "already exists" in result.stderr
    assert (tmp_path / "taken" / "precious.txt").read_text() == "keep me"


def test_trains_on_an_npz_file_with_its_own_validation_set(tmp_path):
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 5)) * 4
    y = rng.integers(0, 3, 300)
    x = (centers[y] + rng.normal(size=(300, 5))).astype(np.float32)
    np.savez(tmp_path / "blobs.npz", x_train=x[:240], y_train=y[:240], x_val=x[240:], y_val=y[240:])
    result = panda("train", "--run-dir", tmp_path, "--name", "b", "--dataset", tmp_path / "blobs.npz", "--epochs", 12, "--quiet")
    assert result.returncode == 0, result.stderr
    run = RunDir(tmp_path / "b")
    assert run.read_config()["dataset"]["n_val"] == 60
    assert run.read_metrics()[-1]["val_accuracy"] > 0.9
