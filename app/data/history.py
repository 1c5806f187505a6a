"""A run's current history in growable NumPy columns: rewinds cut it, batch losses are smoothed.

:class:`~app.data.rundata.RunData` tails the run's files and hands each batch of new records here;
this module knows nothing about files. Epoch numbers or steps that go back mean a rewind: the
rows from there on are replaced (the epochs kept as an *abandoned* branch, drawn faded), and the
batch-loss EMA is cut back to the same step, so the smoothed line never mixes two histories.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from trainer.contract.records import EPOCH_COLUMNS, EpochRecord, Status
from trainer.contract.rundir import kept_before

#: Columns kept for each epoch of the current history: :class:`~trainer.contract.records.EpochRecord`'s fields
#: every trainer writes (``trainer.contract.records.EPOCH_COLUMNS``, imported above: the list exists once).
#: Columns kept of a branch a rewind abandoned (drawn faded), and how many such branches are kept.
ABANDONED_COLUMNS = ("epoch", "branch", "loss", "accuracy", "val_loss", "val_accuracy")
MAX_ABANDONED = 20
#: Columns kept for each sampled mini-batch; ``smooth`` is the debiased EMA of ``loss``.
BATCH_COLUMNS = ("step", "epoch", "loss", "smooth")
#: Weight of the exponential moving average drawn over the batch losses (TensorBoard's idea).
SMOOTHING = 0.9


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    try:
        return float(value)
    except OverflowError:  # an integer of hundreds of digits
        return math.nan


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

    def cut(self, key: str, value: float) -> int:
        """Drop rows whose ``key`` is >= ``value`` (a rewind's replaced history); returns the new size."""
        size = kept_before(self.column(key), value)
        if size < self.size:
            # Copy first, so snapshots handed out earlier keep their (old) rows untouched.
            fresh = np.full(self._data.shape, np.nan)
            fresh[:, :size] = self._data[:, :size]
            self._data, self.size = fresh, size
        return size

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
        # replaces the buffer first (see ``cut``), so views stay consistent snapshots.
        return out


def _branch_from(epochs: dict[str, np.ndarray], kept: float) -> dict[str, np.ndarray]:
    """The rows after epoch ``kept`` (a branch being dropped), with the row of ``kept`` in front."""
    start = max(kept_before(epochs["epoch"], kept), 0)
    return {name: np.array(epochs[name][start:]) for name in ABANDONED_COLUMNS}


def after_rewind(status: Status | None, epochs: dict[str, np.ndarray], last: dict | None,
                 abandoned: list) -> tuple[dict[str, np.ndarray], dict | None, list]:
    """The current history as the status says it is: right after a rewind (or rollback) to epoch k,
    before the new branch's first record, ``metrics.jsonl`` still ends with the dropped epochs. The
    status already has the new branch at epoch k: the epochs after k are an abandoned branch, and
    the last record is epoch k's (the status's ``last``)."""
    if status is None or not len(epochs["epoch"]):
        return epochs, last, abandoned
    done, branch = status.epoch, status.branch
    if not (isinstance(done, int) and isinstance(branch, int)):
        return epochs, last, abandoned
    newest_branch = epochs["branch"][-1]
    if not (math.isfinite(newest_branch) and newest_branch < branch and epochs["epoch"][-1] > done):
        return epochs, last, abandoned
    keep = kept_before(epochs["epoch"], done + 1)
    dropped = _branch_from(epochs, done)
    current = {name: column[:keep] for name, column in epochs.items()}
    record = status.last if isinstance(status.last, dict) else None
    if record is None or record.get("epoch") != done:
        record = {name: float(column[-1]) for name, column in current.items()} if keep else None
    return current, record, (abandoned + [dropped])[-MAX_ABANDONED:]


class History:
    """Epoch and batch columns of the current history, the last epoch record and the abandoned branches."""

    def __init__(self) -> None:
        self.epochs = Columns(EPOCH_COLUMNS)
        self.batches = Columns(BATCH_COLUMNS, capacity=4096)
        self._ema = 0.0  # biased EMA accumulator after the last batch
        self._ema_n = 0
        self._ema_history = np.zeros(4096)  # accumulator after each batch, to cut back on rewind
        self.last_epoch: dict | None = None
        self.abandoned: list[dict[str, np.ndarray]] = []

    def add_epochs(self, lines: list[dict]) -> None:
        """Append ``metrics.jsonl`` lines, each read as an :class:`~trainer.contract.records.EpochRecord` (one without
        a whole epoch number is skipped; a field of the wrong type is missing, drawn as a gap)."""
        rows: list[list[float]] = []
        for line in lines:
            record = EpochRecord.from_json(line)
            if record is None:
                continue
            epoch = record.epoch
            last = self.epochs.last("epoch") if not rows else rows[-1][0]
            if len(self.epochs) + len(rows) and epoch <= last:
                _flush(self.epochs, rows)
                rows = []
                self.abandoned = (self.abandoned + [_branch_from(self.epochs.view(), epoch - 1)])[-MAX_ABANDONED:]
                self.epochs.cut("epoch", epoch)
            rows.append([_number(getattr(record, c)) for c in EPOCH_COLUMNS])
            self.last_epoch = record.to_json()
        _flush(self.epochs, rows)

    def add_batches(self, records: list[dict]) -> None:
        rows: list[list[float]] = []
        for record in records:
            step = record.get("step")
            if not isinstance(step, int) or isinstance(step, bool):
                continue
            last = self.batches.last("step") if not rows else rows[-1][0]
            if len(self.batches) + len(rows) and step <= last:
                _flush(self.batches, rows)
                rows = []
                size = self.batches.cut("step", step)
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
        _flush(self.batches, rows)

    def current(self, status: Status | None) -> tuple[dict[str, np.ndarray], dict | None, list]:
        """Epoch columns, last epoch record and abandoned branches as ``status`` says the history is now."""
        return after_rewind(status, self.epochs.view(), self.last_epoch, self.abandoned)


def _flush(columns: Columns, rows: list[list[float]]) -> None:
    if rows:
        columns.append(np.array(rows, dtype=float).T)
