"""The one way a trainer process is started: its command line, its spawn and its stop.

The dashboard's "new run" and "resume" (:mod:`app.serving.launch`), a sweep's local trials and its Ray
tasks (:mod:`trainer.search.backends`) all start ``python -m trainer train ...`` through
:func:`spawn`: stdin closed, output appended to a log file, in a session of its own (Ctrl-C in
the terminal that started it reaches only that program, never the trainer). A ``tied`` trainer
also gets SIGTERM when its parent dies (Linux), so a killed sweep leaves no orphan behind; it
checkpoints and exits, and ``--resume`` continues it. The command lines come from
:func:`trainer.contract.config.trainer_argv` and :func:`trainer.contract.config.resume_argv`, re-exported here.
The dashboard's Streamlit server (:mod:`app.serving.server`) and ``panda demo``'s stop use its
:func:`parent_death_guard` and :func:`stop` too.
Pure Python, no TensorFlow.
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterable, Mapping

from trainer.contract.config import TRAINER_PROGRAM, resume_argv, trainer_argv

__all__ = ["STOP_GRACE", "TRAINER_PROGRAM", "child_env", "parent_death_guard", "resume_argv", "spawn", "stop",
           "trainer_argv"]

#: Seconds a trainer gets to checkpoint and exit after SIGTERM before it is killed.
STOP_GRACE = 20.0
#: Linux's prctl option: the signal a process gets when its parent dies.
_PR_SET_PDEATHSIG = 1


def _tie_to_parent(parent: int, prctl, signum: int) -> None:
    """In the child between fork and exec: get ``signum`` when the parent dies; a parent already
    gone before the call is caught by the ``getppid`` check (the child then never starts)."""
    prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def parent_death_guard(signum: int = signal.SIGTERM):
    """The ``preexec_fn`` that sends the child ``signum`` when this process dies, or ``None`` where
    the platform has no such thing (the child then outlives a parent killed with ``kill -9``)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: no dlopen between fork and exec
    except (OSError, AttributeError):
        return None
    return functools.partial(_tie_to_parent, os.getpid(), prctl, int(signum))


def child_env(extra: Mapping[str, str] | None = None, *, drop: Iterable[str] = (),
              base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The trainer's environment: ``base`` (this process's by default) less ``drop`` (secrets that
    stay with the parent), plus ``extra``, with unbuffered output so its log is current."""
    dropped = set(drop)
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in dropped}
    env.update(extra or {})
    env["PYTHONUNBUFFERED"] = "1"
    return env


def spawn(argv: list[str], log_path: Path | str, *, env: Mapping[str, str] | None = None, tied: bool = False,
          cwd: str | None = None) -> subprocess.Popen:
    """Start ``argv`` in its own session, stdin closed, stdout and stderr appended to ``log_path``.

    ``env``: the whole environment (:func:`child_env` by default). ``tied``: SIGTERM the trainer
    when this process dies (a sweep's trials); a dashboard's launches are not tied, so closing the
    app leaves them training.
    """
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:  # the child holds its own copy of the descriptor
        return subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env=dict(child_env() if env is None else env), cwd=cwd, close_fds=True,
                                start_new_session=True, preexec_fn=parent_death_guard() if tied else None)


def stop(process: subprocess.Popen, grace: float = STOP_GRACE) -> int:
    """SIGTERM the trainer (it checkpoints and exits), kill it if it has not within ``grace``
    seconds; its exit status."""
    if process.poll() is None:
        try:
            process.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            return process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()
