"""One writer per run: ``RUN/.lock`` refuses a second trainer whatever the heartbeat says."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys

import pytest

from conftest import answer, wait_for
from trainer.contract.rundir import RunDir, RunDirError
from trainer.contract.runlock import LOCK, RunLock

PANDA = [sys.executable, "-m", "trainer"]
REFUSED = "is being trained by another process"


def panda(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*PANDA, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def start(*args) -> subprocess.Popen:
    return subprocess.Popen([*PANDA, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def written(run: RunDir) -> tuple:
    """What a second writer must leave alone."""
    return (run.events_path.read_bytes(), run.metrics_path.read_bytes(), run.batches_path.read_bytes(),
            [c["name"] for c in run.list_checkpoints()])


def started_events(run: RunDir) -> list[dict]:
    return [e for e in run.read_events() if e.get("event") == "started"]


# --------------------------------------------------------------------------- RunLock in one process


def test_a_second_lock_of_the_same_run_is_refused_and_names_the_holder(tmp_path):
    first = RunLock(tmp_path).acquire()
    assert first.held and json.loads((tmp_path / LOCK).read_text())["pid"] == os.getpid()
    with pytest.raises(RunDirError, match=f"{REFUSED} \\(pid {os.getpid()}\\)"):
        RunLock(tmp_path).acquire()  # another open file description: flock refuses it, even in-process
    assert json.loads((tmp_path / LOCK).read_text())["pid"] == os.getpid(), "the refused one wrote nothing"
    assert first.acquire() is first, "taking a lock one holds is fine"
    first.release()
    first.release()  # twice is fine
    with RunLock(tmp_path) as second:
        assert second.held
        with pytest.raises(RunDirError, match=REFUSED):
            first.acquire()
    assert not second.held
    assert first.acquire().held, "a released RunLock can be taken again"
    first.release()


def test_a_lock_nobody_references_is_released(tmp_path):
    lock = RunLock(tmp_path).acquire()
    del lock
    gc.collect()
    RunLock(tmp_path).acquire().release()


def test_child_processes_do_not_inherit_the_lock(tmp_path):
    lock = RunLock(tmp_path).acquire()
    assert not os.get_inheritable(lock.fd)
    # A program started while the lock is held, and still running after it is released, must not
    # keep the run locked (close_fds=False: the descriptor would be passed on were it inheritable).
    child = subprocess.Popen([sys.executable, "-c", "import sys; print('ready', flush=True); sys.stdin.read()"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, close_fds=False)
    try:
        # Close-on-exec closes the child's copy during exec, a moment after Popen returns: wait for it.
        assert child.stdout.readline() == "ready\n"
        lock.release()
        RunLock(tmp_path).acquire().release()
    finally:
        child.communicate(timeout=60)


def test_a_forked_child_lets_go_of_its_copy(tmp_path):
    lock = RunLock(tmp_path).acquire()
    to_child, from_parent = os.pipe()
    to_parent, from_child = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child (fork hooks have run): says whether it kept a lock, then outlives the release
        code = 1
        try:
            os.write(from_child, b"n" if lock.fd is None else b"y")
            code = 0 if os.read(to_child, 1) == b"x" else 2
        finally:
            os._exit(code)
    try:
        assert os.read(to_parent, 1) == b"n", "the child's copy is closed"
        lock.release()
        RunLock(tmp_path).acquire().release()
    finally:
        os.write(from_parent, b"x")
        assert os.waitpid(pid, 0)[1] == 0
        for fd in (to_child, from_parent, to_parent, from_child):
            os.close(fd)


def test_a_trainer_that_is_never_run_gives_the_run_up(tmp_path):
    from trainer.training.loop import TrainConfig, Trainer

    closed = Trainer.create(tmp_path / "closed", TrainConfig(epochs=1), verbose=False)
    with pytest.raises(RunDirError, match=REFUSED):
        RunLock(tmp_path / "closed").acquire()
    closed.close()
    RunLock(tmp_path / "closed").acquire().release()

    dropped = Trainer.create(tmp_path / "dropped", TrainConfig(epochs=1), verbose=False)
    del dropped
    gc.collect()  # a trainer and its Steering refer to each other: only the cycle collector frees them
    RunLock(tmp_path / "dropped").acquire().release()


# --------------------------------------------------------------------------- real trainer processes


def test_a_stopped_trainer_with_a_stale_heartbeat_still_owns_its_run(tmp_path):
    run = RunDir(tmp_path / "s")
    proc = start("train", "--run-dir", tmp_path, "--name", "s", "--epochs", 200, "--pace", 0.3, "--quiet")
    try:
        wait_for(run.metrics_path.exists, tmp_path, what="the run directory")
        wait_for(lambda: len(run.read_metrics()) >= 2, run.path, what="two epochs")
        os.kill(proc.pid, signal.SIGSTOP)
        # Whatever it was doing, it does nothing more now; make its heartbeat look long dead.
        status = run.read_status()
        run.write_status({**status, "heartbeat": status["heartbeat"] - 3600})
        assert panda("status", run.path).stdout.startswith("s: not answering")
        before = written(run)

        second = panda("train", "--resume", run.path, "--quiet")
        assert second.returncode == 1, second.stderr
        assert f"{REFUSED} (pid {proc.pid})" in second.stderr
        assert written(run) == before, "the refused trainer wrote nothing"
        assert json.loads((run.path / LOCK).read_text())["pid"] == proc.pid

        os.kill(proc.pid, signal.SIGCONT)
        assert panda("ctl", run.path, "stop", "--wait", 60).returncode == 0
        assert proc.wait(120) == 0
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
        proc.wait(60)
    assert run.read_status()["state"] == "finished"
    epochs = [r["epoch"] for r in run.read_metrics()]
    assert epochs == list(range(1, len(epochs) + 1)), "one history, every epoch once"
    assert len(started_events(run)) == 1


def test_three_resumes_at_once_start_exactly_one_trainer(tmp_path):
    run = RunDir(tmp_path / "t")
    made = panda("train", "--run-dir", tmp_path, "--name", "t", "--epochs", 3, "--pace", 0.1, "--quiet")
    assert made.returncode == 0, made.stderr
    # Queued before the resumes start: the winner pauses as soon as it runs, so it holds the run
    # for as long as the losers could possibly take to try.
    pause = run.send_command("pause", source="test")
    procs = [start("train", "--resume", run.path, "--epochs", 6, "--quiet") for _ in range(3)]
    try:
        assert answer(run, pause, timeout=180)["event"] == "applied"
        winner_pid = started_events(run)[-1]["pid"]  # journaled before the winner reads commands
        losers = [p for p in procs if p.pid != winner_pid]
        assert len(losers) == 2, "the trainer is one of the three"
        for p in losers:
            _, stderr = p.communicate(timeout=180)
            assert p.returncode == 1 and f"{REFUSED} (pid {winner_pid})" in stderr, stderr
        winner = next(p for p in procs if p.pid == winner_pid)
        assert winner.poll() is None, "still paused, holding the run"
        assert answer(run, run.send_command("resume", source="test"))["event"] == "applied"
        assert winner.wait(180) == 0, winner.communicate(timeout=60)[1]
    finally:
        for p in procs:
            p.kill()
            p.wait(60)
    started = started_events(run)
    assert len(started) == 2 and started[1]["pid"] == winner_pid, "the first run and exactly one resume"
    assert [r["epoch"] for r in run.read_metrics()] == [1, 2, 3, 4, 5, 6], "every epoch once"
    assert run.read_status()["state"] == "finished"


def test_kill_9_releases_the_run(tmp_path):
    run = RunDir(tmp_path / "k")
    proc = start("train", "--run-dir", tmp_path, "--name", "k", "--epochs", 200, "--pace", 0.3, "--quiet")
    try:
        wait_for(run.metrics_path.exists, tmp_path, what="the run directory")
        wait_for(lambda: len(run.read_metrics()) >= 1, run.path, what="an epoch")
        with pytest.raises(RunDirError, match=f"{REFUSED} \\(pid {proc.pid}\\)"):
            RunLock(run.path).acquire()
    finally:
        proc.kill()
        proc.wait(60)
    done = run.read_status()["epoch"]
    resumed = panda("train", "--resume", run.path, "--epochs", done + 1, "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert run.read_status()["state"] == "finished"
    assert started_events(run)[-1]["resumed_from"] is not None
