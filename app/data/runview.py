"""One run as a page renders it: a consistent snapshot of its records, and its state in words.

:class:`~app.data.rundata.RunData` makes one per render (cheaply: the columns are read-only views);
pages, charts and the projector read only this.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from trainer.contract.outcome import outcome
from trainer.contract.file_records import RunConfig
from trainer.contract.records import EpochRecord, Status
from trainer.contract.rundir import RunDir, pid_alive


@dataclass
class RunView:
    """A consistent snapshot of one run, cheap to take, for one page render."""

    name: str
    path: Path
    version: int  # changes whenever anything changed (the status every heartbeat)
    log_version: int  # changes only when records were appended: what charts depend on
    config: dict | None  # checked (trainer.contract.records.config_record)
    status: dict | None  # typed (trainer.contract.records.Status, as a dict)
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

    @cached_property
    def run_status(self) -> Status | None:
        """``status.json`` typed (``None`` before the trainer wrote one): pages read attributes, not ``.get`` chains."""
        return Status.from_json(self.status) if self.status else None

    @cached_property
    def run_config(self) -> RunConfig:
        """``config.json`` typed (all defaults before the trainer wrote one, or when it is unusable)."""
        return RunConfig.from_json(self.config) or RunConfig()

    @cached_property
    def last_record(self) -> EpochRecord | None:
        """The newest epoch of the current history, typed (``None`` before the first)."""
        return EpochRecord.from_json(self.last_epoch)

    @property
    def hparams(self) -> dict:
        """The hyperparameters in force: the status's, else the configuration's (a run not started yet)."""
        status = self.run_status
        return (status.hparams if status else None) or self.run_config.hparams

    def state(self, at: float | None = None) -> str:
        """The run's state as a user should read it: ``not answering`` when the trainer is gone."""
        if self.missing:
            return "deleted"
        return RunDir(self.path).liveness(self.status or None, at=at) if self.status else (
            "starting" if self.config else "missing")

    def word(self, state: str) -> str:
        """``state`` as the badge says it: a finished run completed, stopped or was interrupted; a gone one was killed."""
        status = self.run_status or Status()
        reason = next((e.get("reason") for e in reversed(self.events) if e.get("event") == "finished"),
                      status.ending)
        return outcome(state, reason=reason,
                       pid_gone=state == "not answering" and not pid_alive(status.pid, status.host))

    @property
    def malformed_total(self) -> int:
        return sum(self.malformed.values())

    @property
    def n_epochs(self) -> int:
        return len(self.epochs["epoch"])
