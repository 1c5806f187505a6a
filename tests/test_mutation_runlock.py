"""The run lock's every right and refusal, in one process (trainer/contract/runlock.py).

The mutation-testing selection for trainer/contract/runlock.py (pyproject.toml [tool.panda.mutation]);
tests/test_run_lock.py has the real second trainer.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import stat
import time

import pytest

from trainer.contract import runlock
from trainer.contract.rundir import RunDirError
from trainer.contract.runlock import LOCK, RunLock


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_the_holder_is_named_in_the_file_while_held_and_nobody_after(tmp_path):
    before = time.time()
    lock = RunLock(tmp_path).acquire()
    text = (tmp_path / LOCK).read_text(encoding="utf-8")
    assert text.endswith("\n") and text.count("\n") == 1
    holder = json.loads(text)
    assert set(holder) == {"pid", "host", "time"}
    assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
    assert before <= holder["time"] <= time.time()
    lock.release()
    assert (tmp_path / LOCK).read_bytes() == b""


def test_a_second_holder_overwrites_a_longer_record(tmp_path):
    (tmp_path / LOCK).write_text(json.dumps({"pid": 1, "host": "h" * 500, "time": 0}) + "\n")
    with RunLock(tmp_path):
        assert json.loads((tmp_path / LOCK).read_text())["pid"] == os.getpid()


def test_held_and_repr(tmp_path):
    lock = RunLock(tmp_path)
    assert lock.run_path == tmp_path and lock.path == tmp_path / LOCK
    assert lock.held is False and lock.fd is None
    assert repr(lock) == f"RunLock({str(tmp_path)!r}, held=False)"
    assert lock.acquire() is lock
    assert lock.held is True and isinstance(lock.fd, int)
    assert repr(lock) == f"RunLock({str(tmp_path)!r}, held=True)"
    assert RunLock(str(tmp_path)).path == tmp_path / LOCK
    lock.release()
    assert lock.held is False and lock.fd is None


def test_the_lock_file_is_private_to_exec_and_not_executable(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    with RunLock(tmp_path) as lock:
        assert os.get_inheritable(lock.fd) is False
        assert stat.S_IMODE(os.stat(tmp_path / LOCK).st_mode) == 0o644 & ~umask


def test_holding_it_again_keeps_the_same_descriptor(tmp_path):
    lock = RunLock(tmp_path).acquire()
    fd = lock.fd
    fds = open_fds()
    assert lock.acquire() is lock and lock.fd == fd and open_fds() == fds
    lock.release()


def test_the_refusal_names_the_run_the_holder_and_the_way_out(tmp_path):
    with RunLock(tmp_path):
        fds = open_fds()
        with pytest.raises(RunDirError) as e:
            RunLock(tmp_path).acquire()
        assert open_fds() == fds, "a refused attempt leaves no descriptor open"
    message = str(e.value)
    assert message.startswith(f"{tmp_path} is being trained by another process (pid {os.getpid()}); ")
    assert f"(`panda ctl {tmp_path} stop`)" in message and "exit, which releases the run" in message
    assert e.value.__cause__ is None and e.value.__suppress_context__


def test_release_unlocks_for_another_open_file_description(tmp_path):
    lock = RunLock(tmp_path).acquire()
    fd = lock.fd
    lock.release()
    with pytest.raises(OSError):
        os.fstat(fd)  # closed
    other = os.open(tmp_path / LOCK, os.O_RDWR)
    try:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # would raise BlockingIOError were it still locked
    finally:
        os.close(other)
    lock.release()  # twice is fine
    assert lock.fd is None


def test_context_manager_close_and_garbage_collection_release(tmp_path):
    with RunLock(tmp_path) as lock:
        assert lock.held
    assert not lock.held
    lock = RunLock(tmp_path).acquire()
    lock.close()
    assert not lock.held
    RunLock(tmp_path).acquire().__del__()
    RunLock(tmp_path).acquire().release()


def test_a_failing_lock_call_closes_its_descriptor(tmp_path, monkeypatch):
    """Not BlockingIOError (a file system without locks, an interrupt): the error passes, no fd leaks."""
    def broken(fd, op):
        raise OSError(37, "No locks available")

    monkeypatch.setattr(runlock.fcntl, "flock", broken)
    fds = open_fds()
    lock = RunLock(tmp_path)
    with pytest.raises(OSError, match="No locks available"):
        lock.acquire()
    assert open_fds() == fds and not lock.held


def test_a_holder_that_cannot_write_its_name_still_holds_the_lock(tmp_path, monkeypatch):
    def full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runlock.os, "pwrite", full)
    lock = RunLock(tmp_path).acquire()
    assert lock.held
    monkeypatch.undo()
    with pytest.raises(RunDirError, match=r"\(pid unknown\)"):
        RunLock(tmp_path).acquire()
    lock.release()


@pytest.mark.parametrize("content, holder", [
    (b"", {}), (b"{", {}), (b"[1, 2]", {}), (b"\xff\xfe", {}), (b"7", {}),
    (b'{"pid": 12, "host": "h"}\n', {"pid": 12, "host": "h"}),
])
def test_read_holder(tmp_path, content, holder):
    path = tmp_path / "f"
    path.write_bytes(content)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert runlock._read_holder(fd) == holder
    finally:
        os.close(fd)


def test_read_holder_of_a_closed_descriptor_is_nobody(tmp_path):
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    os.close(fd)
    assert runlock._read_holder(fd) == {}


@pytest.mark.parametrize("holder, text", [
    ({}, "pid unknown"), ({"host": "elsewhere"}, "pid unknown"), ({"pid": 0}, "pid 0"),
    ({"pid": 42}, "pid 42"), ({"pid": 42, "host": ""}, "pid 42"), ({"pid": 42, "host": None}, "pid 42"),
    ({"pid": 42, "host": socket.gethostname()}, "pid 42"), ({"pid": 42, "host": "elsewhere"}, "pid 42 on elsewhere"),
])
def test_describe_the_holder(holder, text):
    assert runlock._describe(holder) == text


def test_a_forked_child_lets_go_of_its_copies_only(tmp_path):
    lock = RunLock(tmp_path).acquire()
    (tmp_path / "other").mkdir()
    other = RunLock(tmp_path / "other").acquire()
    read, write = os.pipe()
    copies = [lock.fd, other.fd]
    pid = os.fork()
    if pid == 0:  # the child: its copies are closed and forgotten, without unlocking the parent's
        try:
            report = {"fds": [lock.fd, other.fd], "held": [lock.held, other.held], "known": len(runlock._held),
                      "open": [os.path.exists(f"/proc/self/fd/{fd}") for fd in copies]}
            os.write(write, json.dumps(report).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        report = json.loads(pipe.read())
    os.waitpid(pid, 0)
    assert report == {"fds": [None, None], "held": [False, False], "known": 0, "open": [False, False]}
    assert lock.held and other.held
    with pytest.raises(RunDirError):
        RunLock(tmp_path).acquire()  # the parent still holds it
    assert json.loads((tmp_path / LOCK).read_text())["pid"] == os.getpid(), "the child truncated nothing"
    lock.release()
    other.release()


def test_forget_in_child_survives_an_already_closed_descriptor(tmp_path):
    lock = RunLock(tmp_path).acquire()
    os.close(lock.fd)
    saved = set(runlock._held)
    try:
        runlock._forget_in_child()
        assert lock.fd is None and len(runlock._held) == 0
    finally:
        for held in saved:
            runlock._held.add(held)


def test_forget_in_child_closes_each_copy(tmp_path):
    """Called here directly (a forked child's calls are not seen by the mutation tool's bookkeeping)."""
    lock = RunLock(tmp_path).acquire()
    fd = lock.fd
    saved = set(runlock._held) - {lock}
    try:
        runlock._forget_in_child()
        assert lock.fd is None and not lock.held
        with pytest.raises(OSError):
            os.fstat(fd)
        assert (tmp_path / LOCK).read_text() != "", "no truncating: the parent's holder record stays"
    finally:
        for held in saved:
            runlock._held.add(held)
