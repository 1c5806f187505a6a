"""Plotly figures of a run: pure functions from a :class:`~app.data.RunView` to a ``Figure``.

The parts live side by side: :mod:`app.figures.decimate` thins long curves, :mod:`app.figures.interventions`
reads the journal's interventions and draws their markers on the shared epoch axis,
:mod:`app.figures.loss_range` fits a loss chart's y-range to the recent curve. Their public names are
re-exported here, where the pages and tests have always found them.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from app.data import RunView
from app.figures.autopilot_charts import decision_marks
from app.figures.decimate import MAX_POINTS, decimate_mean, decimate_minmax
from app.figures.interventions import (KINDS, Intervention, Kind, group_interventions, intervention_marks, interventions,
                               legend_markdown, position, steps_to_epochs)
from app.figures.loss_range import loss_range, outlier_marks

__all__ = ["MAX_POINTS", "KINDS", "Intervention", "Kind", "decimate_mean", "decimate_minmax", "group_interventions",
           "interventions", "legend_markdown", "steps_to_epochs", "log_ticks", "loss_figure", "accuracy_figure",
           "learning_rate_series", "learning_rate_figure", "batch_loss_figure", "overlay_figure", "abandoned_traces"]

#: Colour-blind-safe (Okabe–Ito) colours, readable on a projector.
TRAIN = "#0072B2"
VALIDATION = "#D55E00"
LEARNING_RATE = "#009E73"
BATCH_RAW = "#56B4E9"
BATCH_SMOOTH = "#0072B2"
FONT_SIZE = 15
CHART_HEIGHT = 330


def log_ticks(low: float, high: float, most: int = 6) -> tuple[list[float], list[str]]:
    """Readable ticks for a log axis over [low, high]: 1-2-5 steps (fewer when crowded), written ``3e-3``.

    At least two ticks: a narrow range gets 1-2-3-5, then every digit.

    >>> log_ticks(1e-3, 1e-2)
    ([0.001, 0.002, 0.005, 0.01], ['1e-3', '2e-3', '5e-3', '1e-2'])
    """
    if not (low > 0 and high >= low and math.isfinite(high)):
        return [], []
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))

    def ticks(mantissas, every=1):
        return [(m, e) for e in range(first, last + 1) if (e - first) % every == 0 for m in mantissas
                if low * (1 - 1e-9) <= m * 10.0 ** e <= high * (1 + 1e-9)]

    chosen = ticks((1, 2, 5))
    if len(chosen) > most:
        every = 1
        while len(chosen := ticks((1,), every)) > most:
            every += 1
    for mantissas in ((1, 2, 3, 5), range(1, 10)):
        if len(chosen) < 2:
            chosen = ticks(mantissas)
    values = [float(f"{m}e{e}") for m, e in chosen]
    return values, [f"{m}e{e}" if e < 0 else f"{m * 10 ** e:g}" for m, e in chosen]


# --------------------------------------------------------------------------- figures
#
# Figures are assembled as plain dicts and wrapped without validation: Plotly's object model costs
# tens of milliseconds per figure, the dicts well under one, and a live page redraws every second.

_TEMPLATE: dict | None = None


def _template() -> dict:
    global _TEMPLATE
    if _TEMPLATE is None:
        import plotly.io as pio

        _TEMPLATE = pio.templates["plotly_white"].to_plotly_json()
    return _TEMPLATE


def _layout(title: str, y_title: str, revision: str, *, height: int = CHART_HEIGHT, **extra) -> dict:
    layout = dict(
        title=dict(text=title, x=0.01, xanchor="left", font=dict(size=FONT_SIZE + 3)),
        height=height,
        margin=dict(l=10, r=10, t=60, b=10),
        font=dict(size=FONT_SIZE),
        template=_template(),
        hovermode="closest",
        legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1, font=dict(size=FONT_SIZE - 2)),
        xaxis=dict(title=dict(text="epoch", standoff=6), rangemode="tozero", zeroline=False),
        yaxis=dict(title=dict(text=y_title)),
        uirevision=revision,  # keep the user's zoom and hidden traces across live updates
    )
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(layout.get(key), dict):
            layout[key] = {**layout[key], **value}
        else:
            layout[key] = value
    return layout


def _figure(traces: list[dict], layout: dict, view: RunView | None = None, *, markers: bool = True,
            empty: bool = False) -> go.Figure:
    if view is not None and view.n_epochs and np.nanmax(view.epochs["epoch"]) < 8:
        layout["xaxis"] = {**layout["xaxis"], "dtick": 1}  # a short run: whole epochs, never 0.5
    if markers and view is not None:
        marker_traces, shapes = intervention_marks(interventions(view))
        traces = traces + marker_traces
        layout["shapes"] = shapes
        layout["yaxis2"] = dict(overlaying="y", range=[0, 1.04], visible=False, fixedrange=True)
    if empty:
        layout["annotations"] = [dict(text="waiting for the first epoch…", showarrow=False, xref="paper",
                                      yref="paper", x=0.5, y=0.5, font=dict(size=FONT_SIZE + 1, color="#6B7280"))]
    return go.Figure(dict(data=traces, layout=layout), _validate=False)


def _line(x, y, name: str, color: str, *, width: float = 2.5, fmt: str = ".4g", **kw) -> dict:
    return dict(type="scatter", x=x, y=y, name=name, mode="lines", line=dict(color=color, width=width),
                hovertemplate=f"{name}: %{{y:{fmt}}}<br>epoch %{{x:.0f}}<extra></extra>", **kw)


def abandoned_traces(view: RunView, columns: Sequence[tuple[str, str, str]], fmt: str = ".4g") -> list[dict]:
    """The epochs rewinds dropped, faded and dotted: the branches the run left, one legend entry."""
    traces = []
    for branch in view.abandoned:
        for column, name, color in columns:
            x, y = decimate_minmax(branch["epoch"], branch[column])
            traces.append(_line(x, y, "abandoned branch", color, width=1.5, fmt=fmt, opacity=0.35,
                                legendgroup="abandoned", showlegend=not traces))
            traces[-1]["line"]["dash"] = "dot"
            traces[-1]["hovertemplate"] = f"{name} (abandoned): %{{y:{fmt}}}<br>epoch %{{x:.0f}}<extra></extra>"
    return traces


def loss_figure(view: RunView, *, log_y: bool = False) -> go.Figure:
    """Training and validation loss per epoch (and, faded, the epochs rewinds dropped)."""
    e = view.epochs
    columns = (("loss", "train", TRAIN), ("val_loss", "validation", VALIDATION))
    traces = abandoned_traces(view, columns) + [_line(*decimate_minmax(e["epoch"], e[column]), name, color)
                                               for column, name, color in columns]
    shown = [(e["epoch"], e[column], name) for column, name, _ in columns]
    yaxis, marks = _loss_axis(log_y, shown, shown + [(b["epoch"], b[c], f"{n} (abandoned)")
                                                    for b in view.abandoned for c, n, _ in columns])
    layout = _layout("Loss", "loss", f"loss-{view.name}-{log_y}", yaxis=yaxis)
    return _figure(traces + marks + decision_marks(view), layout, view, empty=view.n_epochs == 0)


def _loss_axis(log_y: bool, shown, marked) -> tuple[dict, list[dict]]:
    """A loss chart's y axis: log as asked, else linear from zero fitted to the recent curve
    (:mod:`app.figures.loss_range`), with the points of ``marked`` above it as markers on the top edge."""
    if log_y:
        return dict(type="log"), []
    top = loss_range([(x, y) for x, y, _ in shown])
    if top is None:
        return dict(type="linear", rangemode="tozero"), []
    marks = outlier_marks(marked, top[1])
    return dict(type="linear", range=top, autorange=False), [marks] if marks else []


def accuracy_figure(view: RunView) -> go.Figure:
    """Training and validation accuracy per epoch (and, faded, the epochs rewinds dropped)."""
    e = view.epochs
    columns = (("accuracy", "train", TRAIN), ("val_accuracy", "validation", VALIDATION))
    traces = abandoned_traces(view, columns, fmt=".2%") + [
        _line(*decimate_minmax(e["epoch"], e[column]), name, color, fmt=".2%") for column, name, color in columns]
    values = np.concatenate([e["accuracy"], e["val_accuracy"]])
    values = values[np.isfinite(values)]
    narrow = len(values) and values.max() - values.min() < 0.1  # 10 %, 11 %, 11 %: one more digit
    layout = _layout("Accuracy", "accuracy", f"acc-{view.name}", yaxis=dict(tickformat=".1%" if narrow else ".0%"))
    return _figure(traces, layout, view, empty=view.n_epochs == 0)


def learning_rate_series(view: RunView) -> tuple[np.ndarray, np.ndarray]:
    """The learning rate over epochs as steps: set at the start, changed by commands and decay."""
    # (x, order, lr): an epoch record gives the rate at the *end* of its epoch, so at the same x it
    # comes before the commands that changed it; commands keep their journal order.
    points: list[tuple[float, int, float]] = []
    e = view.epochs
    points += [(float(x), 0, float(y)) for x, y in zip(e["epoch"], e["lr"]) if np.isfinite(y)]
    for i, event in enumerate(view.events, 1):
        hp = event.get("hparams")
        if event.get("event") in ("started", "applied", "lr_observed") and isinstance(hp, dict) and isinstance(hp.get("lr"), (int, float)):
            x = position(view, event) if event.get("event") != "started" else float(event.get("epoch") or 0)
            points.append((x, i, float(hp["lr"])))
    status = view.run_status
    if view.last_epoch is None and status and isinstance(status.hparams.get("lr"), (int, float)) \
            and not isinstance(status.hparams["lr"], bool):
        points.append((float(status.epoch), len(view.events) + 1, float(status.hparams["lr"])))
    if not points:
        return np.array([]), np.array([])
    points.sort(key=lambda p: (p[0], p[1]))
    x, _, y = np.array(points).T
    return decimate_minmax(x, y)


def learning_rate_figure(view: RunView) -> go.Figure:
    """The learning rate α on a log axis."""
    x, y = learning_rate_series(view)
    trace = dict(type="scatter", x=x, y=y, name="learning rate", mode="lines",
                 line=dict(color=LEARNING_RATE, width=2.5, shape="hv"),
                 hovertemplate="α = %{y:.3g}<br>epoch %{x:.0f}<extra></extra>")
    yaxis = dict(type="log")
    finite = y[np.isfinite(y) & (y > 0)] if len(y) else y
    if len(finite):  # a range a little wider than the rates, with 1-2-5 ticks in it
        low, high = float(finite.min()) / 1.6, float(finite.max()) * 1.6
        values, texts = log_ticks(low, high)
        yaxis.update(range=[math.log10(low), math.log10(high)], tickvals=values, ticktext=texts)
    layout = _layout("Learning rate α", "α (log)", f"lr-{view.name}", yaxis=yaxis)
    return _figure([trace] + decision_marks(view), layout, view)


def batch_loss_figure(view: RunView, *, log_y: bool = False) -> go.Figure:
    """Sampled mini-batch losses: raw (faint) and smoothed with an exponential moving average."""
    b = view.batches
    x = steps_to_epochs(view, b["step"])
    rx, ry = decimate_minmax(x, b["loss"], MAX_POINTS)
    sx, sy = decimate_mean(x, b["smooth"], MAX_POINTS // 2)
    traces = [
        dict(type="scatter", x=rx, y=ry, name="batch loss", mode="lines", opacity=0.45,
             line=dict(color=BATCH_RAW, width=1), hovertemplate="batch loss %{y:.4g}<br>epoch %{x:.0f}<extra></extra>"),
        _line(sx, sy, "smoothed", BATCH_SMOOTH),
    ]
    yaxis, marks = _loss_axis(log_y, [(x, b["loss"], "batch loss"), (x, b["smooth"], "smoothed")],
                              [(rx, ry, "batch loss"), (sx, sy, "smoothed")])
    layout = _layout("Mini-batch loss", "loss", f"batch-{view.name}-{log_y}", yaxis=yaxis)
    return _figure(traces + marks, layout, view, empty=len(b["step"]) == 0)


def overlay_figure(views: Sequence[RunView], column: str = "val_loss", *, highlight: str | None = None,
                   log_y: bool = False, max_points: int = 500, labels: dict[str, str] | None = None) -> go.Figure:
    """One metric of many runs on one chart (comparisons, sweeps).

    ``labels`` maps a run's path to its full name (``sweep/trial``); ``highlight`` is such a name.
    """
    traces = []
    for view in views:
        x, y = decimate_minmax(view.epochs["epoch"], view.epochs[column], max_points)
        name = (labels or {}).get(str(view.path), view.name)
        strong = name == highlight
        traces.append(dict(
            type="scatter", x=x, y=y, name=name, mode="lines", line=dict(width=3.5 if strong else 1.8),
            opacity=1.0 if strong or highlight is None else 0.6,
            hovertemplate=f"{name}<br>{column} %{{y:.4g}}<br>epoch %{{x:.0f}}<extra></extra>",
        ))
    label = column.replace("_", " ")
    yaxis = dict(type="log" if log_y else "linear")
    if column.endswith("accuracy"):
        yaxis["tickformat"] = ".0%"
    layout = _layout(f"{label} — {len(views)} run{'' if len(views) == 1 else 's'}", label, f"overlay-{column}-{log_y}", height=CHART_HEIGHT + 60,
                     yaxis=yaxis, showlegend=len(views) <= 12)
    return _figure(traces, layout, markers=False)
