"""Decimation of long curves: a browser draws a few thousand points per trace, however long the run.

Raw curves keep every bucket's minimum and maximum, so a spike survives; already smooth ones are
bucket means.
"""

from __future__ import annotations

import math

import numpy as np

#: Most points drawn per trace.
MAX_POINTS = 2000


def _finite(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The points whose ``y`` is finite: a NaN or inf would poison a bucket's minimum, maximum or mean."""
    ok = np.isfinite(y)
    return (x, y) if ok.all() else (x[ok], y[ok])


def decimate_minmax(x: np.ndarray, y: np.ndarray, max_points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` points that keep every bucket's minimum and maximum (spikes stay)."""
    x, y = _finite(x, y)
    n = len(y)
    if n <= max_points:
        return x, y
    buckets = max_points // 2
    size = math.ceil(n / buckets)
    full = (n // size) * size
    ys = y[:full].reshape(-1, size)
    base = np.arange(0, full, size)
    lo = base + ys.argmin(axis=1)
    hi = base + ys.argmax(axis=1)
    idx = np.sort(np.concatenate([lo, hi, np.arange(full, n)]))
    idx = idx[np.concatenate([[True], np.diff(idx) > 0])]
    return x[idx], y[idx]


def decimate_mean(x: np.ndarray, y: np.ndarray, max_points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` points, each the mean of a bucket (for an already smooth curve)."""
    x, y = _finite(x, y)
    n = len(y)
    if n <= max_points:
        return x, y
    size = math.ceil(n / max_points)
    full = (n // size) * size
    xm = x[:full].reshape(-1, size).mean(axis=1)
    ym = y[:full].reshape(-1, size).mean(axis=1)
    if full < n:
        xm = np.append(xm, x[full:].mean())
        ym = np.append(ym, y[full:].mean())
    return xm, ym
