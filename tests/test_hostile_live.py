"""Hostile input against live trainers: nothing a client writes, or a signal, or a vanished folder ends a run badly."""

from __future__ import annotations

import errno
import itertools
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter

from hypothesis import HealthCheck, given, settings

from conftest import answer, wait_for
from hostile import HOSTILE_LINES, lines
from trainer.contract.rundir import RunDir

PANDA = [sys.executable, "-m", "trainer"]


def answers(run: RunDir) -> list[dict]:
    return [e for e in run.read_events() if e.get("event") in ("applied", "rejected")]


def assert_answered_once(run: RunDir) -> None:
    given_answers = answers(run)
    ids = Counter(e["command_id"] for e in given_answers if e["command_id"] is not None)
    assert all(n == 1 for n in ids.values()), [i for i, n in ids.items() if n > 1]
    keys = Counter((e["line"], e["command_id"] or e.get("duplicate_id")) for e in given_answers)
    assert all(n == 1 for n in keys.values()), [k for k, n in keys.items() if n > 1]


def test_arbitrary_lines_never_end_a_live_run(start_trainer):
    t = start_trainer(epochs=100000, pace=0.05)
    run = t.run
    wait_for(lambda: run.read_metrics(), run.path, what="a first epoch")
    counter = itertools.count()

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(lines)
    def one(garbage):
        with open(run.commands_path, "ab") as f:
            f.write(garbage)
        probe = run.send_command("set_lr", 0.001 + next(counter) * 1e-6, command_id=f"probe-{next(counter)}")
        got = answer(run, probe, timeout=30)
        assert got["event"] == "applied", got
        assert t.thread.is_alive()

    one()
    assert_answered_once(run)
    assert t.send("stop")["event"] == "applied"
    assert t.join() == "finished"


def start(*args) -> subprocess.Popen:
    return subprocess.Popen([*PANDA, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def panda(*args) -> subprocess.CompletedProcess:
    return subprocess.run([*PANDA, *map(str, args)], capture_output=True, text=True, timeout=300)


def running(run: RunDir, proc: subprocess.Popen):
    return wait_for(lambda: (run.read_status() or {}).get("state") == "running" or proc.poll() is not None,
                    run.path.parent, what="running")


def test_every_hostile_line_then_kill_9_then_resume_answers_nothing_twice(tmp_path):
    run = RunDir(tmp_path / "h")
    proc = start("train", "--run-dir", tmp_path, "--name", "h", "--epochs", 1000, "--pace", 0.05, "--quiet")
    try:
        wait_for(run.metrics_path.exists, tmp_path, what="the run directory")
        running(run, proc)
        with open(run.commands_path, "ab") as f:
            f.write(b"".join(HOSTILE_LINES))
        good = run.send_command("set_lr", 0.002, command_id="good")
        assert answer(run, good)["event"] == "applied", "the valid command after a torn line is applied"
        assert answer(run, run.send_command("pause", command_id="pause-1"))["event"] == "applied"
        assert proc.poll() is None, proc.stderr.read() if proc.poll() is not None else ""
        before = answers(run)
        assert all(e["event"] == "rejected" for e in before if e["command_id"] not in ("good", "pause-1"))
        assert max(len(str(e.get("value"))) for e in before) < 1000, "echoes are bounded"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    run.send_command("set_lr", 0.003, command_id="good")  # a duplicate id after the restart
    (run.checkpoints_path / ".del-ckpt-00042").mkdir()
    (run.checkpoints_path / ".tmp-ckpt-00043").mkdir()
    epoch = run.read_status()["epoch"]
    resumed = start("train", "--resume", run.path, "--epochs", epoch + 2, "--quiet")
    try:
        wait_for(lambda: resumed.poll() is not None or ((run.read_status() or {}).get("pid") == resumed.pid
                 and run.read_status()["state"] == "paused"), run.path, what="paused again after --resume")
        assert resumed.poll() is None, [(e["event"], e.get("reason"), e.get("resumed_paused")) for e in run.read_events() if e["event"] not in ("applied", "rejected", "checkpoint_saved")]
        started = [e for e in run.read_events() if e["event"] == "started"]
        assert started[-1]["resumed_paused"] is True
        assert not [p for p in run.checkpoints_path.iterdir() if p.name.startswith((".del-", ".tmp-"))]
        assert panda("ctl", run.path, "resume", "--wait", 60).returncode == 0
        assert resumed.wait(120) == 0, resumed.stderr.read()
    finally:
        resumed.kill()
    assert_answered_once(run)
    late = [e for e in answers(run) if e.get("duplicate_id") == "good"]
    assert len(late) == 1 and late[0]["event"] == "rejected"
    assert run.read_status()["state"] == "finished" and run.read_status()["epoch"] == epoch + 2


def test_sighup_stops_like_sigterm_with_a_checkpoint(tmp_path):
    run = RunDir(tmp_path / "s")
    proc = start("train", "--run-dir", tmp_path, "--name", "s", "--epochs", 1000, "--pace", 0.05, "--quiet")
    wait_for(run.metrics_path.exists, tmp_path, what="the run directory")
    running(run, proc)
    proc.send_signal(signal.SIGHUP)
    assert proc.wait(60) == 0, proc.stderr.read()
    events = run.read_events()
    assert events[-1]["event"] == "finished" and events[-1]["reason"] == "interrupted"
    assert any(e["event"] == "checkpoint_saved" and e["reason"] == "stop" for e in events)


def test_two_quick_ctrl_c_exit_cleanly(tmp_path):
    run = RunDir(tmp_path / "i")
    proc = start("train", "--run-dir", tmp_path, "--name", "i", "--epochs", 1000, "--pace", 0.05, "--quiet")
    wait_for(run.metrics_path.exists, tmp_path, what="the run directory")
    running(run, proc)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    code = proc.wait(60)
    stderr = proc.stderr.read()
    assert code in (0, 130), (code, stderr)
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr


def test_a_vanished_run_folder_fails_with_one_line(start_trainer, capsys, tmp_path):
    t = start_trainer(epochs=100000, pace=0.05)
    wait_for(lambda: t.run.read_metrics(), t.run.path, what="a first epoch")
    os.rename(t.run.path, tmp_path / "gone")  # vanishes at once, whatever the trainer writes meanwhile
    shutil.rmtree(tmp_path / "gone", ignore_errors=True)
    assert t.join() == "failed"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("panda: training failed:"), err
    assert panda("status", t.run.path).returncode == 1
    assert panda("ctl", t.run.path, "pause").returncode == 1
    resumed = panda("train", "--resume", t.run.path)
    assert resumed.returncode == 1 and "Traceback" not in resumed.stderr, resumed.stderr
    assert resumed.stderr.strip().splitlines()[-1].startswith("panda: error: no run directory")


def test_a_full_disk_fails_the_run_with_one_line(start_trainer, capsys, monkeypatch):
    t = start_trainer(epochs=100000, pace=0.05)
    wait_for(lambda: t.run.read_metrics(), t.run.path, what="a first epoch")

    real_write, folder = os.write, str(t.run.path)

    def full(fd, data):  # only the run's files are on the full disk
        if os.readlink(f"/proc/self/fd/{fd}").startswith(folder):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full)
    assert t.join() == "failed"
    monkeypatch.undo()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0], err
