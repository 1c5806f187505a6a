"""JSON that hostile input cannot break: parsing a log line, cleaning a record, bounding an echo.

Clients write ``commands.jsonl`` and anything may land there: torn lines, values nested thousands
of levels deep, numbers with thousands of digits, ``NaN`` inside a list. Every function here
returns an answer for any input and raises nothing.

>>> parse_line(b'{"id": "a", "cmd": "pa{"id": "b", "cmd": "pause"}')
[None, {'id': 'b', 'cmd': 'pause'}]
>>> clean({"loss": float("nan"), "deep": [1.0, float("inf")]})
{'loss': None, 'deep': [1.0, None]}
>>> preview("x" * 500)["truncated"]
True
"""

from __future__ import annotations

import json
import math
from typing import Any

#: A rejection echoes a value whose JSON is at most this long; a longer one becomes a preview.
MAX_ECHO_CHARS = 200
#: Deeper values are cut (their JSON cannot even be written back by Python's encoder).
MAX_DEPTH = 64
#: How many later starts of a JSON object a torn line is searched for (bounds the work per line).
MAX_RECOVERY_TRIES = 256


def _loads(text: bytes | str) -> Any:
    """``json.loads``, or a sentinel for anything that does not parse (too deep, bad UTF-8, ...)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError, UnicodeDecodeError):
        return _BAD


_BAD = object()


def parse_line(raw: bytes) -> list[dict | None]:
    """The records of one physical line: ``[record]``, ``[None]`` when malformed.

    A line torn by a crash and glued to the next writer's line (``{"id": "a", "cm{"id": "b"...}``)
    gives ``[None, record_b]``: the garbage prefix is one malformed record of its own and the
    complete object that ends the line survives. A prefix that is itself a whole object (only its
    newline was lost) is kept too.
    """
    record = _loads(raw)
    if isinstance(record, dict):
        return [record]
    tries = 0
    start = len(raw)
    while tries < MAX_RECOVERY_TRIES:
        start = raw.rfind(b"{", 0, start)
        if start <= 0:
            break
        tries += 1
        later = _loads(raw[start:])
        if isinstance(later, dict):
            prefix = _loads(raw[:start])
            return [prefix if isinstance(prefix, dict) else None, later]
    return [None]


def clean(value: Any, depth: int = 0) -> Any:
    """``value`` with every non-finite float (at any depth) replaced by ``None``.

    Containers deeper than :data:`MAX_DEPTH` are replaced by ``None``: strict JSON out, always.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        if depth >= MAX_DEPTH:
            return None
        return {k: clean(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if depth >= MAX_DEPTH:
            return None
        return [clean(v, depth + 1) for v in value]
    return value


def _text(value: Any, depth: int = 0) -> str:
    """Compact JSON-like text of any value, never recursing past :data:`MAX_DEPTH`."""
    if isinstance(value, dict):
        if depth >= MAX_DEPTH:
            return "{…}"
        return "{" + ",".join(f"{json.dumps(str(k))}:{_text(v, depth + 1)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        if depth >= MAX_DEPTH:
            return "[…]"
        return "[" + ",".join(_text(v, depth + 1) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int):
        digits = len(str(abs(value))) if abs(value) < 10 ** 4000 else None
        return str(value) if digits is not None and digits <= MAX_ECHO_CHARS else f"<integer of {digits or 'over 4000'} digits>"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else json.dumps(str(value))
    return json.dumps(str(value))


def text_of(value: Any) -> str:
    """Compact JSON-like text of any value, whatever it holds (never raises)."""
    try:
        return _text(value)
    except (RecursionError, ValueError):
        return "<unprintable value>"


def preview(value: Any) -> Any:
    """``value`` as a rejection may echo it: itself (non-finite numbers as ``None``) when short, else a preview.

    A value whose JSON is over :data:`MAX_ECHO_CHARS` characters (or that cannot be written as
    strict JSON at all) becomes ``{"preview": <its first characters>, "truncated": true}``.
    """
    text = text_of(value)
    small = len(text) <= MAX_ECHO_CHARS
    if small and _strict(clean(value)) is not None:
        return clean(value)
    return {"preview": text[:MAX_ECHO_CHARS], "truncated": not small}


def _strict(value: Any) -> str | None:
    """``value``'s strict compact JSON, or ``None`` when it has none (non-finite, too deep)."""
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (ValueError, TypeError, RecursionError):
        return None
