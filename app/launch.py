"""Start a trainer from the dashboard as its own background process.

The trainer runs as ``python -m trainer train ...`` in a new session (``start_new_session``), with
stdin closed and its output in ``<run dir>/.panda/logs/<name>.log``: closing the browser,
restarting or killing the app does not touch it. The app talks to it only through the run
directory, exactly as it does with a trainer started from a terminal.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from trainer.hparams import Hyperparameters

#: Where launched trainers' output goes, under the run directory (not a run: no config.json).
LOG_FOLDER = Path(".panda") / "logs"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")


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


def check_name(name: str) -> str:
    name = name.strip()
    if not NAME_PATTERN.match(name):
        raise LaunchError("a run name is letters, digits, '.', '_' or '-' (at most 80), starting with a letter or digit")
    return name


def train_argv(root: Path | str, name: str, hparams: Hyperparameters, *, epochs: int, seed: int = 0,
               pace: float = 0.0, dataset: str = "digits") -> list[str]:
    """The ``panda train`` arguments for a new run (checked: a bad value raises ``LaunchError``)."""
    try:
        hparams.validate()
    except ValueError as e:
        raise LaunchError(str(e)) from None
    if not isinstance(epochs, int) or epochs < 1:
        raise LaunchError(f"epochs must be at least 1, got {epochs}")
    if pace < 0:
        raise LaunchError(f"pace must be >= 0, got {pace}")
    argv = [
        "train", "--run-dir", str(root), "--name", check_name(name), "--dataset", dataset,
        "--epochs", str(epochs), "--optimizer", hparams.optimizer, "--lr", repr(hparams.lr),
        "--batch-size", str(hparams.batch_size), "--layers", str(hparams.layers), "--units", str(hparams.units),
        "--batch-norm" if hparams.batch_norm else "--no-batch-norm", "--seed", str(seed), "--pace", repr(float(pace)),
        "--quiet",
    ]
    if hparams.beta is not None and hparams.optimizer != "sgd":
        argv += ["--beta", repr(hparams.beta)]
    return argv


def _reap(process: subprocess.Popen) -> None:
    """Collect the exit status so a finished trainer does not linger as a zombie of the app."""
    threading.Thread(target=process.wait, name=f"reap-{process.pid}", daemon=True).start()


def spawn(root: Path | str, name: str, argv: list[str], *, python: str = sys.executable) -> Launch:
    """Run ``python -m trainer <argv>`` detached from this process, its output to a log file."""
    root = Path(root)
    if (root / name).exists():
        raise LaunchError(f"a run named {name!r} already exists in {root}")
    log_dir = root / LOG_FOLDER
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    command = [python, "-m", "trainer", *argv]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    project = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = project + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True, env=env,
        )
    _reap(process)
    return Launch(name=name, pid=process.pid, argv=command, log_path=log_path, process=process)


def start_run(root: Path | str, name: str, hparams: Hyperparameters, *, epochs: int, seed: int = 0,
              pace: float = 0.0, dataset: str = "digits") -> Launch:
    """Start a new training run in the background."""
    name = check_name(name)
    argv = train_argv(root, name, hparams, epochs=epochs, seed=seed, pace=pace, dataset=dataset)
    return spawn(root, name, argv)


def resume_run(run_path: Path | str) -> Launch:
    """Continue a stopped or killed run from its last checkpoint (``panda train --resume``)."""
    run_path = Path(run_path)
    log_dir = run_path.parent / LOG_FOLDER
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{run_path.name}.log"
    command = [sys.executable, "-m", "trainer", "train", "--resume", str(run_path), "--quiet"]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, close_fds=True)
    _reap(process)
    return Launch(name=run_path.name, pid=process.pid, argv=command, log_path=log_path, process=process)
