"""Every run under one run directory, shared by all browser tabs of one server process.

The dashboard keeps one :class:`RunStore` per server process (:mod:`app.serving.shared`), so every tab shares one
:class:`~app.data.rundata.RunData` reader per run, and one run list (:mod:`app.data.runlist`: rebuilt once per
change, never per tab). Opening a run no tab has open reads its files: a client's opens are bounded
(:mod:`app.serving.admission`), and an open never holds the lock other tabs' cached reads need. Another run's files may hold anything: they are read through the typed readers
(:func:`~trainer.contract.rundir.read_snapshot`), and a bad one costs that run a one-line ``notice``, never
the list.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.serving.admission import OpenBudget
from app.data.rundata import RunData
from app.data.runlist import RunList
from trainer.contract.file_records import RunConfig
from trainer.contract.outcome import outcome
from trainer.contract.jsonl import file_key
from trainer.contract.records import Status
from trainer.contract.rundir import RunDir, Snapshot, pid_alive


def inside(root: Path | str, path: Path | str) -> bool:
    """Whether ``path``, symlinks resolved, lies under ``root`` (resolved): a run Panda may list and steer."""
    try:
        return Path(path).resolve().is_relative_to(Path(root).resolve())
    except (OSError, RuntimeError):  # a symlink loop
        return False


@dataclass(frozen=True)
class RunSummary:
    """One line of the run picker."""

    name: str
    path: Path
    state: str
    epoch: int
    epochs: int | None
    created: float
    word: str = ""  # the state in the picker's words (trainer.contract.outcome): completed, stopped, killed …
    notice: str | None = None  # one line when its status.json or config.json is unusable


@dataclass
class _StatusCache:
    key: tuple | None = None
    snapshot: Snapshot = Snapshot()


class RunStore:
    """Every run under one run directory, for one server process (shared by all browser tabs)."""

    def __init__(self, root: Path | str, *, watch: bool = True, max_open: int = 64,
                 budget: OpenBudget | None = None):
        self.root = Path(root)
        self.watch = watch
        self.max_open = max_open
        self.budget = budget or OpenBudget()
        self._lock = threading.Lock()
        self._runs: dict[Path, RunData] = {}
        self._opening: dict[Path, threading.Event] = {}  # runs being read by one caller; others wait
        self._used: dict[Path, float] = {}
        self._status: dict[Path, _StatusCache] = {}
        self._configs: dict[Path, Snapshot] = {}  # config.json is written once
        self.launches: dict[str, Any] = {}  # run name -> app.serving.launch.Launch, shared by all tabs
        self._list = RunList(self.root, self._summary, self.contains, self._forget, watch=watch)

    def run(self, path: Path | str, client: str | None = None) -> RunData:
        """The (cached) data of one run; opening it reads the files once.

        ``client`` (a viewer's session) pays for an open from its budget; one it cannot pay raises
        :class:`~app.serving.admission.Refused`. The files are read outside the store's lock, so other tabs'
        cached reads never wait for them; a second caller for the same run waits for the first.
        """
        path = Path(path)
        while True:
            with self._lock:
                data = self._runs.get(path)
                if data is not None:
                    self._used[path] = time.monotonic()
                    return data
                pending = self._opening.get(path)
                if pending is None:
                    if client is not None:
                        self.budget.take(client)  # raises Refused
                    pending = self._opening[path] = threading.Event()
                    break
            pending.wait(60)
        try:
            data = RunData(path, watch=self.watch)
        finally:
            with self._lock:
                self._opening.pop(path).set()
        with self._lock:
            self._runs[path] = data
            self._used[path] = time.monotonic()
            self._evict()
        return data

    def _evict(self) -> None:
        while len(self._runs) > self.max_open:
            oldest = min(self._used, key=self._used.get)
            self._runs.pop(oldest).close()
            self._used.pop(oldest)

    def is_open(self, path: Path | str) -> bool:
        return Path(path) in self._runs

    def path_of(self, name: str) -> Path:
        return self.root / name

    def contains(self, path: Path | str) -> bool:
        """Whether ``path``, symlinks resolved, lies under the run directory: only such runs are listed or steered."""
        return inside(self.root, path)

    def runs(self) -> list[RunSummary]:
        """Every run under the root, newest first, with its state: the shared list (:mod:`app.data.runlist`).

        A run reached through a symlink that leads out of the root is left out: the page neither
        lists nor steers another folder's runs.
        """
        return list(self._list.listing().runs)

    @property
    def builds(self) -> int:
        """How many times the run list was built (once per change, however many tabs read it)."""
        return self._list.builds

    def _forget(self, path: Path) -> None:
        self._status.pop(path, None)
        self._configs.pop(path, None)

    def _summary(self, run: RunDir) -> RunSummary:
        """One run's line, from its typed status and config (a bad file: a notice, no exception)."""
        read = self._read_status(run)
        status: Status | None = read.record
        config = self._configs.get(run.path)
        if config is None:
            config = self._configs[run.path] = run.config_snapshot()
        settings = RunConfig.from_json(config.record) or RunConfig()
        try:
            state = run.liveness(status) if status else "starting"
        except OSError:
            state = "missing"
        gone = state == "not answering" and not pid_alive(status.pid, status.host)
        return RunSummary(
            name=str(run.path.relative_to(self.root)), path=run.path, state=state,
            word=outcome(state, reason=status.ending if status else None, pid_gone=gone),
            epoch=status.epoch if status else 0,
            epochs=(status.epochs if status else None) or settings.epochs,
            created=settings.created or 0.0,
            notice=read.notice or config.notice,
        )

    def _read_status(self, run: RunDir) -> Snapshot:
        cache = self._status.setdefault(run.path, _StatusCache())
        key = file_key(run.status_path)
        if key is None:
            return Snapshot()
        if key != cache.key:
            cache.snapshot, cache.key = run.status_snapshot(), key
        return cache.snapshot

    def close(self) -> None:
        self._list.close()
        with self._lock:
            for data in self._runs.values():
                data.close()
            self._runs.clear()
            self._used.clear()
