"""What the benchmarks share: a real ``panda train`` process, and waiting for its files to change."""

from __future__ import annotations

import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from trainer.contract import launching
from trainer.contract.config import TrainConfig, trainer_argv
from trainer.contract.rundir import RunDir
from trainer.contract.watch import FileWatcher


def wait_until(predicate: Callable[[], object], folder: Path | str, timeout: float = 120.0) -> None:
    """Re-check ``predicate`` whenever a file in ``folder`` changes (0.5 s backstop)."""
    deadline = time.monotonic() + timeout
    with FileWatcher(folder, None) as watcher:
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError("the trainer did not get there in time")
            watcher.wait(0.5)


@contextmanager
def trainer_process(folder: Path | str, name: str) -> Iterator[tuple[RunDir, subprocess.Popen]]:
    """A trainer training digits flat out (no pace, many epochs) until the block ends."""
    run = RunDir(Path(folder) / name)
    proc = launching.spawn(trainer_argv(folder, name, TrainConfig(epochs=100_000)), Path(folder) / f"{name}.log")
    try:
        wait_until(run.metrics_path.exists, folder)
        wait_until(lambda: len(run.read_metrics()) >= 3, run.path)
        yield run, proc
    finally:
        launching.stop(proc, grace=60)
