"""Tolerant reading of log records for the dashboard: a hostile line never breaks a page.

``commands.jsonl`` is written by any client, so its records (and the trainer's echoes of them in
``events.jsonl``) may hold anything: an id that is a list, a value nested thousands of levels
deep, a number with hundreds of digits. :func:`command` and :func:`event` give every field the
type the pages expect, or ``None``, or bounded text (:func:`trainer.jsonsafe.preview`).

>>> command({"id": ["x"], "cmd": {"a": 1}, "time": 10 ** 400, "value": [float("nan")]})["id"]
'["x"]'
>>> event({"event": "applied", "step": "7", "hparams": {"lr": 0.1, "x": [1]}})["hparams"]
{'lr': 0.1}
"""

from __future__ import annotations

import math
from typing import Any

from trainer.jsonsafe import MAX_ECHO_CHARS, _text, preview

#: Fields that must be plain numbers (anything else reads as missing).
NUMBER_FIELDS = ("time", "epoch", "step", "branch", "to_epoch", "line", "pid", "received_time", "received_step", "lr")
#: Fields that must be text (anything else is shown as its bounded JSON text).
TEXT_FIELDS = ("id", "cmd", "source", "event", "command_id", "reason", "checkpoint", "resumed_from", "error",
               "duplicate_id")


def number(value: Any) -> int | float | None:
    """``value`` when it is a finite int or float of sane size, else ``None``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, int):
        return value if abs(value) < 2**63 else None
    return value if math.isfinite(value) else None


def text(value: Any) -> str | None:
    """``value`` when it is a string (bounded), ``None`` when missing, else its bounded JSON text."""
    if value is None or isinstance(value, str):
        return value if value is None or len(value) <= 10 * MAX_ECHO_CHARS else value[:10 * MAX_ECHO_CHARS] + "…"
    try:
        shown = _text(value)
    except (RecursionError, ValueError):
        shown = "<unprintable>"
    return shown[:MAX_ECHO_CHARS]


def _hparams(value: Any) -> dict | None:
    if not isinstance(value, dict):
        return None
    return {k: v for k, v in value.items()
            if isinstance(k, str) and (isinstance(v, (str, bool)) or v is None or number(v) is not None)}


def _field(key: str, value: Any) -> Any:
    if key in NUMBER_FIELDS:
        return number(value)
    if key in TEXT_FIELDS:
        return text(value)
    if key in ("hparams", "metrics"):
        return _hparams(value)
    return preview(value)


def record(raw: dict) -> dict:
    """Every field of ``raw`` in the type the pages expect (see the tables above)."""
    return {str(k): _field(str(k), v) for k, v in raw.items()}


command = record
event = record
