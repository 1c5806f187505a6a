"""``panda export``: a run's metrics and its journal of interventions, as CSV or Parquet tables.

Two tables, for pandas, a spreadsheet, R, DuckDB — any tool that reads CSV or Parquet:

* ``metrics.csv`` — one row per epoch of the run's current history (``--all-branches``: every
  epoch ever trained, rewound branches included), the fields of ``metrics.jsonl``.
* ``journal.csv`` — one row per event of ``events.jsonl`` in order: every command with its answer
  (``applied`` / ``rejected`` and why), who sent it (``source``), when (``sent_time``) and its
  latency (``latency_seconds``, ``latency_steps``); pauses, checkpoints, rewinds, divergences, the
  start and the finish. A command not answered yet is a row with ``event`` = ``pending``.

``--format schedule`` writes ``schedule.json`` instead: the learning rate the run used, step by
step (:mod:`trainer.reports.schedule`), which :class:`trainer.reports.keras_schedule.PandaSchedule` loads.

Nested values (``hparams``, a callback's raw Keras ``logs``) are JSON text, so both formats hold
the same columns. No TensorFlow is imported.

>>> import pandas as pd
>>> table = normalize(pd.DataFrame({"value": [0.1, "ckpt-00002", None], "hparams": [{"lr": 1}, None, None]}))
>>> table["value"][:2].tolist(), table["hparams"][0]
(['0.1', 'ckpt-00002'], '{"lr": 1}')
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from trainer.contract.records import EPOCH_COLUMNS
from trainer.contract.rundir import RunDir, current_line

FORMATS = ("csv", "parquet", "schedule")
METRIC_COLUMNS = EPOCH_COLUMNS  # an epoch record's fields every trainer writes (trainer/contract/records.py), in order
JOURNAL_COLUMNS = ("time", "event", "epoch", "step", "command_id", "cmd", "value", "reason", "source",
                   "sent_time", "received_time", "received_step", "latency_seconds", "latency_steps",
                   "checkpoint", "branch", "to_epoch", "lr")


class ExportError(Exception):
    """An export that cannot be written (a missing library, a bad format)."""


def _ordered(frame: pd.DataFrame, first: tuple[str, ...]) -> pd.DataFrame:
    for column in first:
        if column not in frame.columns:
            frame[column] = None
    rest = [c for c in frame.columns if c not in first]
    return frame[list(first) + rest]


def normalize(frame: pd.DataFrame) -> pd.DataFrame:
    """Make every column one type: nested values and mixed-type columns become JSON text."""
    frame = frame.copy()
    for column in frame.columns:
        values = frame[column]
        if values.dtype != object:
            continue
        kinds = {type(v) for v in values if v is not None and not (isinstance(v, float) and pd.isna(v))}
        if not kinds or kinds == {str}:
            continue
        if kinds <= {int, float} and not any(isinstance(v, bool) for v in values):
            frame[column] = pd.to_numeric(values)
            continue
        frame[column] = [None if v is None or (isinstance(v, float) and pd.isna(v))
                         else v if isinstance(v, str) else json.dumps(v, sort_keys=True) for v in values]
    return frame


def metrics_frame(run: RunDir, all_branches: bool = False) -> pd.DataFrame:
    records = run.read_metrics()
    if not all_branches:
        records = current_line(records)
    return normalize(_ordered(pd.DataFrame.from_records(records), METRIC_COLUMNS))


def journal_frame(run: RunDir) -> pd.DataFrame:
    sent = {c["id"]: c for c in run.read_commands() if isinstance(c.get("id"), str)}
    answered: set[str] = set()
    rows = []
    for event in run.read_events():
        row = dict(event)
        command = sent.get(event.get("command_id")) if event.get("event") in ("applied", "rejected") else None
        if command is not None:
            answered.add(command["id"])
            row["source"] = command.get("source")
            row["sent_time"] = command.get("time")
            if isinstance(command.get("time"), (int, float)) and isinstance(event.get("time"), (int, float)):
                row["latency_seconds"] = event["time"] - command["time"]
            if isinstance(event.get("received_step"), int) and isinstance(event.get("step"), int):
                row["latency_steps"] = event["step"] - event["received_step"]
        if isinstance(event.get("hparams"), dict):
            row["lr"] = event["hparams"].get("lr")
        rows.append(row)
    for command_id, command in sent.items():
        if command_id not in answered and not any(r.get("command_id") == command_id for r in rows):
            rows.append({"time": command.get("time"), "event": "pending", "command_id": command_id,
                         "cmd": command.get("cmd"), "value": command.get("value"),
                         "source": command.get("source"), "sent_time": command.get("time")})
    return normalize(_ordered(pd.DataFrame.from_records(rows), JOURNAL_COLUMNS))


def export_run(run_path: Path | str, fmt: str = "csv", out: Path | str | None = None,
               all_branches: bool = False) -> list[Path]:
    """Write ``metrics.FMT`` and ``journal.FMT``; returns their paths."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ExportError("--format parquet needs pyarrow: pip install 'panda-babysitter[parquet]' "
                              "(or use --format csv)") from None
    run = RunDir(run_path).require()
    run.read_config()  # refuses other schema versions
    if fmt == "schedule":  # the α(step) the run used (trainer.reports.schedule), for a plain model.fit
        from trainer.reports.schedule import write_schedule

        folder = Path(out) if out is not None else run.path / "export"
        folder.mkdir(parents=True, exist_ok=True)
        return [write_schedule(run.path, folder)]
    tables = {"metrics": metrics_frame(run, all_branches), "journal": journal_frame(run)}
    folder = Path(out) if out is not None else run.path / "export"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in tables.items():
        path = folder / f"{name}.{fmt}"
        if fmt == "csv":
            frame.to_csv(path, index=False, errors="backslashreplace")  # text was scrubbed on reading; belt and braces
        else:
            frame.to_parquet(path, index=False, engine="pyarrow")
        written.append(path)
    return written
