"""One run's records in memory, grown from appended bytes: the per-run reader of the data layer.

A page refresh must not re-read a run's files: a long run has hundreds of thousands of batch
records. :class:`RunData` keeps one :class:`~trainer.rundir.JsonlTail` per log, so each refresh
parses only the lines appended since the last one, and keeps the run's *current history* (after
rewinds) in growable NumPy columns that charts slice without copying. A ``watchdog`` observer
(:class:`~trainer.watch.FileWatcher`) ingests appends the moment they land and marks the run
dirty, so a refresh with nothing new costs a flag check.

Nothing here imports Streamlit or TensorFlow: the data layer is testable and benchmarkable alone.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trainer.rundir import (
    BATCHES,
    COMMANDS,
    CONFIG,
    EVENTS,
    LIVE_STATES,
    METRICS,
    STATUS,
    JsonlTail,
    RunDir,
    kept_before,
    pid_alive,
)
from trainer.outcome import outcome
from trainer.records import log_record
from trainer.watch import FileWatcher

log = logging.getLogger(__name__)

#: Columns kept for each epoch of the current history (``metrics.jsonl`` fields).
EPOCH_COLUMNS = (
    "epoch", "step", "branch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "beta",
    "batch_size", "grad_norm", "epoch_seconds", "samples_per_second", "wall_seconds", "wall_samples_per_second",
    "time",
)
#: Columns kept of a branch a rewind abandoned (drawn faded), and how many such branches are kept.
ABANDONED_COLUMNS = ("epoch", "branch", "loss", "accuracy", "val_loss", "val_accuracy")
MAX_ABANDONED = 20
#: Columns kept for each sampled mini-batch; ``smooth`` is the debiased EMA of ``loss``.
BATCH_COLUMNS = ("step", "epoch", "loss", "smooth")
#: Weight of the exponential moving average drawn over the batch losses (TensorBoard's idea).
SMOOTHING = 0.9
#: Without a file-system notification, look at the files anyway this often (seconds): a safety
#: net for file systems where inotify is silent (NFS, some containers).
POLL_SECONDS = 2.0


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    try:
        return float(value)
    except OverflowError:  # an integer of hundreds of digits
        return math.nan


def _stop_quietly(watcher) -> None:
    try:
        watcher.stop()
    except Exception:  # the folder is gone, the observer already stopped: nothing left to do
        pass


class Columns:
    """Named float64 columns that grow by doubling and can be cut back (a rewind)."""

    def __init__(self, names: tuple[str, ...], capacity: int = 256):
        self.names = names
        self._data = np.full((len(names), capacity), np.nan)
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def append(self, rows: np.ndarray) -> None:
        """Append rows given as an array of shape (len(names), n)."""
        n = rows.shape[1]
        if self.size + n > self._data.shape[1]:
            capacity = max(2 * self._data.shape[1], self.size + n)
            grown = np.full((len(self.names), capacity), np.nan)
            grown[:, : self.size] = self._data[:, : self.size]
            self._data = grown
        self._data[:, self.size : self.size + n] = rows
        self.size += n

    def truncate(self, size: int) -> None:
        self.size = min(self.size, size)

    def column(self, name: str) -> np.ndarray:
        return self._data[self.names.index(name), : self.size]

    def last(self, name: str) -> float:
        return float(self._data[self.names.index(name), self.size - 1]) if self.size else math.nan

    def view(self) -> dict[str, np.ndarray]:
        """Read-only views of the filled part. A later append never changes what a view shows."""
        out = {}
        for i, name in enumerate(self.names):
            column = self._data[i, : self.size]
            column.flags.writeable = False
            out[name] = column
        # Appends reallocate or write past ``size``; only a rewind overwrites old slots, and it
        # replaces the buffer first (see ``_cut``), so views stay consistent snapshots.
        return out


def _branch_from(epochs: dict[str, np.ndarray], kept: float) -> dict[str, np.ndarray]:
    """The rows after epoch ``kept`` (a branch being dropped), with the row of ``kept`` in front."""
    start = max(kept_before(epochs["epoch"], kept), 0)
    return {name: np.array(epochs[name][start:]) for name in ABANDONED_COLUMNS}


def _after_rewind(status: dict | None, epochs: dict[str, np.ndarray], last: dict | None,
                  abandoned: list) -> tuple[dict[str, np.ndarray], dict | None, list]:
    """The current history as the status says it is: right after a rewind (or rollback) to epoch k,
    before the new branch's first record, ``metrics.jsonl`` still ends with the dropped epochs. The
    status already has the new branch at epoch k: the epochs after k are an abandoned branch, and
    the last record is epoch k's (the status's ``last``)."""
    status = status or {}
    done, branch = status.get("epoch"), status.get("branch")
    if not (isinstance(done, int) and isinstance(branch, int)) or not len(epochs["epoch"]):
        return epochs, last, abandoned
    newest_branch = epochs["branch"][-1]
    if not (math.isfinite(newest_branch) and newest_branch < branch and epochs["epoch"][-1] > done):
        return epochs, last, abandoned
    keep = kept_before(epochs["epoch"], done + 1)
    dropped = _branch_from(epochs, done)
    current = {name: column[:keep] for name, column in epochs.items()}
    record = status.get("last") if isinstance(status.get("last"), dict) else None
    if record is None or record.get("epoch") != done:
        record = {name: float(column[-1]) for name, column in current.items()} if keep else None
    return current, record, (abandoned + [dropped])[-MAX_ABANDONED:]


@dataclass
class RunView:
    """A consistent snapshot of one run, cheap to take, for one page render."""

    name: str
    path: Path
    version: int  # changes whenever anything changed (the status every heartbeat)
    log_version: int  # changes only when records were appended: what charts depend on
    config: dict | None  # checked (trainer.records.config_record)
    status: dict | None  # typed (trainer.records.Status, as a dict)
    epochs: dict[str, np.ndarray]
    batches: dict[str, np.ndarray]
    events: list[dict]
    commands: list[dict]
    answers: dict[str, dict]
    last_epoch: dict | None
    malformed: dict[str, int]
    missing: bool
    records_read: int
    notice: str | None = None  # one line when status.json or config.json is unusable
    #: epochs a rewind or rollback dropped from the current history, one dict of columns per branch,
    #: each starting at the epoch it branched from (so it joins the current line when drawn)
    abandoned: list[dict[str, np.ndarray]] = field(default_factory=list)

    def state(self, at: float | None = None) -> str:
        """The run's state as a user should read it: ``not answering`` when the trainer is gone."""
        if self.missing:
            return "deleted"
        return RunDir(self.path).liveness(self.status or None, at=at) if self.status else (
            "starting" if self.config else "missing")

    def word(self, state: str) -> str:
        """``state`` as the badge says it: a finished run completed, stopped or was interrupted; a gone one was killed."""
        status = self.status or {}
        reason = next((e.get("reason") for e in reversed(self.events) if e.get("event") == "finished"),
                      status.get("ending"))
        return outcome(state, reason=reason,
                       pid_gone=state == "not answering" and not pid_alive(status.get("pid"), status.get("host")))

    @property
    def malformed_total(self) -> int:
        return sum(self.malformed.values())

    @property
    def n_epochs(self) -> int:
        return len(self.epochs["epoch"])


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


def _file_key(path: Path) -> tuple[int, int, int] | None:
    """``(inode, mtime, size)`` of a file, ``None`` when it cannot be seen: a change of it means the file changed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


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
        self._status_key: tuple | None = None
        self._tails = {name: _Tail(JsonlTail(self.path / name)) for name in (METRICS, BATCHES, EVENTS, COMMANDS)}
        self.epochs = Columns(EPOCH_COLUMNS)
        self.batches = Columns(BATCH_COLUMNS, capacity=4096)
        self._ema = 0.0  # biased EMA accumulator after the last batch
        self._ema_n = 0
        self._ema_history = np.zeros(4096)  # accumulator after each batch, to cut back on rewind
        self.events: list[dict] = []
        self.commands: list[dict] = []
        self.answers: dict[str, dict] = {}
        self.last_epoch: dict | None = None
        self.abandoned: list[dict[str, np.ndarray]] = []
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
        state = (self.status or {}).get("state")
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
        key = _file_key(self.path / CONFIG)
        if key is None or key == self._config_key:
            return False
        self._config_key, self._config_inode = key, key[0]
        snapshot = self.run.config_snapshot()
        self.config = snapshot.record
        self.notices[CONFIG] = snapshot.notice
        return True

    def _read_status(self) -> bool:
        """``status.json`` when it changed, typed (:class:`~trainer.records.Status`); an unusable one
        keeps the last good status and is a notice."""
        key = _file_key(self.path / STATUS)
        if key is None or key == self._status_key:
            return False
        self._status_key = key
        snapshot = self.run.status_snapshot()
        notice, self.notices[STATUS] = self.notices.get(STATUS), snapshot.notice
        status = self.status if snapshot.record is None else snapshot.record.to_json()
        if status == self.status and notice == snapshot.notice:
            return False
        self.status = status
        return True

    def _read_logs(self) -> bool:
        changed = False
        metrics = [r for _, r in self._tails[METRICS].read() if r is not None]
        if metrics:
            self._add_epochs(metrics)
            changed = True
        batches = [r for _, r in self._tails[BATCHES].read() if r is not None]
        if batches:
            self._add_batches(batches)
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

    def _cut(self, columns: Columns, key: str, value: float) -> int:
        """Drop rows whose ``key`` is >= ``value`` (a rewind's replaced history); returns the new size."""
        size = kept_before(columns.column(key), value)
        if size < columns.size:
            # Copy first, so snapshots handed out earlier keep their (old) rows untouched.
            fresh = Columns(columns.names, capacity=columns._data.shape[1])
            fresh._data[:, :size] = columns._data[:, :size]
            columns._data, columns.size = fresh._data, size
        return size

    def _add_epochs(self, records: list[dict]) -> None:
        rows = []
        for record in records:
            epoch = record.get("epoch")
            if not isinstance(epoch, int) or isinstance(epoch, bool):
                continue
            last = self.epochs.last("epoch") if not rows else rows[-1][0]
            if len(self.epochs) + len(rows) and epoch <= last:
                self._flush_epochs(rows)
                rows = []
                self.abandoned = (self.abandoned + [_branch_from(self.epochs.view(), epoch - 1)])[-MAX_ABANDONED:]
                self._cut(self.epochs, "epoch", epoch)
            rows.append([_number(record.get(c)) for c in EPOCH_COLUMNS])
            self.last_epoch = record
        self._flush_epochs(rows)

    def _flush_epochs(self, rows: list[list[float]]) -> None:
        if rows:
            self.epochs.append(np.array(rows, dtype=float).T)

    def _add_batches(self, records: list[dict]) -> None:
        rows: list[list[float]] = []
        for record in records:
            step = record.get("step")
            if not isinstance(step, int) or isinstance(step, bool):
                continue
            last = self.batches.last("step") if not rows else rows[-1][0]
            if len(self.batches) + len(rows) and step <= last:
                self._flush_batches(rows)
                rows = []
                size = self._cut(self.batches, "step", step)
                self._ema_n = size
                self._ema = float(self._ema_history[size - 1]) if size else 0.0
            loss = _number(record.get("loss"))
            if math.isfinite(loss):
                self._ema = SMOOTHING * self._ema + (1 - SMOOTHING) * loss
                self._ema_n += 1
            n = len(self.batches) + len(rows)
            if n >= len(self._ema_history):
                self._ema_history = np.resize(self._ema_history, 2 * len(self._ema_history))
            self._ema_history[n] = self._ema
            smooth = self._ema / (1 - SMOOTHING**self._ema_n) if self._ema_n else math.nan
            rows.append([float(step), _number(record.get("epoch")), loss, smooth])
        self._flush_batches(rows)

    def _flush_batches(self, rows: list[list[float]]) -> None:
        if rows:
            self.batches.append(np.array(rows, dtype=float).T)

    # ------------------------------------------------------------------ reading out

    def view(self) -> RunView:
        """Refresh (cheaply), then a consistent snapshot for rendering."""
        self.refresh()
        with self._lock:
            epochs, last, abandoned = _after_rewind(self.status, self.epochs.view(), self.last_epoch, self.abandoned)
            return RunView(
                name=self.run.name,
                path=self.path,
                version=self.version,
                log_version=self.log_version,
                config=self.config,
                status=self.status,
                notice=next((n for n in self.notices.values() if n), None),
                epochs=epochs,
                batches=self.batches.view(),
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
