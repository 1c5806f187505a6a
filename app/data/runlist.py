"""The run picker's list, computed once per change for the whole server, however many sessions read it.

Rebuilding the list on every viewer's refresh re-read every run's status (98 ms with 500 runs: ten
viewers filled a core). Here the list is built once and kept; what a reader does is at most one
check a second for the whole server, which looks only where a change can be:

* the live runs' ``status.json`` (a ``stat`` each; their liveness is re-judged too: a trainer that
  died writes nothing, yet turns "not answering");
* the folders that are no run (the run directory itself, a sweep's folder) and those still waiting
  for their ``config.json``: a folder's mtime moves when a run folder comes or goes;
* every run's ``status.json`` every :data:`STAT_ALL_SECONDS` (a finished run resumed elsewhere), and
  a full rescan every :data:`RESCAN_SECONDS`.

Only a run whose files changed is summarised again. No file watcher: a recursive inotify watch of
2,000 runs (with their checkpoint folders) is 28,000 watches, and every read of a run queued events.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from trainer.contract.jsonl import file_key
from trainer.contract.rundir import CONFIG, LIVE_STATES, STATUS, RunDir

CHECK_SECONDS = 1.0  # live runs and folders: checked at most this often, for all readers together
STAT_ALL_SECONDS = 3.0  # every run's status.json stat'ed (2,000 stats: a few ms)
RESCAN_SECONDS = 60.0  # the whole tree listed again
WATCHED_STATES = (*LIVE_STATES, "not answering", "missing")


def _mtime(path: Path) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


@dataclass(frozen=True)
class Listing:
    """One version of the list: the summaries, newest first."""

    version: int
    runs: tuple


class RunList:
    """Every run's summary under ``root``, rebuilt only for what changed (``summarise`` makes one).

    ``watch=False``: every read looks at every run (the old behaviour: a command-line caller, a test).
    """

    def __init__(self, root: Path, summarise: Callable[[RunDir], object], contains: Callable[[Path], bool],
                 forget: Callable[[Path], None], *, watch: bool = True):
        self.root = root
        self._summarise = summarise
        self._contains = contains
        self._forget = forget
        self.watch = watch
        self._lock = threading.Lock()
        self._summaries: dict[Path, object] = {}
        self._inside: dict[Path, bool] = {}
        self._status_keys: dict[Path, tuple | None] = {}
        self._folders: dict[Path, int | None] = {}  # non-run folders -> mtime
        self._waiting: list[Path] = []  # folders without config.json (yet)
        self._checked = self._stat_all = self._scanned = -1e9
        self._listing = Listing(0, ())
        self.builds = 0  # how many times the list was (re)built: once per change, never per reader

    def listing(self) -> Listing:
        """The current list. A reader that finds another one checking waits for it (a check is a few
        stats; a rescan of 2,000 runs ~70 ms): handing out the old list then showed a viewer who
        arrived with a new run the previous newest run for one refresh."""
        with self._lock:
            self._update(time.monotonic())
            return self._listing

    # ------------------------------------------------------------------ checks

    def _update(self, now: float) -> None:
        if self.watch and now - self._checked < CHECK_SECONDS:
            return
        self._checked = now
        if not self.watch or now - self._scanned >= RESCAN_SECONDS or self._shape_changed():
            self._rescan(now)
            return
        every = now - self._stat_all >= STAT_ALL_SECONDS
        if every:
            self._stat_all = now
        changed = {}
        for path, summary in self._summaries.items():
            live = getattr(summary, "state", None) in WATCHED_STATES
            if not (live or every):
                continue
            key = file_key(path / STATUS)
            if live or key != self._status_keys.get(path):
                self._status_keys[path] = key
                fresh = self._summarise(RunDir(path))
                if fresh != summary:
                    changed[path] = fresh
        if changed:
            self._publish({**self._summaries, **changed})

    def _shape_changed(self) -> bool:
        """A folder that is no run gained or lost an entry, or a waiting folder got its config.json."""
        return (any(_mtime(folder) != mtime for folder, mtime in self._folders.items())
                or any((folder / CONFIG).exists() for folder in self._waiting))

    def _rescan(self, now: float) -> None:
        found, folders, waiting = self._walk()
        summaries = {}
        for path in found:
            if path not in self._inside:
                self._inside[path] = self._contains(path)  # symlinks resolved once per run
            if self._inside[path]:
                self._status_keys[path] = file_key(path / STATUS)
                summaries[path] = self._summarise(RunDir(path))
        for gone in set(self._summaries) - set(summaries):
            self._status_keys.pop(gone, None)
            self._inside.pop(gone, None)
            self._forget(gone)
        self._folders, self._waiting, self._scanned = folders, waiting, now
        self._stat_all = now
        if summaries != self._summaries or self.builds == 0 or not self.watch:
            self._publish(summaries)

    def _walk(self) -> tuple[list[Path], dict[Path, int | None], list[Path]]:
        """Runs one or two levels down (a sweep's trials), the non-run folders, the folders without config."""
        found: list[Path] = []
        folders = {self.root: _mtime(self.root)}
        waiting: list[Path] = []
        for entry in _subfolders(self.root):
            if (entry / CONFIG).exists():
                found.append(entry)
                continue
            folders[entry] = _mtime(entry)
            waiting.append(entry)
            for sub in _subfolders(entry):
                (found if (sub / CONFIG).exists() else waiting).append(sub)
        return found, folders, waiting

    def _publish(self, summaries: dict) -> None:
        self._summaries = summaries
        ordered = sorted(summaries.values(), key=lambda r: (-r.created, r.name))
        self.builds += 1
        self._listing = Listing(self.builds, tuple(ordered))

    def close(self) -> None:
        """Nothing to stop (no watcher thread); kept so the store closes what it owns."""


def _subfolders(path: Path) -> list[Path]:
    try:
        with os.scandir(path) as entries:
            return [Path(e.path) for e in entries if e.is_dir()]
    except OSError:
        return []
