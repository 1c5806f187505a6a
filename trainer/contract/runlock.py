"""One writer per run: an exclusive OS file lock on ``RUN/.lock``, held for the trainer's life.

A trainer (``panda train``, ``--resume``, :class:`~trainer.keras_callback.callback.PandaCallback`) takes the lock
before it writes anything in the run directory and keeps it until the run ends. A second trainer
of the same run is refused with :class:`~trainer.contract.rundir.RunDirError`, whatever ``status.json``'s
heartbeat says: a stopped (``SIGSTOP``) trainer has a stale heartbeat but is still a writer.

The lock is ``fcntl.flock(LOCK_EX | LOCK_NB)`` on an open file description, so:

* the OS releases it when the process dies, however it dies (``kill -9`` included): no stale
  lock is ever left behind and the file itself needs no cleaning up;
* it belongs to the file descriptor, not the process: two :class:`RunLock` objects of one path in
  one process exclude each other too;
* the descriptor is close-on-exec, so a program the trainer starts does not inherit it (and
  cannot keep the run locked after the trainer exits); a child forked without ``exec``
  (``multiprocessing``'s ``fork``) closes its copy right after the fork.

The file holds the holder's ``{"pid", "host", "time"}`` as JSON, only to name it in the error
message; it is never deleted (deleting a lock file while another process waits on it breaks the
lock), and what it says matters only while it is locked. Clients (``panda status``, the
dashboard, ``panda ctl``) never touch it: they read, and append commands, without a lock.

Locks on network file systems are only as good as the file system's ``flock``; the trainer's
"still training" heartbeat check stays as a second line of defence there.

>>> import tempfile
>>> folder = tempfile.mkdtemp()
>>> with RunLock(folder):
...     try:
...         RunLock(folder).acquire()
...     except RunDirError as e:
...         print("refused:", "being trained by another process" in str(e))
refused: True
>>> RunLock(folder).acquire().release()
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
import weakref
from pathlib import Path

from trainer.contract.rundir import RunDirError

#: The lock file's name inside a run directory.
LOCK = ".lock"

#: Locks this process holds, so that a forked child can let go of its copies.
_held: "weakref.WeakSet[RunLock]" = weakref.WeakSet()


def _forget_in_child() -> None:
    """After ``fork``: close the child's copies only (no unlock, no truncate: the parent still holds them)."""
    for lock in list(_held):
        fd, lock.fd = lock.fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass
    _held.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


class RunLock:
    """The exclusive lock on one run directory (``RUN/.lock``); see the module's documentation."""

    def __init__(self, run_path: Path | str):
        self.run_path = Path(run_path)
        self.path = self.run_path / LOCK
        self.fd: int | None = None

    def __repr__(self) -> str:
        return f"RunLock({str(self.run_path)!r}, held={self.held})"

    @property
    def held(self) -> bool:
        return self.fd is not None

    def acquire(self) -> "RunLock":
        """Take the lock now or raise :class:`RunDirError` naming its holder. Holding it already is fine."""
        if self.fd is not None:
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunDirError(
                f"{self.run_path} is being trained by another process ({_describe(holder)}); only one trainer "
                f"may write a run: stop that one first (`panda ctl {self.run_path} stop`), or wait for it to "
                f"exit, which releases the run") from None
        except BaseException:
            os.close(fd)
            raise
        os.set_inheritable(fd, False)  # os.open does this already (PEP 446); said here because it matters
        self.fd = fd
        _held.add(self)
        try:
            record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "time": time.time()})
            os.ftruncate(fd, 0)
            os.pwrite(fd, (record + "\n").encode("utf-8"), 0)
        except OSError:
            pass  # the holder's name is only for the message; the lock itself is held
        return self

    def release(self) -> None:
        """Give the run up (also done by the OS when the process ends). Releasing twice is fine."""
        fd, self.fd = self.fd, None
        if fd is None:
            return
        _held.discard(self)
        try:
            os.ftruncate(fd, 0)  # a holder that left names nobody
        except OSError:
            pass
        finally:
            os.close(fd)  # closing the last descriptor of the open file description unlocks it

    close = release

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self) -> None:
        try:
            self.release()
        except Exception:
            pass


def _read_holder(fd: int) -> dict:
    try:
        data = os.pread(fd, 4096, 0)
        holder = json.loads(data.decode("utf-8"))
        return holder if isinstance(holder, dict) else {}
    except (OSError, ValueError):
        return {}  # the holder is between taking the lock and writing its name


def _describe(holder: dict) -> str:
    pid = holder.get("pid")
    if pid is None:
        return "pid unknown"
    host = holder.get("host")
    if host and host != socket.gethostname():
        return f"pid {pid} on {host}"
    return f"pid {pid}"
