r"""JSON and text that hostile input cannot break: parsing a log line, cleaning a record, bounding an echo.

Clients write ``commands.jsonl`` and anything may land there: torn lines, values nested thousands
of levels deep, numbers with thousands of digits, ``NaN`` inside a list, lone UTF-16 surrogates
(``"\udfff"``: valid JSON, but no UTF-8 text, so protobuf, Arrow and a UTF-8 CSV or terminal
refuse it). Every function here returns an answer for any input and raises nothing.

>>> parse_line(b'{"id": "a", "cmd": "pa{"id": "b", "cmd": "pause"}')
[None, {'id': 'b', 'cmd': 'pause'}]
>>> clean({"loss": float("nan"), "deep": [1.0, float("inf")]})
{'loss': None, 'deep': [1.0, None]}
>>> preview("x" * 500)["truncated"]
True
>>> scrub({"note\udfff": ["ok", "bad\ud800"]})
{'note\\udfff': ['ok', 'bad\\ud800']}
>>> print(terminal_text("rejected \x1b[2J\udfff α"))
rejected \x1b[2J\udfff α
"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any

#: A rejection echoes a value whose JSON is at most this long; a longer one becomes a preview.
MAX_ECHO_CHARS = 200
#: Deeper values are cut (their JSON cannot even be written back by Python's encoder).
MAX_DEPTH = 64
#: How many later starts of a JSON object a torn line is searched for.
MAX_RECOVERY_TRIES = 256
#: ... and how many characters those tries may decode in all, as a multiple of the line's length:
#: recovering a torn line is linear work (a try from a later ``{`` decodes at most the rest of the line).
RECOVERY_WORK_FACTOR = 4

_DECODER = json.JSONDecoder()
_TRAILING_SPACE = re.compile(r"[ \t\n\r]*\Z")
#: A lone surrogate in decoded text, or a JSON escape that may decode to one (pairs too: checked after).
_MAYBE_SURROGATE = re.compile(r"[\ud800-\udfff]|\\u[dD][89a-fA-F]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _decode(raw: bytes | str) -> str:
    """A line as text: bytes that are not UTF-8 become lone surrogates (``surrogateescape``), never an error."""
    text = raw if isinstance(raw, str) else raw.decode("utf-8", "surrogateescape")
    return text[1:] if text.startswith("\ufeff") else text  # an editor's byte-order mark


def _object_at(text: str, start: int) -> Any:
    """The JSON value that starts at ``start`` and ends the line, or :data:`_BAD`."""
    try:
        value, end = _DECODER.raw_decode(text, start)
    except (ValueError, RecursionError):
        return _BAD
    return value if _TRAILING_SPACE.match(text, end) else _BAD


_BAD = object()


def parse_line(raw: bytes | str, *, scrub_text: bool = False) -> list[dict | None]:
    """The records of one physical line: ``[record]``, ``[None]`` when malformed.

    A line torn by a crash and glued to the next writer's line (``{"id": "a", "cm{"id": "b"...}``)
    gives ``[None, record_b]``: the garbage prefix is one malformed record of its own and the
    complete object that ends the line survives. A prefix that is itself a whole object (only its
    newline was lost) is kept too. The line is decoded once; the search for the object that ends
    it tries at most :data:`MAX_RECOVERY_TRIES` later ``{`` and decodes at most
    :data:`RECOVERY_WORK_FACTOR` times the line's length in all. ``scrub_text``: every string of
    the records goes through :func:`scrub`.
    """
    text = _decode(raw)
    records = _records(text)
    if scrub_text and may_hold_surrogates(text):
        records = [scrub(r) for r in records]
    return records


def _records(text: str) -> list[dict | None]:
    record = _object_at(text, len(text) - len(text.lstrip(" \t\r\n")))
    if isinstance(record, dict):
        return [record]
    budget = RECOVERY_WORK_FACTOR * len(text)
    start = len(text)
    for _ in range(MAX_RECOVERY_TRIES):
        start = text.rfind("{", 0, start)
        if start <= 0:
            break
        budget -= len(text) - start  # the most this try can decode
        if budget < 0:
            break
        later = _object_at(text, start)
        if isinstance(later, dict):
            head = text[:start]
            prefix = _object_at(head, len(head) - len(head.lstrip(" \t\r\n")))
            return [prefix if isinstance(prefix, dict) else None, later]
    return [None]


# --------------------------------------------------------------------------- text


def safe_text(text: str) -> str:
    """``text`` with each lone surrogate written as its escape (``\\udfff``): always valid UTF-8."""
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def may_hold_surrogates(line: str) -> bool:
    """Whether a line of JSON text can decode to a string with a lone surrogate (a cheap pre-check)."""
    return _MAYBE_SURROGATE.search(line) is not None


def scrub(value: Any) -> Any:
    """``value`` with every string and key made valid UTF-8 (:func:`safe_text`); containers changed in place.

    The one sanitizer for text read from a file a client can write: after it, protobuf
    (Streamlit), Arrow (``st.dataframe``), Plotly and a UTF-8 CSV take every string. Iterative,
    so any depth is fine.
    """
    if isinstance(value, str):
        return safe_text(value)
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            for i, v in enumerate(item):
                if isinstance(v, str):
                    item[i] = safe_text(v)
                elif isinstance(v, (dict, list)):
                    stack.append(v)
        elif isinstance(item, dict):
            if any(isinstance(k, str) and _SURROGATE.search(k) for k in item):
                pairs = [(safe_text(k) if isinstance(k, str) else k, v) for k, v in item.items()]
                item.clear()
                item.update(pairs)
            for k, v in item.items():
                if isinstance(v, str):
                    item[k] = safe_text(v)
                elif isinstance(v, (dict, list)):
                    stack.append(v)
    return value


def find_surrogate(value: Any) -> str | None:
    """Where ``value`` holds a lone surrogate (``"value" → "text"``, ``a key of "value"``), else ``None``."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return where or "the text"
        elif isinstance(item, dict):
            for k, v in item.items():
                name = k if isinstance(k, str) else str(k)
                if _SURROGATE.search(name):
                    return f"a key of {where or 'the object'}"
                stack.append((_path(where, text_of(name)[:40]), v))
        elif isinstance(item, list):
            stack.extend((_path(where, f"[{i}]"), v) for i, v in enumerate(item))
    return None


def _path(where: str, step: str) -> str:
    return f"{where} → {step}" if where else step


def terminal_text(text: str) -> str:
    """``text`` as a terminal may show it: control characters, lone surrogates and other unprintables escaped.

    A client's string reaches a terminal only through this: no escape sequence of its own runs,
    and the result is valid UTF-8 (printable non-ASCII, like α, stays as it is).
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def say(text: str, file: Any = None) -> None:
    """Print one line of ``text`` (to ``file``, default stdout) through :func:`terminal_text`.

    A stream whose encoding lacks a character gets its escape (``\\u03b1``); a closed or broken
    stream drops the line: a terminal costs the line at worst, never the caller.
    """
    stream = file if file is not None else sys.stdout
    try:
        encoding = getattr(stream, "encoding", None) or "utf-8"
        line = terminal_text(text).encode(encoding, "backslashreplace").decode(encoding, "replace")
        print(line, file=stream, flush=True)
    except (OSError, ValueError, LookupError, AttributeError):  # closed, broken pipe, odd encoding, no stream
        pass


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
    strict JSON at all) becomes ``{"preview": <its first characters>, "truncated": true}``. Its
    strings are :func:`scrub`-bed: an echo holds no lone surrogate.
    """
    text = text_of(value)
    small = len(text) <= MAX_ECHO_CHARS
    if small and _strict(clean(value)) is not None:
        return scrub(clean(value))
    return {"preview": text[:MAX_ECHO_CHARS], "truncated": not small}


def _strict(value: Any) -> str | None:
    """``value``'s strict compact JSON, or ``None`` when it has none (non-finite, too deep)."""
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (ValueError, TypeError, RecursionError):
        return None
