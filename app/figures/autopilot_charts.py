"""The autopilot drawn: each decision marked on the loss and α charts, and the latest decision's lookahead.

The lookahead figure is AutoLRS's picture of a stage: every candidate's short loss curve (solid), its fit
a + b·exp(−c·s) dashed out to the stage's horizon, and its predicted loss marked there; the chosen one
bold. Both are built once per change of the run's journal and ``forks.jsonl``, shared by every session
like the other figures (:func:`app.figures.cache.autopilot`).
"""

from __future__ import annotations

import html
import math

import numpy as np
import plotly.graph_objects as go

from app.data import RunView
from app.data import autopilot as ap
from app.figures.decimate import decimate_minmax
from app.figures.interventions import position

#: How a decision is marked: below the interventions' row (a decision's own α change sits on that row).
SYMBOL, COLOR, VETOED_COLOR, ROW = "hexagram", "#0F766E", "#9CA3AF", 0.9
#: Okabe–Ito colours for the candidates (cycled), and how many points a fitted curve is drawn with.
CANDIDATE_COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
FIT_POINTS = 120
#: The largest curve of one candidate drawn (a hostile line may hold millions of points).
MAX_CURVE = 400


def _hover(decision: ap.Decision) -> str:
    head = f"<b>autopilot stage {decision.stage if decision.stage is not None else '?'}</b>"
    what = f"{html.escape(decision.trigger or '?')} → {html.escape(decision.action or '?')}"
    lr = f"α {ap.fmt(decision.from_lr)} → {ap.fmt(decision.to_lr)}"
    return "<br>".join([head, what, lr] + (["<b>vetoed</b>"] if decision.vetoed else []))


def current_decisions(view: RunView) -> list[tuple[float, ap.Decision]]:
    """Each decision on the run's current history with its x (fractional epoch): as with the interventions,
    a rewind or a divergence's rollback drops those made after the point it went back to."""
    made = iter(ap.decisions(view.events))  # in the order of their events
    out: list[tuple[float, ap.Decision]] = []
    for event in view.events:
        name = event.get("event")
        if name in ("rewound", "diverged"):
            x = position(view, event)
            out = [(at, d) for at, d in out if at <= x + 1e-9]
        elif name == "autopilot_stage":
            out.append((position(view, event), next(made)))
    return out


def decision_marks(view: RunView) -> list[dict]:
    """One marker trace (on the charts' hidden 0..1 axis ``y2``) with a point per decision, hover: trigger,
    action, from_lr → to_lr; vetoed ones grey. Empty when the run has no decision."""
    shown = current_decisions(view)
    if not shown:
        return []
    return [dict(type="scatter", x=[x for x, _ in shown], y=[ROW] * len(shown), yaxis="y2", mode="markers",
                 name="autopilot", showlegend=False, hovertext=[_hover(d) for _, d in shown], hoverinfo="text",
                 cliponaxis=False, marker=dict(symbol=SYMBOL, size=14, line=dict(width=1, color="white"),
                                               color=[VETOED_COLOR if d.vetoed else COLOR for _, d in shown]))]


def fitted(fit: dict, horizon: float) -> tuple[list[float], list[float | None]]:
    """The fit a + b·exp(−c·s) on s in [1, horizon] (a value that overflows is left out, as ``None``).

    >>> fitted({"a": 0.2, "b": 1.0, "c": 0.0}, 3)[1][-1]
    1.2
    """
    a, b, c = (fit.get(k) for k in ("a", "b", "c"))
    if a is None or b is None or c is None or not horizon >= 1:
        return [], []
    s = np.linspace(1.0, float(horizon), FIT_POINTS if horizon > FIT_POINTS else max(int(horizon), 2))
    with np.errstate(all="ignore"):
        y = a + b * np.exp(-c * s)
    return s.tolist(), [float(v) if math.isfinite(v) else None for v in y]


def lookahead_figure(summary: ap.Summary) -> go.Figure | None:
    """The latest decision's candidates: curves, fits to the horizon, predictions; ``None`` without a lookahead."""
    decision, record = summary.latest, summary.record
    if decision is None or record is None or not record.candidates:
        return None
    chosen = decision.index if decision.index is not None and decision.index < len(record.candidates) else None
    traces = []
    for i, candidate in enumerate(record.candidates):
        color, strong = CANDIDATE_COLORS[i % len(CANDIDATE_COLORS)], i == chosen
        points = [p for p in candidate.curve if p["step"] is not None and p["loss"] is not None]
        x, y = decimate_minmax(np.array([p["step"] for p in points], dtype=float),
                               np.array([p["loss"] for p in points], dtype=float), MAX_CURVE)
        name = f"α {ap.fmt(candidate.candidate.get('lr'))}" + (" (chosen)" if strong else "")
        group = dict(legendgroup=f"c{i}", opacity=1.0 if strong or chosen is None else 0.55)
        traces.append(dict(type="scatter", x=x, y=y, mode="lines", name=name, line=dict(color=color, width=4 if strong else 2),
                           hovertemplate=f"{name}<br>step %{{x:.0f}}: loss %{{y:.4g}}<extra></extra>", **group))
        horizon = decision.end or (max(x) if len(x) else 0)
        fx, fy = fitted(candidate.fit or {}, horizon)
        if fx:
            traces.append(dict(type="scatter", x=fx, y=fy, mode="lines", name=f"{name} fit", showlegend=False,
                               line=dict(color=color, width=2 if strong else 1.5, dash="dash"),
                               hovertemplate=f"{name} fit<br>step %{{x:.0f}}: %{{y:.4g}}<extra></extra>", **group))
        if candidate.predicted_loss is not None and decision.end is not None:
            traces.append(dict(type="scatter", x=[decision.end], y=[candidate.predicted_loss], mode="markers",
                               name=f"{name} predicted", showlegend=False,
                               marker=dict(color=color, size=14 if strong else 10, symbol="star" if strong else "circle"),
                               hovertemplate=f"{name}: predicted %{{y:.4g}} at step %{{x:.0f}}<extra></extra>", **group))
    layout = dict(height=300, margin=dict(l=10, r=10, t=30, b=10), hovermode="closest",
                  title=dict(text=f"Autopilot stage {decision.stage or '?'}: lookahead", x=0.01, font=dict(size=15)),
                  xaxis=dict(title=dict(text="lookahead step"), rangemode="tozero"), yaxis=dict(title=dict(text="loss")),
                  legend=dict(orientation="h", yanchor="top", y=-0.2))
    return go.Figure(dict(data=traces, layout=layout), _validate=False)

