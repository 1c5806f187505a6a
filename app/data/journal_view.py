"""The journal: every command sent to a run with the trainer's answer, and the trainer's events.

Pure functions from a :class:`~app.data.RunView` to ``pandas`` tables, newest first.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from app.data import RunView

APPLIED, REJECTED, PENDING = "✓ applied", "✗ rejected", "… pending"

COMMAND_COLUMNS = ["time", "source", "command", "value", "answer", "detail", "latency (s)", "id"]
EVENT_COLUMNS = ["time", "event", "epoch", "step", "detail"]


def clock(t) -> str:
    if not isinstance(t, (int, float)):
        return ""
    return time.strftime("%H:%M:%S", time.localtime(t))


def _value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def commands_table(view: RunView) -> pd.DataFrame:
    """One row per command in ``commands.jsonl``: when, who, what, and what the trainer said."""
    rows = []
    for command in view.commands:
        answer = view.answers.get(command.get("id"))
        if answer is None:
            status, detail, latency = PENDING, "", None
        elif answer.get("event") == "applied":
            status = APPLIED
            detail = f"epoch {answer.get('epoch')}, step {answer.get('step')}"
            if answer.get("cmd") in ("set_lr", "scale_lr") and isinstance(answer.get("hparams"), dict):
                detail += f" → α = {_value(answer['hparams'].get('lr'))}"
            latency = _latency(command, answer)
        else:
            status, detail, latency = REJECTED, str(answer.get("reason") or ""), _latency(command, answer)
        rows.append({
            "time": clock(command.get("time")), "source": str(command.get("source") or ""),
            "command": str(command.get("cmd") or "?"), "value": _value(command.get("value")),
            "answer": status, "detail": detail, "latency (s)": latency, "id": str(command.get("id") or ""),
        })
    # Lines the trainer rejected without an id (no way to match them to a command above).
    for event in view.events:
        if event.get("event") == "rejected" and not event.get("command_id"):
            rows.append({
                "time": clock(event.get("time")), "source": "?", "command": str(event.get("cmd") or "?"),
                "value": _value(event.get("value")), "answer": REJECTED,
                "detail": f"line {event.get('line')}: {event.get('reason')}", "latency (s)": None, "id": "",
            })
    frame = pd.DataFrame(rows, columns=COMMAND_COLUMNS)
    return frame.iloc[::-1].reset_index(drop=True)


def _latency(command: dict, answer: dict) -> float | None:
    sent, answered = command.get("time"), answer.get("time")
    if isinstance(sent, (int, float)) and isinstance(answered, (int, float)):
        return round(max(answered - sent, 0.0), 3)
    return None


def _event_detail(event: dict, private: bool = True) -> str:
    """An event in a few words; ``private=False`` (a viewer) leaves out what may name files: errors, source runs."""
    name = event.get("event")
    if name == "started":
        return f"pid {event.get('pid')}" + (f", resumed from {event['resumed_from']}" if event.get("resumed_from") else "")
    if name == "applied":
        return f"{event.get('cmd')} {_value(event.get('value'))}".strip()
    if name == "rejected":
        return f"{event.get('cmd')} {_value(event.get('value'))}: {event.get('reason')}".strip()
    if name == "checkpoint_saved":
        return f"{event.get('checkpoint')} ({event.get('reason')})"
    if name == "rewound":
        return f"to {event.get('checkpoint')} (epoch {event.get('to_epoch')}), branch {event.get('branch')}"
    if name == "diverged":
        return f"{event.get('reason')}; rolled back to {event.get('checkpoint')}"
    if name == "adopted":
        source = event.get("source_run") if private else Path(str(event.get("source_run"))).name
        return (f"{event.get('source_checkpoint')} of {source} (its epoch {event.get('source_epoch')}), "
                f"branch {event.get('branch')}")
    if name == "note":
        return str(event.get("text") or "")
    if name == "finished":
        return str(event.get("reason") or "")
    if name == "failed":
        return str(event.get("error") or "") if private else "(the details are the presenter's)"
    return ""


def events_table(view: RunView, *, include_epoch_checkpoints: bool = False, private: bool = True) -> pd.DataFrame:
    """The trainer's journal; routine end-of-epoch checkpoints are left out unless asked for.

    ``private=False``: for a viewer, without errors or paths (:func:`_event_detail`).
    """
    rows = []
    for event in view.events:
        if not include_epoch_checkpoints and event.get("event") == "checkpoint_saved" and event.get("reason") == "epoch":
            continue
        rows.append({
            "time": clock(event.get("time")), "event": str(event.get("event") or "?"),
            "epoch": event.get("epoch"), "step": event.get("step"), "detail": _event_detail(event, private),
        })
    frame = pd.DataFrame(rows, columns=EVENT_COLUMNS)
    return frame.iloc[::-1].reset_index(drop=True)
