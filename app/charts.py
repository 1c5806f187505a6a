"""Plotly figures of a run: pure functions from a :class:`~app.data.RunView` to a ``Figure``.

Every chart shares one x axis, epochs (fractional for events and mini-batches, placed by their
optimizer step), so an intervention sits at the same x on every chart. Each intervention —
a learning-rate, beta or batch-size change, a pause, resume, rewind, stop or divergence — is a
dotted vertical line plus a marker at the top whose hover says what happened, who asked and when.

Long runs are decimated before drawing (min/max per bucket for raw curves, so spikes survive;
bucket means for smoothed ones): a browser draws a few thousand points per trace no matter how
many records the run has.
"""

from __future__ import annotations

import html
import math
import time
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import plotly.graph_objects as go

from app.data import RunView
from app.loss_range import loss_range, outlier_marks

#: Colour-blind-safe (Okabe–Ito) colours, readable on a projector.
TRAIN = "#0072B2"
VALIDATION = "#D55E00"
LEARNING_RATE = "#009E73"
BATCH_RAW = "#56B4E9"
BATCH_SMOOTH = "#0072B2"
FONT_SIZE = 15
CHART_HEIGHT = 330
#: Most points drawn per trace.
MAX_POINTS = 2000


@dataclass(frozen=True)
class Kind:
    label: str
    symbol: str
    color: str


#: How each kind of intervention is drawn.
KINDS = {
    "lr": Kind("learning rate", "triangle-down", "#E69F00"),
    "beta": Kind("beta", "diamond", "#CC79A7"),
    "batch_size": Kind("batch size", "square", "#56B4E9"),
    "pause": Kind("pause", "square-open", "#6B7280"),
    "resume": Kind("resume", "triangle-right", "#009E73"),
    "rewind": Kind("rewind", "circle", "#7B3294"),
    "diverged": Kind("divergence", "x", "#C00000"),
    "checkpoint": Kind("checkpoint", "star", "#999933"),
    "stop": Kind("stop", "square-x", "#111827"),
    "restart": Kind("restart", "circle-open", "#374151"),
    "adopt": Kind("adopted (PBT)", "star-triangle-up", "#009E73"),
    "note": Kind("note", "circle-dot", "#6B7280"),
    "several": Kind("several at once", "circle-cross", "#111827"),
}


@dataclass(frozen=True)
class Intervention:
    """Something that changed the course of a run, placed on the epoch axis."""

    x: float
    kind: str
    text: str
    detail: str
    time: float


# --------------------------------------------------------------------------- decimation


def decimate_minmax(x: np.ndarray, y: np.ndarray, max_points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` points that keep every bucket's minimum and maximum (spikes stay)."""
    ok = np.isfinite(y)
    if not ok.all():
        x, y = x[ok], y[ok]
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
    ok = np.isfinite(y)
    if not ok.all():
        x, y = x[ok], y[ok]
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


# --------------------------------------------------------------------------- the epoch axis


def steps_to_epochs(view: RunView, steps: np.ndarray | Sequence[float]) -> np.ndarray:
    """Fractional epochs for optimizer steps, interpolated between the epochs' closing steps."""
    steps = np.asarray(steps, dtype=float)
    ends = view.epochs["step"]
    epochs = view.epochs["epoch"]
    ok = np.isfinite(ends)
    ends, epochs = ends[ok], epochs[ok]
    if len(ends) == 0:
        return np.zeros_like(steps)
    xp = np.concatenate([[0.0], ends]) if ends[0] > 0 else ends
    fp = np.concatenate([[0.0], epochs]) if ends[0] > 0 else epochs
    out = np.interp(steps, xp, fp)
    if len(xp) >= 2:
        per_epoch = max((xp[-1] - xp[-2]) / max(fp[-1] - fp[-2], 1.0), 1.0)
        beyond = steps > xp[-1]
        out[beyond] = fp[-1] + (steps[beyond] - xp[-1]) / per_epoch
    return out


def _position(view: RunView, event: dict) -> float:
    step = event.get("step")
    if isinstance(step, (int, float)) and not isinstance(step, bool) and view.n_epochs:
        return float(steps_to_epochs(view, [step])[0])
    epoch = event.get("epoch")
    return float(epoch) if isinstance(epoch, (int, float)) else 0.0


# --------------------------------------------------------------------------- interventions


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)


def _clock(t) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t)) if isinstance(t, (int, float)) else "?"


def interventions(view: RunView) -> list[Intervention]:
    """The run's interventions on its current history (those undone by a rewind are dropped)."""
    sources = {c["id"]: c for c in view.commands if isinstance(c.get("id"), str)}
    hparams: dict = {}
    out: list[Intervention] = []

    def add(kind: str, event: dict, text: str, extra: str = "") -> None:
        # ``text`` may hold a client's words (a note, a path): the hover is Plotly's HTML, so they are
        # escaped there; the records were scrubbed on reading (trainer.jsonsafe.scrub), so all is UTF-8.
        x = _position(view, event)
        command_id = event.get("command_id")
        command = (sources.get(command_id) if isinstance(command_id, str) else None) or {}
        who = f" by {html.escape(str(command['source']))}" if command.get("source") else ""
        epoch = event.get("epoch") if isinstance(event.get("epoch"), int) else round(x)
        step = event.get("step") if isinstance(event.get("step"), int) else "?"
        detail = (f"<b>{html.escape(text)}</b><br>after epoch {epoch}, step {step}"
                  f"<br>{_clock(event.get('time'))}{who}" + (f"<br>{extra}" if extra else ""))
        out.append(Intervention(x, kind, text, detail, float(event.get("time") or 0.0)))

    for event in view.events:
        name = event.get("event")
        new = event.get("hparams") if isinstance(event.get("hparams"), dict) else None
        if name == "started":
            if event.get("resumed_from"):
                add("restart", event, f"restarted from {event['resumed_from']}")
        elif name == "applied":
            cmd = event.get("cmd")
            if cmd in ("set_lr", "scale_lr") and new:
                how = f" (×{_fmt(event.get('value'))})" if cmd == "scale_lr" else ""
                add("lr", event, f"learning rate {_fmt(hparams.get('lr'))} → {_fmt(new.get('lr'))}{how}")
            elif cmd == "set_beta" and new:
                add("beta", event, f"beta {_fmt(hparams.get('beta'))} → {_fmt(new.get('beta'))}")
            elif cmd == "set_batch_size" and new:
                add("batch_size", event, f"batch size {_fmt(hparams.get('batch_size'))} → {_fmt(new.get('batch_size'))}",
                    "from the next epoch")
            elif cmd == "checkpoint":
                add("checkpoint", event, f"checkpoint {event.get('checkpoint', '')}".strip())
            elif cmd == "stop":
                add("stop", event, "stop requested")
        elif name == "paused":
            add("pause", event, "paused")
        elif name == "resumed":
            add("resume", event, "resumed")
        elif name in ("rewound", "diverged"):
            x = _position(view, event)
            out = [i for i in out if i.x <= x + 1e-9]  # what happened after that point was undone
            if name == "rewound":
                add("rewind", event, f"rewound to {event.get('checkpoint')} (epoch {event.get('to_epoch')})",
                    f"branch {event.get('branch')}")
            else:
                add("diverged", event, "diverged", f"{event.get('reason', '')}<br>rolled back to "
                    f"{event.get('checkpoint')} (branch {event.get('branch')})")
        elif name == "adopted":
            source = str(event.get("source_run") or "").rstrip("/").rsplit("/", 1)[-1]
            add("adopt", event, f"adopted {source}'s {event.get('source_checkpoint')}",
                f"α {_fmt(event.get('lr'))}, branch {event.get('branch')}")
        elif name == "note":
            add("note", event, str(event.get("text") or "note"))
        elif name == "lr_observed":  # another Keras callback or the user's code changed α (PandaCallback)
            add("lr", event, f"learning rate {_fmt(event.get('previous'))} → {_fmt(event.get('lr'))}",
                f"by {event.get('source') or 'someone else'}")
        if new:
            hparams = new
    return out


def group_interventions(items: Iterable[Intervention]) -> list[Intervention]:
    """One intervention per position: those at the same step (a pause, a new α, a resume while paused)
    become one of kind ``several`` whose hover lists them all, so no marker hides another."""
    at: dict[float, list[Intervention]] = {}
    for item in items:
        at.setdefault(round(item.x, 6), []).append(item)
    out = []
    for group in at.values():
        if len(group) == 1:
            out.append(group[0])
            continue
        detail = f"<b>{len(group)} interventions</b><br>" + "<br>".join(i.detail for i in group)
        out.append(Intervention(group[0].x, "several", " · ".join(i.text for i in group), detail, group[0].time))
    return out


def _interventions(items: Iterable[Intervention]) -> tuple[list[dict], list[dict]]:
    """Marker traces (one per kind, on a hidden 0..1 axis, so they sit at the top) and dotted lines."""
    by_kind: dict[str, list[Intervention]] = {}
    for item in group_interventions(items):
        by_kind.setdefault(item.kind, []).append(item)
    traces, shapes = [], []
    for kind, group in by_kind.items():
        style = KINDS[kind]
        traces.append(dict(
            type="scatter", x=[i.x for i in group], y=[1.0] * len(group), yaxis="y2", mode="markers",
            name=style.label, showlegend=False,  # the page explains the symbols once, under the charts
            marker=dict(symbol=style.symbol, size=13, color=style.color, line=dict(width=1, color="white")),
            hovertext=[i.detail for i in group], hoverinfo="text", cliponaxis=False,
        ))
        shapes += [dict(type="line", xref="x", yref="paper", x0=i.x, x1=i.x, y0=0, y1=1,
                        line=dict(color=style.color, width=1.5, dash="dot"), layer="below")
                   for i in group]
    return traces, shapes


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
        marker_traces, shapes = _interventions(interventions(view))
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
    return _figure(traces + marks, layout, view, empty=view.n_epochs == 0)


def _loss_axis(log_y: bool, shown, marked) -> tuple[dict, list[dict]]:
    """A loss chart's y axis: log as asked, else linear from zero fitted to the recent curve
    (:mod:`app.loss_range`), with the points of ``marked`` above it as markers on the top edge."""
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
            x = _position(view, event) if event.get("event") != "started" else float(event.get("epoch") or 0)
            points.append((x, i, float(hp["lr"])))
    if view.last_epoch is None and view.status and isinstance((view.status.get("hparams") or {}).get("lr"), (int, float)):
        points.append((float(view.status.get("epoch") or 0), len(view.events) + 1, float(view.status["hparams"]["lr"])))
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
    return _figure([trace], layout, view)


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


def legend_markdown() -> str:
    """One line that explains the intervention symbols (Streamlit markdown colours)."""
    return " &nbsp; ".join([
        ":orange[▼] learning rate", ":violet[◆] β", ":blue[■] batch size", ":gray[□] pause", ":green[▶] resume",
        ":violet[●] rewind", ":red[✕] divergence", ":gray[★] checkpoint", "⊠ stop", "⊕ several at once",
    ]) + " &nbsp;—&nbsp; hover a marker for who, when and what"
