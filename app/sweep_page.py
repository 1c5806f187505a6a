"""The sweep page: many trials side by side, and a way to hand the promising one to the panda view.

Pure functions build the data (:func:`load_sweep`, :func:`trials_frame`) and the Plotly figures
(:func:`curves_figure`, :func:`parallel_coordinates_figure`, :func:`score_vs_param_figure`,
:func:`histograms_figure`) from a sweep folder, so they can be tested without a browser;
:func:`render_sweep` lays them out with Streamlit. Nothing here imports TensorFlow.

A log-scale parameter is drawn on its own scale everywhere: a log x axis for the learning rate,
log10 bins in its histogram (flat when the sampler did its job), 1 - β in powers of ten for β.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from trainer.rundir import JsonlTail, RunDirError, current_line
from trainer.search.sweepdir import FINAL_STATES, SweepDir

SCORE = "best_val_accuracy"
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
OTHER_COLOR = "rgba(0, 114, 178, 0.35)"
FONT_SIZE = 14
CHART_HEIGHT = 360
#: Seconds between refreshes while the sweep runs.
REFRESH_EVERY = 2.0


# --------------------------------------------------------------------------- data


@dataclass
class SweepView:
    """Everything the page draws, read once from the sweep folder."""

    path: Path
    spec: dict
    trials: dict[str, dict[str, Any]]  # trials.jsonl folded: one dict per trial
    curves: dict[str, list[dict]] = field(default_factory=dict)  # each trial's current epochs
    hparams: dict[str, dict[str, Any]] = field(default_factory=dict)  # config.json hparams per trial

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def space(self) -> dict[str, dict]:
        """The first round's space, in the order the user gave it."""
        space = self.spec.get("space") or {}
        order = [n for n in self.spec.get("param_order") or [] if n in space]
        return {n: space[n] for n in order + [n for n in space if n not in order]}

    def scale(self, param: str) -> str | None:
        """The scale a parameter was sampled on (the first round's), or ``None`` if it was fixed."""
        spec = self.space.get(param)
        return spec.get("scale") if spec else None

    def searched(self) -> list[str]:
        """Parameters that actually vary (a choice of one is a fixed value)."""
        out = []
        for name, spec in self.space.items():
            if spec.get("scale") == "choice" and len(spec.get("values") or []) < 2:
                continue
            out.append(name)
        return out

    def value(self, trial: str, param: str) -> Any:
        params = self.trials.get(trial, {}).get("params") or {}
        if param in params:
            return params[param]
        return self.hparams.get(trial, {}).get(param)


class TrialCurves:
    """Each trial's current history, read incrementally: a refresh parses only appended lines.

    One instance serves every tab of the server (a lock guards it); a metrics file that was
    replaced or cut is read again from the start.
    """

    def __init__(self) -> None:
        self._logs: dict[str, tuple[JsonlTail, list[dict]]] = {}
        self._lock = threading.Lock()

    def current_line(self, run) -> list[dict]:
        with self._lock:
            tail, records = self._logs.setdefault(str(run.metrics_path), (JsonlTail(run.metrics_path), []))
            restarts = tail.restarts
            new = tail.read_new()
            if tail.restarts != restarts:
                records.clear()
            records.extend(new)
            return current_line(records)


_CURVES = TrialCurves()


def load_sweep(path: Path | str) -> SweepView:
    """Read ``sweep.json``, ``trials.jsonl`` and every trial's metrics (current history)."""
    sweep = SweepDir(path)
    spec = sweep.read_spec()
    trials = sweep.trials()
    view = SweepView(sweep.path, spec, trials)
    for name in trials:
        run = sweep.trial_run(name)
        if not run.exists():
            continue
        view.curves[name] = _CURVES.current_line(run)
        try:
            view.hparams[name] = run.read_config().get("hparams") or {}
        except RunDirError:
            view.hparams[name] = {}
        if trials[name].get("state") in ("running", "stopping"):
            # a live trial's best so far, from its metrics (trials.jsonl has it only at the end)
            scores = [r.get("val_accuracy") for r in view.curves[name] if isinstance(r.get("val_accuracy"), (int, float))]
            if scores:
                trials[name][SCORE] = max(scores)
                trials[name]["epochs"] = len(view.curves[name])
            trials[name]["liveness"] = run.liveness()
    return view


def trials_frame(view: SweepView) -> pd.DataFrame:
    """One row per trial: name, round, state, score, epochs, then each searched hyperparameter."""
    params = view.searched()
    rows = []
    for name, t in view.trials.items():
        row = {
            "trial": name,
            "round": t.get("round"),
            "state": t.get("state"),
            SCORE: t.get(SCORE),
            "best_epoch": t.get("best_epoch"),
            "epochs": t.get("epochs", len(view.curves.get(name, []))),
        }
        for p in params:
            row[p] = view.value(name, p)
        row["note"] = t.get("error") or t.get("reason")
        rows.append(row)
    frame = pd.DataFrame(rows, columns=["trial", "round", "state", SCORE, "best_epoch", "epochs", *params, "note"])
    return frame.sort_values(SCORE, ascending=False, na_position="last", kind="stable").reset_index(drop=True)


def counts(view: SweepView) -> dict[str, int]:
    states = [t.get("state") for t in view.trials.values()]
    return {s: states.count(s) for s in ("queued", "running", "stopping", *FINAL_STATES)}


def best_trial(view: SweepView) -> str | None:
    scored = [(t[SCORE], name) for name, t in view.trials.items() if isinstance(t.get(SCORE), (int, float))]
    return max(scored)[1] if scored else None


# --------------------------------------------------------------------------- scales on axes


def _exponent_ticks(low: float, high: float) -> tuple[list[float], list[str]]:
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
        options = list((view.space.get(param) or {}).get("values") or [])
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
    fig.update_xaxes(title="epoch")
    fig.update_yaxes(title=metric)
    if highlight:
        # the bold line on top
        fig.data = tuple(sorted(fig.data, key=lambda tr: tr.name == highlight))
    return _layout(fig, f"{metric} of every trial" + (f" · best: {highlight}" if highlight else ""))


def parallel_coordinates_figure(view: SweepView) -> go.Figure:
    """One line per scored trial across every searched hyperparameter, coloured by its score."""
    names = [n for n, t in view.trials.items() if isinstance(t.get(SCORE), (int, float))]
    dims = []
    for param in view.searched():
        values, ticks = axis_values(view, param, names)
        dim = {"label": _axis_title(view, param).replace(" on a log scale", ", log"), "values": values}
        dim.update(ticks)
        dims.append(dim)
    scores = [view.trials[n][SCORE] for n in names]
    dims.append({"label": "best val_accuracy", "values": scores})
    fig = go.Figure(go.Parcoords(
        line={"color": scores, "colorscale": "Viridis", "showscale": True, "colorbar": {"title": "score"}} if names else {},
        dimensions=dims,
    ))
    _layout(fig, "Hyperparameters against score", height=CHART_HEIGHT + 100)
    fig.update_layout(margin={"l": 70, "r": 40, "t": 110, "b": 40})  # room for the axis labels under the title
    return fig


def score_vs_param_figure(view: SweepView, param: str = "lr") -> go.Figure:
    """Best validation accuracy against one hyperparameter; a log x axis for a log-scale one."""
    fig = go.Figure()
    by_state: dict[str, list[str]] = {}
    for name, t in view.trials.items():
        if isinstance(t.get(SCORE), (int, float)) and view.value(name, param) is not None:
            by_state.setdefault(t.get("state") or "?", []).append(name)
    for state, names in by_state.items():
        fig.add_trace(go.Scatter(
            x=[view.value(n, param) for n in names], y=[view.trials[n][SCORE] for n in names],
            mode="markers", name=state, text=names,
            marker={"size": 11, "color": STATE_COLORS.get(state, "#374151"), "line": {"width": 1, "color": "white"}},
            hovertemplate=f"%{{text}}<br>{param} %{{x:.4g}}<br>best val_accuracy %{{y:.4f}}<extra></extra>",
        ))
    scale = view.scale(param)
    log_axis = scale == "log" or (scale is None and param == "lr")
    fig.update_xaxes(title=_axis_title(view, param), type="log" if log_axis else "linear")
    if scale == "log1m":
        # β near 1 on a reversed log axis of 1 - β: plot 1 - β, label it as β
        for trace in fig.data:
            trace.x = [1 - x for x in trace.x]
            trace.hovertemplate = trace.hovertemplate.replace("%{x:.4g}", "1 − %{x:.3g}")
        fig.update_xaxes(type="log", autorange="reversed", title=f"1 − {param} (log scale; right is closer to 1)")
    fig.update_yaxes(title="best val_accuracy")
    return _layout(fig, f"Score against {param}")


def histograms_figure(view: SweepView, bins: int = 12) -> go.Figure:
    """How the sampled values spread, each parameter on its sampling scale.

    A log-uniform learning rate gives a flat histogram over log10 bins: each decade got its share.
    """
    params = view.searched()
    names = list(view.trials)
    if not params:
        return _layout(go.Figure(), "No searched parameters")
    cols = min(3, len(params))
    rows = math.ceil(len(params) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[_axis_title(view, p) for p in params],
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
            continue
        if scale == "int" and finite:
            edges = np.arange(min(finite) - 0.5, max(finite) + 1.5, max(1, math.ceil((max(finite) - min(finite) + 1) / bins)))
        elif finite:
            spec = view.space.get(param) or {}
            low, high = spec.get("min", min(finite)), spec.get("max", max(finite))
            if scale == "log":
                low, high = math.log10(low), math.log10(high)
            elif scale == "log1m":
                low, high = -math.log10(1 - low), -math.log10(1 - high)
            edges = np.linspace(low, high, bins + 1) if high > low else np.array([low - 0.5, low + 0.5])
        else:
            edges = np.array([0.0, 1.0])
        heights, edges = np.histogram(finite, bins=edges)
        centers = (edges[:-1] + edges[1:]) / 2
        fig.add_trace(go.Bar(x=centers, y=heights, width=np.diff(edges) * 0.95, marker_color="#0072B2", showlegend=False,
                             hovertemplate="%{y} trials<extra></extra>"), row=row, col=col)
        if ticks:
            fig.update_xaxes(tickvals=ticks["tickvals"], ticktext=ticks["ticktext"], row=row, col=col)
    fig.update_yaxes(title_text="trials", col=1)
    return _layout(fig, "Sampled values, each on its own scale", height=260 * rows + 80)


# --------------------------------------------------------------------------- the page


def trial_key(view: SweepView, trial: str, runs_root: Path | str | None = None) -> str:
    """How the single-run view names a trial: its path relative to the dashboard's run folder.

    >>> trial_key(SweepView(Path("runs/s1"), {}, {}), "trial-0003")
    's1/trial-0003'
    """
    path = view.path / trial
    root = Path(runs_root) if runs_root is not None else view.path.parent
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def babysit(key: str) -> None:
    """Open a trial in the single-run view (its controls work there while it runs)."""
    import streamlit as st

    st.session_state["run"] = key
    st.session_state.pop("run_picker", None)  # let the run picker follow
    st.query_params["run"] = key
    st.rerun()


def render_sweep(sweep_path: Path, *, runs_root: Path | str | None = None,
                 on_babysit: Callable[[str], None] | None = None) -> None:
    """Draw the sweep page for ``sweep_path`` (a folder with ``sweep.json``).

    ``runs_root`` is the dashboard's run folder (default: the sweep's parent), so "babysit this
    trial" stores the name the single-run view knows. ``on_babysit(key)`` replaces the default
    action (session state + ``?run=`` + rerun), e.g. to ``st.switch_page`` to the run page too.
    """
    import streamlit as st

    sweep_path = Path(sweep_path)
    if not SweepDir.is_sweep(sweep_path):
        st.error(f"`{sweep_path}` is not a Panda sweep (no sweep.json).")
        return
    try:
        first = load_sweep(sweep_path)
    except RunDirError as e:
        st.error(str(e))
        return
    running = first.spec.get("state") == "running"

    @st.fragment(run_every=REFRESH_EVERY if running else None)
    def live() -> None:
        view = load_sweep(sweep_path)
        _render(view, runs_root, on_babysit or babysit)

    live()


def render_sweeps(runs_root: Path, *, on_babysit: Callable[[str], None] | None = None) -> None:
    """The Sweeps page: pick one of the sweeps under ``runs_root`` (``?sweep=NAME``) and draw it."""
    import streamlit as st

    runs_root = Path(runs_root)
    found = sorted(p.name for p in runs_root.iterdir() if SweepDir.is_sweep(p)) if runs_root.is_dir() else []
    if not found:
        st.info(f"No sweeps in `{runs_root}` yet. Start one with "
                f"`panda sweep --run-dir {runs_root} --name my-sweep --trials 8 --parallel 2`.")
        return
    wanted = st.query_params.get("sweep")
    chosen = st.sidebar.selectbox(f"Sweep ({len(found)} in {runs_root.name}/)", found,
                                  index=found.index(wanted) if wanted in found else len(found) - 1)
    st.query_params["sweep"] = chosen
    render_sweep(runs_root / chosen, runs_root=runs_root, on_babysit=on_babysit)


def _render(view: SweepView, runs_root, on_babysit: Callable[[str], None]) -> None:
    import streamlit as st

    spec = view.spec
    settings = spec.get("settings") or {}
    c = counts(view)
    st.subheader(f"Sweep {view.name}")
    best = best_trial(view)
    space_text = " ".join(f"`{name}={_spec_text(s)}`" for name, s in view.space.items())
    st.caption(
        f"{spec.get('sampler', 'random')} search · {settings.get('trials', '?')} trials × {settings.get('rounds', 1)} round(s) · "
        f"{settings.get('parallel', '?')} at a time · {settings.get('epochs', '?')} epochs · seed {spec.get('seed')} · "
        f"state **{spec.get('state')}** — {space_text}"
    )
    cols = st.columns(5)
    cols[0].metric("Done", c["finished"] + c["stopped"], border=True)
    cols[1].metric("Running", c["running"] + c["stopping"], border=True)
    cols[2].metric("Queued", c["queued"], border=True)
    cols[3].metric("Failed / diverged", c["failed"] + c["diverged"], border=True)
    cols[4].metric("Best val accuracy", f"{view.trials[best][SCORE]:.4f}" if best else "—",
                   delta=best, delta_color="off", border=True)
    rounds = spec.get("rounds") or []
    if len(rounds) > 1:
        with st.expander("Coarse to fine: the space of each round"):
            for r in rounds:
                around = ", ".join(r.get("around") or []) or "—"
                st.markdown(f"**Round {r['round']}** (around {around}): "
                            + " ".join(f"`{n}={_spec_text(r['space'][n])}`" for n in view.space if n in (r.get("space") or {})))

    frame = trials_frame(view)
    left, right = st.columns([3, 2])
    with left:
        st.plotly_chart(curves_figure(view), key=f"sweep-curves-{view.name}")
    with right:
        param = "lr" if "lr" in view.searched() or any(view.value(n, "lr") is not None for n in view.trials) else (view.searched() or ["lr"])[0]
        st.plotly_chart(score_vs_param_figure(view, param), key=f"sweep-lr-{view.name}")

    st.markdown("**Trials** — click a column to sort, a row to select it")
    event = st.dataframe(
        frame, hide_index=True, on_select="rerun", selection_mode="single-row", key=f"sweep-table-{view.name}",
        column_config={
            SCORE: st.column_config.ProgressColumn("best val accuracy", min_value=0.0, max_value=1.0, format="%.4f"),
            "lr": st.column_config.NumberColumn("lr", format="%.3e"),
        },
    )
    selected_rows = (event.selection.rows if event is not None and hasattr(event, "selection") else []) or []
    names = list(frame["trial"])
    default = names[selected_rows[0]] if selected_rows else (best or (names[0] if names else None))
    if names:
        pick_col, button_col = st.columns([3, 1])
        chosen = pick_col.selectbox("Trial", names, index=names.index(default) if default in names else 0,
                                    key=f"sweep-pick-{view.name}-{default}",
                                    format_func=lambda n: f"{n} · {view.trials[n].get('state')} · "
                                    + (f"{view.trials[n][SCORE]:.4f}" if isinstance(view.trials[n].get(SCORE), (int, float)) else "no score"))
        live = view.trials[chosen].get("state") in ("running", "stopping")
        button_col.markdown("&nbsp;")
        if button_col.button("Babysit this trial", icon=":material/visibility:", key=f"sweep-babysit-{view.name}", type="primary",
                             help="open it in the single-run view" + (" — it is still running, so the controls work" if live else "")):
            on_babysit(trial_key(view, chosen, runs_root))

    st.plotly_chart(parallel_coordinates_figure(view), key=f"sweep-parcoords-{view.name}")
    st.plotly_chart(histograms_figure(view), key=f"sweep-hist-{view.name}")


def _spec_text(spec: dict) -> str:
    if spec.get("scale") == "choice":
        values = [str(v).lower() if isinstance(v, bool) else str(v) for v in spec.get("values") or []]
        return ",".join(values) if len(values) == 1 else "choice:" + ",".join(values)
    return f"{spec.get('scale')}:{spec.get('min'):g}:{spec.get('max'):g}"
