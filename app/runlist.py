"""The run picker's list, computed once per change for the whole server, however many sessions read it.

Rebuilding the list on every viewer's refresh re-read every run's status (98 ms with 500 runs: ten
viewers filled a core). Here one recursive ``watchdog`` observer on the run directory says *which*
run changed (its ``status.json`` or ``config.json``, or a folder came or went); the next reader
re-summarises only those runs, and every other reader gets the list as it is. Two clocks cover
what no file event says: a live run whose trainer died goes stale without writing (its state is
re-judged at most once a second, for the few live runs only), and a missed event (an inotify queue
overflow) is healed by a full rescan every :data:`RESCAN_SECONDS`. Without a watcher (``watch=False``,
or the inotify limit reached) every read (``watch=False``) or one read per :data:`POLL_SECONDS` rescans.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from trainer.rundir import CONFIG, LIVE_STATES, STATUS, RunDir, iter_runs

log = logging.getLogger(__name__)

RESCAN_SECONDS = 30.0  # a full rescan heals a missed event
POLL_SECONDS = 2.0  # without a watcher: one shared rescan per this
LIVE_CHECK_SECONDS = 1.0  # a live run's liveness is re-judged (heartbeat age, pid) at most this often


class _Events(FileSystemEventHandler):
    """Maps each file event under the root to the run it concerns (a run is one or two levels deep)."""

    def __init__(self, root: Path, changed: Callable[[Path | None], None]):
        self.root = str(root)
        self.changed = changed

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed", "closed_no_write"):
            return
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            if not raw:
                continue
            path = os.fsdecode(raw)
            rel = os.path.relpath(path, self.root)
            parts = [] if rel == "." else rel.split(os.sep)
            if not parts or parts[0] == "..":
                self.changed(None)  # the root itself: rescan
            elif event.is_directory and len(parts) <= 2 and event.event_type != "modified":
                self.changed(None)  # a run (or a sweep folder) came, went or moved
            elif parts[-1] == CONFIG and len(parts) in (2, 3):
                self.changed(None)  # a new run (config.json is written once, when the run is made)
            elif parts[-1] == STATUS and len(parts) in (2, 3):
                self.changed(Path(self.root, *parts[:-1]))


@dataclass(frozen=True)
class Listing:
    """One version of the list: the summaries, newest first."""

    version: int
    runs: tuple


class RunList:
    """Every run's summary under ``root``, rebuilt only for what changed (``summarise`` makes one)."""

    def __init__(self, root: Path, summarise: Callable[[RunDir], object], contains: Callable[[Path], bool],
                 forget: Callable[[Path], None], *, watch: bool = True):
        self.root = root
        self._summarise = summarise
        self._contains = contains
        self._forget = forget
        self._lock = threading.Lock()  # the change flags
        self._build_lock = threading.Lock()  # one build at a time
        self._summaries: dict[Path, object] = {}
        self._inside: dict[Path, bool] = {}
        self._dirty: set[Path] = set()
        self._rescan = True
        self._scanned = self._live_checked = 0.0
        self._listing = Listing(0, ())
        self.builds = 0  # how many times the list was (re)built: once per change, never per reader
        self._observer = self._watch() if watch else None
        self._every = RESCAN_SECONDS if self._observer is not None else (POLL_SECONDS if watch else 0.0)

    def _watch(self):
        if not self.root.is_dir():
            return None
        try:
            observer = Observer()
            observer.daemon = True
            observer.schedule(_Events(self.root, self._changed), str(self.root), recursive=True)
            observer.start()
            return observer
        except OSError as e:  # e.g. the inotify watch limit: one shared rescan per POLL_SECONDS instead
            log.warning("cannot watch %s (%s); listing it every %.0fs", self.root, e, POLL_SECONDS)
            return None

    def _changed(self, run: Path | None) -> None:
        with self._lock:
            if run is None:
                self._rescan = True
            else:
                self._dirty.add(run)

    def pending(self) -> bool:
        """Whether a change was noticed that the next read will build."""
        with self._lock:
            return self._rescan or bool(self._dirty)

    def listing(self) -> Listing:
        """The current list; rebuilt here only if something changed since the last build."""
        now = time.monotonic()
        with self._lock:
            if now - self._scanned >= self._every:
                self._rescan = True
            rescan, dirty = self._rescan, self._dirty
            self._rescan, self._dirty = False, set()
            live_due = now - self._live_checked >= LIVE_CHECK_SECONDS
        if rescan or dirty:
            self._build(rescan, dirty, now)
        elif live_due:
            self._recheck_live(now)
        return self._listing

    def _build(self, rescan: bool, dirty: set[Path], now: float) -> None:
        with self._build_lock:
            summaries = dict(self._summaries)
            if rescan:
                found = {}
                for run in iter_runs(self.root):
                    if run.path not in self._inside:
                        self._inside[run.path] = self._contains(run.path)
                    if self._inside[run.path]:
                        found[run.path] = run
                for gone in set(summaries) - set(found):
                    del summaries[gone]
                    self._inside.pop(gone, None)
                    self._forget(gone)
                for path, run in found.items():
                    summaries[path] = self._summarise(run)
                self._scanned = now
            for path in dirty:
                if path in summaries:
                    summaries[path] = self._summarise(RunDir(path))
            self._publish(summaries, now)

    def _recheck_live(self, now: float) -> None:
        with self._build_lock:
            live = [p for p, s in self._summaries.items() if getattr(s, "state", None) in (*LIVE_STATES, "not answering")]
            if not live:
                self._live_checked = now
                return
            summaries = dict(self._summaries)
            changed = False
            for path in live:
                fresh = self._summarise(RunDir(path))
                changed |= fresh != summaries[path]
                summaries[path] = fresh
            if changed:
                self._publish(summaries, now)
            else:
                self._live_checked = now

    def _publish(self, summaries: dict, now: float) -> None:
        self._summaries = summaries
        ordered = sorted(summaries.values(), key=lambda r: (-r.created, r.name))
        self.builds += 1
        self._listing = Listing(self.builds, tuple(ordered))
        self._live_checked = now

    def close(self) -> None:
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
