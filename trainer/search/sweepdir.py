"""The sweep folder: ordinary run directories side by side, plus the sweep's own two files.

::

    runs/                     --run-dir
      my-sweep/               --name
        sweep.json            snapshot (atomic replace): space, seed, settings, rounds, state
        trials.jsonl          append-only: one record per trial state change
        logs/trial-0001.log   each trainer's stdout and stderr
        trial-0001/           a normal run directory (config.json, metrics.jsonl, ...)
        trial-0002/
        ...

The sweep folder never holds a ``config.json``, so :func:`trainer.contract.rundir.iter_runs` finds the
trials one level down as runs and never mistakes the sweep for one. Like the run directory, the
sweep's files are the whole interface: the runner writes them, the dashboard reads them.

A trial's state in ``trials.jsonl`` moves ``queued`` → ``running`` → (``stopping`` →) one of
:data:`FINAL_STATES`. Each record carries ``time``, ``trial``, ``round``, ``state`` and, as they
become known, ``params``, ``pid``, ``best_val_accuracy``, ``best_epoch``, ``epochs``, ``reason``
and ``error``. :meth:`SweepDir.trials` folds them into one dict per trial, the last value winning;
each line is read through :func:`trainer.contract.records.trial_record` (a field of the wrong type is
missing, a line whose ``trial`` is not a run name is left out).

>>> import tempfile, pathlib
>>> sweep = SweepDir(pathlib.Path(tempfile.mkdtemp()) / "s").create()
>>> sweep.append_trial({"trial": "trial-0001", "round": 1, "state": "queued", "params": {"lr": 0.01}})
>>> sweep.append_trial({"trial": "trial-0001", "state": "finished", "best_val_accuracy": 0.9})
>>> sweep.trials()["trial-0001"]["state"], sweep.trials()["trial-0001"]["params"]
('finished', {'lr': 0.01})
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from trainer.contract.config import check_name
from trainer.contract.records import trial_record
from trainer.contract.rundir import (
    CONFIG,
    RunDir,
    RunDirError,
    append_jsonl,
    atomic_write_json,
    read_json,
    read_jsonl,
)

SWEEP_SCHEMA_VERSION = 1
SWEEP = "sweep.json"
TRIALS = "trials.jsonl"
LOGS = "logs"

#: States a trial ends in: trained to the end, crashed, diverged (stopped by the sweep, resumable),
#: stopped early as hopeless, or interrupted by Ctrl-C.
FINAL_STATES = ("finished", "failed", "diverged", "stopped", "interrupted")


class SweepDir:
    """Paths and typed access to one sweep folder. Creating one touches nothing on disk."""

    def __init__(self, path: Path | str):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"SweepDir({str(self.path)!r})"

    @property
    def name(self) -> str:
        return self.path.name

    spec_path = property(lambda self: self.path / SWEEP)
    trials_path = property(lambda self: self.path / TRIALS)
    logs_path = property(lambda self: self.path / LOGS)

    def create(self) -> "SweepDir":
        """Make a fresh sweep folder; an existing path is never reused."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.path.mkdir()
        except FileExistsError:
            raise RunDirError(f"{self.path} already exists; choose another --name") from None
        if (self.path.parent / CONFIG).exists():
            raise RunDirError(f"{self.path.parent} is a run, not a folder of runs; choose another --run-dir")
        self.logs_path.mkdir()
        self.trials_path.touch()
        return self

    def exists(self) -> bool:
        return self.spec_path.exists()

    @staticmethod
    def is_sweep(path: Path | str) -> bool:
        return (Path(path) / SWEEP).is_file()

    # sweep.json
    def read_spec(self) -> dict:
        """``sweep.json``; ``RunDirError`` when it is missing or unusable (not a regular file, not an object)."""
        try:
            spec = read_json(self.spec_path)
        except (OSError, ValueError) as e:
            why = e if isinstance(e, ValueError) else f"{SWEEP} cannot be read"
            raise RunDirError(f"{self.path} is not a usable Panda sweep ({why})") from None
        if spec is None:
            raise RunDirError(f"{self.path} is not a Panda sweep (no {SWEEP})")
        if spec.get("schema_version") != SWEEP_SCHEMA_VERSION:
            raise RunDirError(f"{self.path} uses sweep schema {spec.get('schema_version')}; this Panda reads {SWEEP_SCHEMA_VERSION}")
        return spec

    def write_spec(self, spec: dict) -> None:
        atomic_write_json(self.spec_path, {**spec, "schema_version": SWEEP_SCHEMA_VERSION, "kind": "panda-sweep"})

    # trials.jsonl
    def append_trial(self, record: dict) -> None:
        append_jsonl(self.trials_path, {"time": time.time(), **record})

    def read_trial_records(self) -> list[dict]:
        return read_jsonl(self.trials_path)

    def trials(self, records: list[dict] | None = None) -> dict[str, dict[str, Any]]:
        """Each trial's latest known fields, in the order the trials were first recorded."""
        out: dict[str, dict[str, Any]] = {}
        for raw in self.read_trial_records() if records is None else records:
            record = trial_record(raw)  # every field checked; a name that is no run name is no trial
            if record is None:
                continue
            out.setdefault(record["trial"], {}).update(record)
        return out

    # the trials' run directories
    def trial_run(self, name: str) -> RunDir:
        """The run folder of trial ``name``; ``ValueError`` for a name that is no run name (``../x``)."""
        return RunDir(self.path / check_name(name))

    def log_path(self, name: str) -> Path:
        return self.logs_path / f"{name}.log"
