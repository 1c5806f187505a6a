"""The y-range of a loss chart: set by the recent curve, so an early outlier cannot flatten it.

A run's first epoch often has a loss many times what follows (the bouncing demo's first
validation loss is ~70, its bounce between 0.3 and 3): a linear axis fitted to every point shows
the bounce as a flat line at the bottom. So the range is fitted to the *recent* curve (the epochs
after the first quarter of the run) from zero, and the few points above it are drawn as markers
on the top edge whose hover gives their value: marked, never hidden. When nothing is that far
out (over three times the recent top: a plateau, a short healthy run) the range holds every point,
from zero, so a flat curve looks flat and a falling one falls.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

#: The recent curve is what lies after this share of the x range.
WARM_UP = 0.25
#: Early points are clipped only when they would squash the recent curve below 1/OUTLIER of the axis.
OUTLIER = 3.0
#: Headroom above the highest point shown.
HEADROOM = 1.08
MARKER = "#6B7280"


def loss_range(curves: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[float] | None:
    """``[0, top]`` for a linear loss axis over ``curves`` ((x, y) pairs), or ``None`` when nothing is finite.

    >>> x = np.arange(1.0, 13.0)
    >>> loss_range([(x, np.array([70.0, 7, 4.6, 1.8, 2.6, 1.1, 0.8, 0.6, 0.25, 0.44, 1.6, 1.2]))])
    [0.0, 2.808]
    >>> loss_range([(x[:3], np.array([2.3, 2.31, 2.29]))])
    [0.0, 2.4948]
    """
    xs, ys = _finite(curves)
    if not len(ys):
        return None
    top = float(ys.max())
    recent = ys[xs > xs.min() + WARM_UP * (xs.max() - xs.min())] if len(ys) > 3 else ys
    if len(recent) and 0 < recent.max() and top > OUTLIER * recent.max():
        top = float(recent.max())
    return [0.0, round(max(top, 1e-12) * HEADROOM, 12)]


def outlier_marks(curves: Sequence[tuple[np.ndarray, np.ndarray, str]], top: float) -> dict | None:
    """A marker trace on the top edge for every point of ``curves`` ((x, y, name)) above ``top``."""
    xs, texts = [], []
    for x, y, name in curves:
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        over = np.isfinite(y) & (y > top)
        xs += x[over].tolist()
        texts += [f"{name} {v:.4g} at epoch {e:.0f}<br>(above the chart: its range follows the recent curve)"
                  for e, v in zip(x[over], y[over])]
    if not xs:
        return None
    return dict(type="scatter", x=xs, y=[top] * len(xs), mode="markers", name="above the chart", showlegend=False,
                marker=dict(symbol="triangle-up", size=12, color=MARKER), hovertext=texts, hoverinfo="text",
                cliponaxis=False, meta="outliers")


def _finite(curves) -> tuple[np.ndarray, np.ndarray]:
    parts = [(np.asarray(x, dtype=float), np.asarray(y, dtype=float)) for x, y in curves]
    if not parts:
        return np.array([]), np.array([])
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]
