"""Shared fixtures: real trainers on digits, and waiting for files to change (never sleeping)."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from trainer.contract.rundir import RunDir  # noqa: E402
from trainer.contract.watch import FileWatcher  # noqa: E402


@pytest.fixture(autouse=True)
def _a_new_server_per_test():
    """Each test's dashboard is a new server: the state one server process shares (app.serving.shared) goes."""
    yield
    shared = sys.modules.get("app.serving.shared")
    if shared is not None:
        shared.release_all()


def wait_for(predicate: Callable[[], Any], folder: Path | str, timeout: float = 60.0, what: str = "condition",
             recursive: bool = False) -> Any:
    """Return ``predicate()``'s first truthy value, re-checking whenever a file in ``folder`` changes.

    The 0.5 s re-check is only a backstop for a missed notification, never the way to wait.
    """
    deadline = time.monotonic() + timeout
    with FileWatcher(folder, None, recursive=recursive) as watcher:
        while True:
            value = predicate()
            if value:
                return value
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
            watcher.wait(timeout=min(left, 0.5))


def answer(run: RunDir, command_id: str, timeout: float = 60.0) -> dict:
    """Wait for the trainer's applied/rejected event for ``command_id``."""
    return wait_for(lambda: run.answer_to(command_id), run.path, timeout, f"an answer to {command_id}")


def event_of(run: RunDir, kind: str, count: int = 1):
    events = [e for e in run.read_events() if e.get("event") == kind]
    return events[count - 1] if len(events) >= count else None


class TrainerThread:
    """A real :class:`trainer.training.loop.Trainer` running in a background thread of the test process."""

    def __init__(self, trainer):
        self.trainer = trainer
        self.run = trainer.rundir
        self.result: str | None = None
        self.thread = threading.Thread(target=self._target, daemon=True)

    def _target(self):
        self.result = self.trainer.run()

    def start(self) -> "TrainerThread":
        self.thread.start()
        return self

    def join(self, timeout: float = 120.0) -> str:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "trainer did not finish in time"
        return self.result

    def send(self, cmd: str, value=None) -> dict:
        return answer(self.run, self.run.send_command(cmd, value, source="test"))


def stop_leftovers(started) -> None:
    """Stop, through their run directories, the trainers a failed test left running."""
    for t in started:
        if t.thread.is_alive():
            t.run.send_command("stop", source="test-teardown")
            t.thread.join(60)


@pytest.fixture
def start_trainer(tmp_path):
    """Factory: ``start_trainer(epochs=5, pace=0.0, **hparams)`` -> a running TrainerThread."""
    from trainer.contract.hparams import Hyperparameters
    from trainer.training.loop import TrainConfig, Trainer

    started: list[TrainerThread] = []

    def factory(name: str = "run", epochs: int = 5, pace: float = 0.0, checkpoint_every: int = 5,
                divergence_factor: float = 10.0, jit: bool | None = None, **hparams) -> TrainerThread:
        config = TrainConfig(hparams=Hyperparameters(**hparams), epochs=epochs, pace=pace,
                             checkpoint_every=checkpoint_every, divergence_factor=divergence_factor, jit=jit)
        t = TrainerThread(Trainer.create(tmp_path / name, config, verbose=False)).start()
        started.append(t)
        return t

    yield factory
    stop_leftovers(started)
