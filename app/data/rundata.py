"""One run's records in memory, grown from appended bytes: the per-run reader of the data layer.

A page refresh must not re-read a run's files: a long run has hundreds of thousands of batch
records. :class:`RunData` keeps one :class:`~trainer.contract.rundir.JsonlTail` per log, so each refresh
parses only the lines appended since the last one, and hands the records to a
:class:`~app.data.history.History` (the run's *current history*, after rewinds, in growable NumPy
columns that charts slice without copying). A ``watchdog`` observer
(:class:`~trainer.contract.watch.FileWatcher`) ingests appends the moment they land and marks the run
dirty, so a refresh with nothing new costs a flag check.

Nothing here imports Streamlit or TensorFlow: the data layer is testable and benchmarkable alone.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from trainer.contract.rundir import (
    BATCHES,
    COMMANDS,
    CONFIG,
    EVENTS,
    LIVE_STATES,
    METRICS,
    STATUS,
    JsonlTail,
    RunDir,
)
from app.data.history import Columns, History
from app.data.runview import RunView
from trainer.contract.jsonl import file_key
from trainer.contract.records import Status, log_record
from trainer.contract.watch import FileWatcher

log = logging.getLogger(__name__)

#: Without a file-system notification, look at the files anyway this often (seconds): a safety
#: net for file systems where inotify is silent (NFS, some containers).
POLL_SECONDS = 2.0


def _stop_quietly(watcher) -> None:
    try:
        watcher.stop()
    except Exception:  # the folder is gone, the observer already stopped: nothing left to do
        pass


@dataclass
class _Tail:
    """A JsonlTail that notices when its file was replaced or cut (so old records must go)."""

    tail: JsonlTail
    replaced: bool = False

    def read(self) -> list[tuple[int, dict | None]]:
        restarts = self.tail.restarts
        lines = self.tail.read_new_lines()
        if self.tail.restarts != restarts:
            self.replaced = True
        return lines


class RunData:
    """One run's records in memory, kept current from the files' appended bytes.

    Thread-safe: the watchdog thread ingests appends while page renders take :meth:`view` s.
    A run folder deleted while open keeps its last data and reports ``missing``; a run created
    again under the same name is read afresh.
    """

    def __init__(self, path: Path | str, *, watch: bool = True):
        self.run = RunDir(path)
        self.path = self.run.path
        self.watch = watch
        self._lock = threading.RLock()
        self._watcher: FileWatcher | None = None
        self._reset()
        self.refresh(force=True)

    # ------------------------------------------------------------------ state

    def _reset(self) -> None:
        self.version = getattr(self, "version", 0) + 1
        self.log_version = getattr(self, "log_version", 0) + 1
        self.config: dict | None = None
        self._config_inode: int | None = None
        self._config_key: tuple | None = None
        self.notices: dict[str, str | None] = {}  # file name -> why it is unusable (None: it is fine)
        self.status: dict | None = None
        self._status: Status | None = None  # the same, typed
        self._status_key: tuple | None = None
        self._tails = {name: _Tail(JsonlTail(self.path / name)) for name in (METRICS, BATCHES, EVENTS, COMMANDS)}
        self.history = History()
        self.events: list[dict] = []
        self.commands: list[dict] = []
        self.answers: dict[str, dict] = {}
        self.records_read = 0
        self.missing = False
        self._dirty = True
        self._polled = 0.0

    # ------------------------------------------------------------------ watching

    def _on_change(self) -> None:
        self._dirty = True
        try:
            self.refresh()  # ingest now, so the data layer is fresh the moment the file is
        except Exception:  # never let a bad file kill the observer thread
            log.exception("reading %s failed", self.path)

    def _start_watching(self) -> None:
        if self._watcher is not None or not self.watch or not self.path.is_dir():
            return
        try:
            self._watcher = FileWatcher(self.path, [METRICS, BATCHES, EVENTS, COMMANDS, STATUS, CONFIG],
                                        on_change=self._on_change).start()
        except OSError as e:  # e.g. the inotify watch limit: polling still works
            log.warning("cannot watch %s (%s); polling every %.0fs", self.path, e, POLL_SECONDS)
            self._watcher = None

    def _stop_watching(self) -> None:
        """Detach the watcher now and stop it on a thread of its own.

        Stopping waits for the observer's dispatch lock, which the observer holds while its
        callback waits for this reader's lock: stopping it inline, under that lock, deadlocks.
        """
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            threading.Thread(target=_stop_quietly, args=(watcher,), name="panda-unwatch", daemon=True).start()

    def close(self) -> None:
        self._stop_watching()

    @property
    def epochs(self) -> Columns:
        """The current history's epoch columns (as read; :meth:`view` also applies a pending rewind)."""
        return self.history.epochs

    @property
    def watching(self) -> bool:
        return self._watcher is not None

    # ------------------------------------------------------------------ reading

    def refresh(self, force: bool = False) -> bool:
        """Read what was appended since the last call; ``True`` if anything changed.

        With a watcher and no notification since the last read this is a flag check, except
        every :data:`POLL_SECONDS`, when the files are looked at anyway.
        """
        now = time.monotonic()
        if not (force or self._dirty or self._watcher is None or now - self._polled >= POLL_SECONDS):
            if self.path.is_dir():  # one stat: the watcher is not told when the folder itself goes
                return False
        with self._lock:
            self._dirty = False
            self._polled = now
            if not self.path.is_dir():
                if not self.missing:
                    self.missing = True
                    self.version += 1
                    self.log_version += 1
                    self._stop_watching()
                    return True
                return False
            if self.missing or self._config_replaced():
                self._stop_watching()
                self._reset()
            logs_changed = self._read_logs()
            changed = self._read_config() | self._read_status() | logs_changed
            if any(t.replaced for t in self._tails.values()):
                # A log was replaced or cut under us: start over rather than keep stale records.
                self._stop_watching()
                self._reset()
                changed = logs_changed = self._read_config() | self._read_status() | self._read_logs() | True
            self._maybe_watch()
            if changed:
                self.version += 1
            if logs_changed:
                self.log_version += 1
            return changed

    def _maybe_watch(self) -> None:
        state = self._status.state if self._status else None
        if self.config is not None and (state is None or state in LIVE_STATES):
            self._start_watching()
        elif state is not None and state not in LIVE_STATES and self._watcher is not None:
            self._stop_watching()  # finished and failed runs do not change

    def _config_replaced(self) -> bool:
        """Whether the folder now holds another run (deleted and created again under this name)."""
        if self.config is None:
            return False
        try:
            inode = os.stat(self.path / CONFIG).st_ino
        except OSError:
            return False
        return inode != self._config_inode

    def _read_config(self) -> bool:
        """``config.json`` once, typed; an unusable one is a notice (looked at again when it changes)."""
        if self.config is not None:
            return False
        key = file_key(self.path / CONFIG)
        if key is None or key == self._config_key:
            return False
        self._config_key, self._config_inode = key, key[0]
        snapshot = self.run.config_snapshot()
        self.config = snapshot.record
        self.notices[CONFIG] = snapshot.notice
        return True

    def _read_status(self) -> bool:
        """``status.json`` when it changed, typed (:class:`~trainer.contract.records.Status`); an unusable one
        keeps the last good status and is a notice."""
        key = file_key(self.path / STATUS)
        if key is None or key == self._status_key:
            return False
        self._status_key = key
        snapshot = self.run.status_snapshot()
        notice, self.notices[STATUS] = self.notices.get(STATUS), snapshot.notice
        status = self.status if snapshot.record is None else snapshot.record.to_json()
        if status == self.status and notice == snapshot.notice:
            return False
        self.status = status
        self._status = snapshot.record or self._status
        return True

    def _read_logs(self) -> bool:
        changed = False
        metrics = [r for _, r in self._tails[METRICS].read() if r is not None]
        if metrics:
            self.history.add_epochs(metrics)
            changed = True
        batches = [r for _, r in self._tails[BATCHES].read() if r is not None]
        if batches:
            self.history.add_batches(batches)
            changed = True
        events = [log_record(r) for _, r in self._tails[EVENTS].read() if r is not None]
        if events:
            self.events.extend(events)
            for event in events:
                if event.get("event") in ("applied", "rejected") and isinstance(event.get("command_id"), str):
                    self.answers.setdefault(event["command_id"], event)
            changed = True
        commands = [log_record(r) for _, r in self._tails[COMMANDS].read() if r is not None]
        if commands:
            self.commands.extend(commands)
            changed = True
        self.records_read += len(metrics) + len(batches) + len(events) + len(commands)
        return changed

    # ------------------------------------------------------------------ reading out

    def view(self) -> RunView:
        """Refresh (cheaply), then a consistent snapshot for rendering."""
        self.refresh()
        with self._lock:
            epochs, last, abandoned = self.history.current(self._status)
            return RunView(
                name=self.run.name,
                path=self.path,
                version=self.version,
                log_version=self.log_version,
                config=self.config,
                status=self.status,
                notice=next((n for n in self.notices.values() if n), None),
                epochs=epochs,
                batches=self.history.batches.view(),
                events=list(self.events),
                commands=list(self.commands),
                answers=dict(self.answers),
                last_epoch=last,
                malformed={name: t.tail.malformed for name, t in self._tails.items() if t.tail.malformed},
                missing=self.missing,
                records_read=self.records_read,
                abandoned=abandoned,
            )

    def wait_for(self, predicate, timeout: float) -> bool:
        """Wait until ``predicate(view)`` holds (tests and benchmarks); ``False`` on timeout."""
        deadline = time.monotonic() + timeout
        event = threading.Event()
        while True:
            if predicate(self.view()):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            event.wait(min(left, 0.01))
