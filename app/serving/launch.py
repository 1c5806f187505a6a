"""Start a trainer from the dashboard as its own background process.

The trainer is started by :func:`trainer.contract.launching.spawn`, not tied to the app, its output in
``<run dir>/.panda/logs/<name>.log``: closing the browser, restarting or killing the app does not
touch it. The app talks to it only through the run
directory, exactly as it does with a trainer started from a terminal.
"""

from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from app.serving.auth import SECRET_ENV
from trainer.contract.config import TrainConfig
from trainer.contract.launching import child_env, resume_argv, spawn, trainer_argv

#: Where launched trainers' output goes, under the run directory (not a run: no config.json).
LOG_FOLDER = Path(".panda") / "logs"


class LaunchError(ValueError):
    """A new run cannot be started, with the reason a user should read."""


@dataclass
class Launch:
    """A trainer this app started."""

    name: str
    pid: int
    argv: list[str]
    log_path: Path
    started: float = field(default_factory=time.time)
    process: subprocess.Popen | None = field(default=None, repr=False, compare=False)

    def exit_code(self) -> int | None:
        """The trainer's exit status, or ``None`` while it runs (or when another app started it)."""
        return None if self.process is None else self.process.poll()

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _reap(process: subprocess.Popen) -> None:
    """Collect the exit status so a finished trainer does not linger as a zombie of the app."""
    threading.Thread(target=process.wait, name=f"reap-{process.pid}", daemon=True).start()


def _spawn(command: list[str], log_path: Path) -> subprocess.Popen:
    """Run ``command`` detached from this app, its output to ``log_path``; the presenter's
    secrets stay with the app."""
    process = spawn(command, log_path, env=child_env(drop=SECRET_ENV))
    _reap(process)
    return process


def start_run(root: Path | str, name: str, config: TrainConfig) -> Launch:
    """Start a new training run in the background (checked first: a bad value raises ``LaunchError``)."""
    root = Path(root)
    try:
        command = trainer_argv(root, name, config)
    except ValueError as e:
        raise LaunchError(str(e)) from None
    if (root / name).exists():
        raise LaunchError(f"a run named {name!r} already exists in {root}")
    log_path = root / LOG_FOLDER / f"{name}.log"
    process = _spawn(command, log_path)
    return Launch(name=name, pid=process.pid, argv=command, log_path=log_path, process=process)


def resume_run(run_path: Path | str, epochs: int | None = None) -> Launch:
    """Continue a stopped or killed run from its last checkpoint (``panda train --resume``), to
    ``epochs`` epochs in all when given."""
    run_path = Path(run_path)
    command = resume_argv(run_path, epochs=epochs)
    log_path = run_path.parent / LOG_FOLDER / f"{run_path.name}.log"
    process = _spawn(command, log_path)
    return Launch(name=run_path.name, pid=process.pid, argv=command, log_path=log_path, process=process)
