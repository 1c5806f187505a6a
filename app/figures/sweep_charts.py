"""Plotly figures of a sweep: pure functions from a :class:`~app.data.sweeps.SweepView` to a ``Figure``.

A log-scale parameter is drawn on its own scale everywhere: a log x axis for the learning rate,
log10 bins in its histogram (flat when the sampler did its job), 1 - β in powers of ten for β.
Nothing here imports Streamlit, so every figure is tested without a browser.

Its four figures share one set of axis helpers (each parameter on its own scale, whole ticks, exploit
and steering marks), so they stay in one module.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from app.figures.run_charts import log_ticks
from app.data.sweeps import STEERABLE, SweepView, best_trial, exploits, steering_text
from trainer.contract.file_records import ParamSpec

#: Colour-blind-safe (Okabe–Ito) colours per trial state.
STATE_COLORS = {
    "finished": "#009E73",
    "running": "#0072B2",
    "stopping": "#56B4E9",
    "queued": "#9CA3AF",
    "stopped": "#E69F00",
    "diverged": "#CC79A7",
    "failed": "#D55E00",
    "interrupted": "#6B7280",
}
BEST_COLOR = "#D55E00"
EXPLOIT_COLOR = "#009E73"  # PBT exploits on the curves
OTHER_COLOR = "rgba(0, 114, 178, 0.35)"
STEERED_COLOR = "#111827"
FONT_SIZE = 14
CHART_HEIGHT = 360
#: Up to this many trials in a histogram bar, its axis ticks every trial (1, 2, 3, never 2.5).
FEW_TRIALS = 10


# --------------------------------------------------------------------------- scales on axes


def _exponent_ticks(low: float, high: float) -> tuple[list[float], list[str]]:
    """Ticks at whole powers of ten between two exponents, labelled as the values they stand for.

    >>> _exponent_ticks(-3.2, -0.5)
    ([-4.0, -3.0, -2.0, -1.0, 0.0], ['1e-4', '1e-3', '1e-2', '0.1', '1'])
    """
    lo, hi = math.floor(low), math.ceil(high)
    if hi - lo > 8:
        step = math.ceil((hi - lo) / 8)
    else:
        step = 1
    vals = list(range(lo, hi + 1, step))
    return [float(v) for v in vals], [f"1e{v}" if v not in (0, 1, -1) else {0: "1", 1: "10", -1: "0.1"}[v] for v in vals]


def axis_values(view: SweepView, param: str, names: list[str]) -> tuple[list[float], dict]:
    """A parameter's values as numbers on an axis in its own scale, and the axis' tick labels.

    ``log``: log10(value); ``log1m``: -log10(1 - value); a choice: the index of the value.
    Missing values (β of an sgd trial) are NaN.
    """
    scale = view.scale(param)
    raw = [view.value(n, param) for n in names]
    if scale == "choice" or any(isinstance(v, (str, bool)) for v in raw if v is not None):
        options = list(view.space[param].values) if param in view.space else []
        for v in raw:
            if v is not None and v not in options:
                options.append(v)
        numbers = [float(options.index(v)) if v is not None and v in options else math.nan for v in raw]
        return numbers, {"tickvals": list(range(len(options))), "ticktext": [str(o).lower() if isinstance(o, bool) else str(o) for o in options]}
    numbers = [float(v) if isinstance(v, (int, float)) else math.nan for v in raw]
    if scale == "log":
        warped = [math.log10(v) if v > 0 else math.nan for v in numbers]
        finite = [w for w in warped if math.isfinite(w)] or [0.0]
        tickvals, ticktext = _exponent_ticks(min(finite), max(finite))
        return warped, {"tickvals": tickvals, "ticktext": ticktext}
    if scale == "log1m":
        warped = [-math.log10(1 - v) if v < 1 else math.nan for v in numbers]
        finite = [w for w in warped if math.isfinite(w)] or [1.0]
        tickvals = [float(k) for k in range(math.floor(min(finite)), math.ceil(max(finite)) + 1)]
        return warped, {"tickvals": tickvals, "ticktext": [f"{1 - 10 ** -k:g}" for k in tickvals]}
    return numbers, {}


def _axis_title(view: SweepView, param: str) -> str:
    scale = view.scale(param)
    return {"log": f"{param} (log scale)", "log1m": f"{param} (1 − {param} on a log scale)"}.get(scale, param)


def _layout(fig: go.Figure, title: str, height: int = CHART_HEIGHT) -> go.Figure:
    fig.update_layout(
        title=title, height=height, font={"size": FONT_SIZE}, margin={"l": 60, "r": 20, "t": 50, "b": 50},
        template="plotly_white", legend={"orientation": "h", "y": -0.2},
    )
    return fig


# --------------------------------------------------------------------------- figures


def curves_figure(view: SweepView, metric: str = "val_accuracy", highlight: str | None = None) -> go.Figure:
    """Every trial's ``metric`` per epoch, overlaid; the best trial (or ``highlight``) drawn bold."""
    highlight = highlight or best_trial(view)
    fig = go.Figure()
    for name in view.trials:
        records = view.curves.get(name) or []
        xs = [r["epoch"] for r in records if isinstance(r.get(metric), (int, float))]
        ys = [r[metric] for r in records if isinstance(r.get(metric), (int, float))]
        if not xs:
            continue
        bold = name == highlight
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="lines+markers" if len(xs) < 3 else "lines", name=name,
            line={"width": 3.5 if bold else 1.5, "color": BEST_COLOR if bold else OTHER_COLOR},
            hovertemplate=f"{name}<br>epoch %{{x}}<br>{metric} %{{y:.4f}}<extra></extra>",
            showlegend=bold,
        ))
    if highlight:
        # the bold line on top
        fig.data = tuple(sorted(fig.data, key=lambda tr: tr.name == highlight))
    _mark_exploits(fig, view, metric)
    last = max((x for trace in fig.data for x in (trace.x or ()) if isinstance(x, (int, float))), default=0)
    fig.update_xaxes(title="epoch", tickformat="d", dtick=1 if last <= FEW_TRIALS else None)  # never epoch 1.5
    fig.update_yaxes(title=metric)
    return _layout(fig, f"{metric} of every trial" + (f" · best: {highlight}" if highlight else ""))


def _at_epoch(records: list[dict], epoch, metric: str):
    values = [r[metric] for r in records if r.get("epoch") == epoch and isinstance(r.get(metric), (int, float))]
    return values[-1] if values else None


def _mark_exploits(fig: go.Figure, view: SweepView, metric: str) -> None:
    """PBT exploits on the curves: a star on the target where it adopted, a diamond on the source it copied."""
    for role, symbol in (("target", "star"), ("source", "diamond")):
        xs, ys, texts = [], [], []
        for p in exploits(view):
            name = p.get(role)
            epoch = p.get("target_epoch", p.get("epoch"))
            y = _at_epoch(view.curves.get(name) or [], epoch, metric)
            if y is None:
                continue
            xs.append(epoch)
            ys.append(y)
            texts.append(f"{p.get('target')} adopted {p.get('source')}'s {p.get('checkpoint') or 'newest'} "
                         f"(lr {p.get('lr', 0):.3g}) · {p.get('proposal')}")
        if xs:
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", name=f"PBT exploit ({role})", text=texts,
                                     marker={"symbol": symbol, "size": 12, "color": EXPLOIT_COLOR},
                                     hovertemplate="%{text}<extra></extra>", showlegend=True))


def parallel_coordinates_figure(view: SweepView) -> go.Figure:
    """One line per scored trial across every searched hyperparameter, coloured by its score."""
    names = [n for n, t in view.trials.items() if t.best_val_accuracy is not None]
    dims = []
    for param in view.searched():
        values, ticks = axis_values(view, param, names)
        # the name alone: five axes share 390 px on a phone; the ticks show the scale (1e-4 … 1, 0.9 … 0.999)
        dim = {"label": param, "values": values}
        dim.update(ticks)
        finite = [v for v in values if math.isfinite(v)]
        if view.scale(param) == "int" and finite and not ticks:  # whole ticks on an integer axis, never 2.5
            low, high = int(min(finite)), int(max(finite))
            step = max(1, math.ceil((high - low) / 5))
            dim.update(range=[low, max(high, low + 1)], tickvals=list(range(low, high + 1, step)), tickformat="d")
        dims.append(dim)
    scores = [view.trials[n].best_val_accuracy for n in names]
    score_dim = {"label": "score", "values": scores, "tickformat": ".2f"}
    if scores:  # end labels at round values (0.85, not 0.85278)
        score_dim["range"] = [math.floor(min(scores) * 100) / 100, math.ceil(max(scores) * 100) / 100]
    dims.append(score_dim)
    fig = go.Figure(go.Parcoords(
        line={"color": scores, "colorscale": "Viridis", "showscale": True, "colorbar": {"title": "score"}} if names else {},
        dimensions=dims, labelfont={"size": 12},
    ))
    _layout(fig, "Hyperparameters against score", height=CHART_HEIGHT + 100)
    fig.update_layout(margin={"l": 70, "r": 40, "t": 110, "b": 40})  # room for the axis labels under the title
    return fig


def score_vs_param_figure(view: SweepView, param: str = "lr") -> go.Figure:
    """Best validation accuracy against one hyperparameter; a log x axis for a log-scale one.

    Each trial sits at its sampled value. A trial steered by hand is ringed (the hover says
    what was done), and when ``param`` itself was moved, a dotted line runs to where it is now.
    """
    fig = go.Figure()
    by_state: dict[str, list[str]] = {}
    for name, t in view.trials.items():
        if t.best_val_accuracy is not None and view.value(name, param) is not None:
            by_state.setdefault(t.state or "?", []).append(name)
    for state, names in by_state.items():
        fig.add_trace(go.Scatter(
            x=[view.value(n, param) for n in names], y=[view.trials[n].best_val_accuracy for n in names],
            mode="markers", name=state, text=names, showlegend=True,  # the colours' key, even for one state
            marker={"size": 11, "color": STATE_COLORS.get(state, "#374151"), "line": {"width": 1, "color": "white"}},
            hovertemplate=f"%{{text}}<br>{param} %{{x:.4g}}<br>best val_accuracy %{{y:.4f}}<extra></extra>",
        ))
    _mark_steered(fig, view, param, [n for names in by_state.values() for n in names if view.is_steered(n)])
    scale = view.scale(param)
    log_axis = scale == "log" or (scale is None and param == "lr")
    fig.update_xaxes(title=_axis_title(view, param), type="log" if log_axis else "linear")
    xs = [x for trace in fig.data for x in trace.x if isinstance(x, (int, float)) and x > 0]
    if log_axis and xs:  # 1e-4 as on every other chart, never Plotly's "100μ"
        values, texts = log_ticks(min(xs), max(xs))
        fig.update_xaxes(tickvals=values, ticktext=texts)
    if scale == "log1m":
        # β near 1 on a reversed log axis of 1 - β: plot 1 - β, label it as β
        for trace in fig.data:
            trace.x = [None if x is None else 1 - x for x in trace.x]
            trace.hovertemplate = trace.hovertemplate.replace("%{x:.4g}", "1 − %{x:.3g}")
        fig.update_xaxes(type="log", autorange="reversed", title=f"1 − {param} (log scale; right is closer to 1)")
    fig.update_yaxes(title="best val_accuracy")
    _layout(fig, f"Score against {param}")
    fig.update_layout(showlegend=True, legend_title_text="trial state")
    return fig


def _mark_steered(fig: go.Figure, view: SweepView, param: str, steered: list[str]) -> None:
    """A sweep's plan is only its start: show where a hand took over, so a score is not read as the sample's."""
    if not steered:
        return
    fig.add_trace(go.Scatter(
        x=[view.value(n, param) for n in steered], y=[view.trials[n].best_val_accuracy for n in steered],
        mode="markers", name="steered by hand", text=steered, customdata=[steering_text(view.steering[n]) for n in steered],
        marker={"size": 20, "symbol": "circle-open", "color": STEERED_COLOR, "line": {"width": 2}},
        hovertemplate=f"%{{text}} (steered by hand)<br>{param} %{{x:.4g}} sampled<br>%{{customdata}}<extra></extra>",
    ))
    if param not in STEERABLE:
        return
    moved = [n for n in steered if view.current(n, param) is not None and view.current(n, param) != view.value(n, param)]
    xs: list = []
    ys: list = []
    for n in moved:  # one dotted segment per trial, from the sampled value to the current one
        xs += [view.value(n, param), view.current(n, param), None]
        ys += [view.trials[n].best_val_accuracy] * 2 + [None]
    if moved:
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="lines+markers", name=f"{param} now", text=[n for n in moved for _ in range(3)],
            line={"dash": "dot", "width": 1.5, "color": STEERED_COLOR},
            marker={"symbol": "diamond", "size": [0, 11, 0] * len(moved), "color": STEERED_COLOR},
            hovertemplate=f"%{{text}}<br>{param} %{{x:.4g}}<extra></extra>",
        ))


def _on_axis(scale: str | None, value: float | None) -> float | None:
    """``value`` where :func:`axis_values` puts it (``None`` when it has no place there).

    >>> _on_axis("log", 0.01), _on_axis("log1m", 0.9), _on_axis("log", 0), _on_axis("uniform", 3.0)
    (-2.0, 1.0, None, 3.0)
    """
    if value is None or (scale == "log" and value <= 0) or (scale == "log1m" and value >= 1):
        return None
    return math.log10(value) if scale == "log" else -math.log10(1 - value) if scale == "log1m" else value


def histograms_figure(view: SweepView, bins: int = 12, params: list[str] | None = None) -> go.Figure:
    """How the sampled values spread, each parameter on its sampling scale.

    A log-uniform learning rate gives a flat histogram over log10 bins: each decade got its share.
    ``params``: only these (the page draws one figure per parameter, side by side in columns that
    stack on a phone, so three titles never share 390 px).
    """
    params = view.searched() if params is None else params
    names = list(view.trials)
    if not params:
        return _layout(go.Figure(), "No searched parameters")
    cols = min(3, len(params))
    rows = math.ceil(len(params) / cols)
    single = len(params) == 1
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=None if single else [_axis_title(view, p) for p in params],
                        horizontal_spacing=0.08, vertical_spacing=0.22)
    for i, param in enumerate(params):
        row, col = i // cols + 1, i % cols + 1
        values, ticks = axis_values(view, param, names)
        finite = [v for v in values if math.isfinite(v)]
        scale = view.scale(param)
        if scale == "choice" or (ticks and scale not in ("log", "log1m")):
            labels = ticks.get("ticktext", [])
            heights = [sum(1 for v in finite if v == k) for k in range(len(labels))]
            fig.add_trace(go.Bar(x=labels, y=heights, marker_color="#0072B2", showlegend=False,
                                 hovertemplate="%{x}: %{y} trials<extra></extra>"), row=row, col=col)
            _whole_counts(fig, max(heights, default=0), row, col)
            continue
        if scale == "int" and finite:
            step = max(1, math.ceil((max(finite) - min(finite) + 1) / bins))
            count = math.ceil((max(finite) - min(finite) + 1) / step)  # the last bin holds the largest value
            edges = min(finite) - 0.5 + step * np.arange(count + 1)
        elif finite:
            # the space's bounds on the axis's scale; one it lacks (or that the scale cannot take): the values'
            spec = view.space.get(param, ParamSpec())
            low, high = (_on_axis(scale, bound) for bound in (spec.min, spec.max))
            low, high = min(finite) if low is None else low, max(finite) if high is None else high
            edges = np.linspace(low, high, bins + 1) if high > low else np.array([low - 0.5, low + 0.5])
        else:
            edges = np.array([0.0, 1.0])
        heights, edges = np.histogram(finite, bins=edges)
        centers = (edges[:-1] + edges[1:]) / 2
        fig.add_trace(go.Bar(x=centers, y=heights, width=np.diff(edges) * 0.95, marker_color="#0072B2", showlegend=False,
                             hovertemplate="%{y} trials<extra></extra>"), row=row, col=col)
        _whole_counts(fig, int(heights.max(initial=0)), row, col)
        if ticks:
            fig.update_xaxes(tickvals=ticks["tickvals"], ticktext=ticks["ticktext"], row=row, col=col)
    fig.update_yaxes(title_text="trials", col=1)
    if single:
        return _layout(fig, _axis_title(view, params[0]), height=300)
    return _layout(fig, "Sampled values, each on its own scale", height=260 * rows + 80)


def _whole_counts(fig: go.Figure, most: int, row: int, col: int) -> None:
    """Count axes in whole trials: Plotly would tick a bar of 2 at 0.5, 1, 1.5."""
    fig.update_yaxes(tickformat="d", rangemode="tozero", dtick=1 if most <= FEW_TRIALS else None, row=row, col=col)
