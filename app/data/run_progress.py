"""How far a run is and how long it has left, in words a page can show."""

from __future__ import annotations

import math
import time

import numpy as np

from app.data import RunView

#: Epochs over which the time per epoch is averaged for the ETA.
ETA_WINDOW = 10


def epochs_done(view: RunView) -> tuple[int, int | None]:
    status = view.run_status
    done = status.epoch if status else None
    if not isinstance(done, int):
        done = int(view.epochs["epoch"][-1]) if view.n_epochs else 0
    total = (status.epochs if status else None) or view.run_config.epochs
    return done, (int(total) if isinstance(total, (int, float)) else None)


def paused_intervals(events: list[dict], until: float | None = None) -> list[tuple[float, float]]:
    """When the run was not training: from ``paused`` or ``diverged`` to ``resumed`` (or a new process's
    ``started``), and from a process's end (``finished``, ``failed``) to the next ``started``."""
    out, since = [], None
    for event in events:
        name, t = event.get("event"), event.get("time")
        if not isinstance(t, (int, float)):
            continue
        if name in ("paused", "diverged", "finished", "failed"):
            since = t if since is None else since
        elif name in ("resumed", "started") and since is not None:
            out.append((since, t))
            since = None
    if since is not None:
        out.append((since, until if until is not None else time.time()))
    return out


def _overlap(intervals: list[tuple[float, float]], start: float, end: float) -> float:
    return sum(max(0.0, min(b, end) - max(a, start)) for a, b in intervals)


def seconds_per_epoch(view: RunView) -> float | None:
    """Wall time per epoch over the last few epochs (pace and validation included, pauses left out)."""
    times = view.epochs["time"][-(ETA_WINDOW + 1):]
    times = times[np.isfinite(times)]
    if len(times) >= 2:
        paused = _overlap(paused_intervals(view.events, float(times[-1])), float(times[0]), float(times[-1]))
        return max(float(times[-1] - times[0]) - paused, 0.0) / (len(times) - 1)
    seconds = view.epochs["wall_seconds"][-1:] if view.n_epochs else []
    if not (len(seconds) and math.isfinite(seconds[0])):  # a run older than wall_seconds
        seconds = view.epochs["epoch_seconds"][-1:] if view.n_epochs else []
    if len(seconds) and math.isfinite(seconds[0]):
        return max(float(seconds[0]), view.run_config.pace or 0.0)
    return None


def eta_seconds(view: RunView, state: str) -> float | None:
    done, total = epochs_done(view)
    if total is None or state not in ("running", "starting"):
        return None
    per_epoch = seconds_per_epoch(view)
    if per_epoch is None:
        return None
    return max(total - done, 0) * per_epoch


def compact(value, digits: int = 3) -> str:
    """A number short enough for a card: 3 significant digits, powers of ten written ``1.5e-4``.

    >>> compact(0.00015), compact(0.003), compact(0.0025), compact(1e-5), compact(12345.0), compact("x")
    ('1.5e-4', '0.003', '0.0025', '1e-5', '1.23e4', '—')
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "—"
    if value == 0 or 1e-3 <= abs(value) < 1e4:
        return f"{value:.{digits}g}"
    mantissa, exponent = f"{value:.{digits - 1}e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "—"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def heartbeat_age(view: RunView, at: float | None = None) -> float | None:
    beat = view.run_status.heartbeat if view.run_status else None
    if not isinstance(beat, (int, float)):
        return None
    return max((at or time.time()) - beat, 0.0)


def age_text(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s ago" if seconds < 10 else f"{seconds:.0f} s ago"
    return f"{duration(seconds)} ago"
