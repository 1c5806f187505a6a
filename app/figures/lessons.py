"""The Lessons page's data and figures: the tuning week's ideas, computed, not drawn by hand.

Each panel is a pure function of numbers (draws from Panda's own samplers) or of run directories
that exist, so the page can be tested without a browser and every figure is the real thing.

* :func:`scale_shares`: where N draws of α land, per decade, uniform against log-uniform; the
  same for β against 1 − β, with the averaging window 1 / (1 − β) each β means.
* :func:`grid_vs_random`: nine trials in two dimensions where only one matters: a 3 × 3 grid
  tries three values of it, nine random trials try nine.
* :func:`panda_vs_caviar`: best validation accuracy against epochs spent, for one babysat run
  and for a sweep, from their ``metrics.jsonl``.

It holds the one Lessons page's figures, each a short pure function, so one page maps to one module.

>>> g = grid_vs_random(9, seed=0)
>>> g.distinct_grid, g.distinct_random
(3, 9)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go

from trainer.contract.internals_records import BatchNormStats, InternalsEpoch, Probes
from trainer.contract.rundir import RunDir, current_line

if TYPE_CHECKING:
    from trainer.contract.config import TrainConfig
from trainer.search.space import IntUniform, Log1mUniform, LogUniform

#: α's range in the course, and its decades.
ALPHA_RANGE = (1e-4, 1.0)
#: β's range in the course; the split that shows where uniform draws go.
BETA_RANGE = (0.9, 0.999)
FONT_SIZE = 16


@dataclass(frozen=True)
class Shares:
    """Share of draws per bin, for a uniform draw and for a draw on the right scale."""

    bins: list[str]
    uniform: list[float]
    right_scale: list[float]


def _shares(values: np.ndarray, edges: list[float]) -> list[float]:
    counts, _ = np.histogram(values, bins=edges)
    return [float(c) / max(len(values), 1) for c in counts]


def scale_shares(n: int = 1000, seed: int = 0) -> tuple[Shares, Shares]:
    """(α per decade of [1e-4, 1], β in [0.9, 0.99) against [0.99, 0.999]) for ``n`` draws each way.

    The right-scale draws go through the scales ``panda sweep`` uses (:mod:`trainer.search.params`):
    a uniform number in [0, 1] placed in the range *in the parameter's own scale*.
    """
    rng = np.random.default_rng(seed)
    low, high = ALPHA_RANGE
    decades = [10.0**e for e in range(round(math.log10(low)), round(math.log10(high)) + 1)]
    alpha_uniform = rng.uniform(low, high, n)
    alpha_log = np.array([LogUniform(low, high).from_unit(u) for u in rng.uniform(0, 1, n)])
    alpha = Shares([f"[{a:g}, {b:g})" for a, b in zip(decades, decades[1:])],
                   _shares(alpha_uniform, decades), _shares(alpha_log, decades))
    b_low, b_high = BETA_RANGE
    beta_edges = [b_low, 0.99, b_high]
    beta_uniform = rng.uniform(b_low, b_high, n)
    beta_log = np.array([Log1mUniform(b_low, b_high).from_unit(u) for u in rng.uniform(0, 1, n)])
    beta = Shares([f"β in [{a:g}, {b:g}]<br>averages ~{1 / (1 - a):.0f}–{1 / (1 - b):.0f} steps"
                   for a, b in zip(beta_edges, beta_edges[1:])],
                  _shares(beta_uniform, beta_edges), _shares(beta_log, beta_edges))
    return alpha, beta


def averaging_window(beta: float) -> float:
    """How many recent steps an exponentially weighted average with ``beta`` roughly remembers.

    >>> averaging_window(0.9), averaging_window(0.999)
    (10.0, 1000.0)
    """
    return round(1.0 / (1.0 - beta), 6)


#: A legend above the plot area, left-aligned under the title: it never meets the category labels.
TOP_LEGEND = dict(orientation="h", yanchor="bottom", y=1.02, xanchor="left", x=0)
#: Each panel's title, in lines short enough for a third of a laptop-wide chart.
BN_TITLES = ("z before normalization", "z after normalization", "moving mean, variance<br>→ the batch's")


def shares_figure(shares: Shares, title: str) -> go.Figure:
    fig = go.Figure([
        go.Bar(name="uniform", x=shares.bins, y=shares.uniform, marker_color="#D55E00",
               texttemplate="%{y:.0%}", textposition="outside"),
        go.Bar(name="on the right scale", x=shares.bins, y=shares.right_scale, marker_color="#0072B2",
               texttemplate="%{y:.0%}", textposition="outside"),
    ])
    # the legend sits above the plot, under the title: below it, it met the (two-line) category labels
    fig.update_layout(title=dict(text=title, y=0.98, yanchor="top"), barmode="group",
                      yaxis=dict(tickformat=".0%", range=[0, 1.1]), xaxis=dict(tickangle=0, automargin=True),
                      font=dict(size=FONT_SIZE), height=400, margin=dict(t=90, b=20, l=50, r=10),
                      legend=TOP_LEGEND)
    return fig


@dataclass(frozen=True)
class GridVsRandom:
    """Nine trials each way in two dimensions; ``important`` is the one that matters."""

    grid: list[tuple[float, float]]
    random: list[tuple[float, float]]

    @property
    def distinct_grid(self) -> int:
        return len({round(a, 9) for a, _ in self.grid})

    @property
    def distinct_random(self) -> int:
        return len({round(a, 9) for a, _ in self.random})


def grid_vs_random(trials: int = 9, seed: int = 0) -> GridVsRandom:
    """A √trials × √trials grid against ``trials`` random points; the first coordinate is α (log scale)."""
    side = max(1, round(math.sqrt(trials)))
    alpha = LogUniform(*ALPHA_RANGE)
    other = IntUniform(0, 100)
    grid = [(a, float(b)) for a in alpha.grid(side) for b in other.grid(side)]
    rng = np.random.default_rng(seed)
    random = [(alpha.from_unit(u), float(other.from_unit(v))) for u, v in rng.uniform(0, 1, (trials, 2))]
    return GridVsRandom(grid, random)


def grid_figure(g: GridVsRandom) -> go.Figure:
    fig = go.Figure([
        go.Scatter(x=[a for a, _ in g.grid], y=[b for _, b in g.grid], mode="markers", name="grid",
                   marker=dict(size=14, symbol="square", color="#D55E00")),
        go.Scatter(x=[a for a, _ in g.random], y=[b for _, b in g.random], mode="markers", name="random",
                   marker=dict(size=14, color="#0072B2")),
    ])
    fig.update_layout(title=f"α values tried: grid {g.distinct_grid}, random {g.distinct_random}",
                      xaxis=dict(title="α (the parameter that matters)", type="log"),
                      yaxis=dict(title="a parameter that does not matter"), font=dict(size=FONT_SIZE), height=380,
                      margin=dict(t=50, b=40, l=60, r=10), legend=dict(orientation="h", y=-0.25))
    return fig


@dataclass(frozen=True)
class Budget:
    """Best validation accuracy so far against epochs spent."""

    label: str
    epochs: list[int]
    best: list[float]


def _best_so_far(records: list[dict]) -> list[float]:
    best, out = -math.inf, []
    for r in records:
        value = r.get("val_accuracy")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            best = max(best, float(value))
        out.append(best if best > -math.inf else math.nan)
    return out


def panda_vs_caviar(panda_run: Path | str, sweep_runs: list[Path | str]) -> tuple[Budget, Budget]:
    """One babysat run's curve, and a sweep's trials one after another as the same compute would run them."""
    line = current_line(RunDir(panda_run).read_metrics())
    panda = Budget(f"panda: {Path(panda_run).name}", list(range(1, len(line) + 1)), _best_so_far(line))
    caviar_records: list[dict] = []
    for path in sweep_runs:
        caviar_records += current_line(RunDir(path).read_metrics())
    caviar = Budget(f"caviar: {len(sweep_runs)} trials", list(range(1, len(caviar_records) + 1)),
                    _best_so_far(caviar_records))
    return panda, caviar


def budget_figure(budgets: tuple[Budget, ...]) -> go.Figure:
    fig = go.Figure([go.Scatter(x=b.epochs, y=b.best, mode="lines", name=b.label, line=dict(width=3))
                     for b in budgets])
    fig.update_layout(title="Best validation accuracy for the epochs spent", xaxis_title="epochs trained (compute)",
                      yaxis_title="best val accuracy so far", font=dict(size=FONT_SIZE), height=380,
                      margin=dict(t=50, b=40, l=60, r=10), legend=dict(orientation="h", y=-0.25))
    return fig


# --------------------------------------------------------------------------- the run's insides


@dataclass(frozen=True)
class Internals:
    """A run's ``internals.jsonl``: the probe examples and one record per measured epoch (current branch)."""

    probes: Probes | None
    epochs: list[InternalsEpoch]

    @property
    def latest(self) -> InternalsEpoch | None:
        return self.epochs[-1] if self.epochs else None

    def bn_layers(self) -> list[str]:
        return [b.layer for b in self.latest.batch_norm] if self.latest else []


def read_internals(run_path: Path | str) -> Internals:
    """What the trainer recorded; an old run (no file) or a hostile line gives an empty or shorter one."""
    probes, epochs = None, []
    for record in RunDir(run_path).read_internals():
        if record.get("kind") == "probes":
            probes = Probes.from_json(record) or probes
        elif record.get("kind") == "epoch" and InternalsEpoch.from_json(record) is not None:
            epochs.append(record)
    return Internals(probes, [InternalsEpoch.from_json(r) for r in current_line(epochs)])


def _layer(record: InternalsEpoch, layer: str) -> BatchNormStats | None:
    return next((b for b in record.batch_norm if b.layer == layer), None)


def _series(epochs: list[InternalsEpoch], layer: str, key: str) -> list[float | None]:
    """One statistic (a field of :class:`BatchNormStats`) of ``layer`` at each epoch, ``None`` where it has none."""
    return [getattr(stats, key) if stats else None for stats in (_layer(r, layer) for r in epochs)]


def bn_figure(internals: Internals, layer: str) -> go.Figure:
    """z before and after normalization (latest epoch), and the moving statistics against the batch's."""
    from plotly.subplots import make_subplots

    latest = _layer(internals.latest, layer) if internals.latest else None
    fig = make_subplots(rows=1, cols=3, subplot_titles=BN_TITLES)
    for col, key in ((1, "hist_z"), (2, "hist_normalized")):
        hist = getattr(latest, key) if latest else None
        if hist is not None:
            counts, edges = hist.counts, hist.edges
            width = (edges[1] - edges[0]) / len(counts)
            fig.add_bar(x=[edges[0] + width * (i + 0.5) for i in range(len(counts))], y=counts, width=width,
                        marker_color="#0072B2" if col == 1 else "#009E73", showlegend=False, row=1, col=col)
    x = [r.epoch for r in internals.epochs]
    for key, name, color, dash in (("moving_mean", "moving mean", "#0072B2", "solid"),
                                   ("batch_mean", "batch mean", "#0072B2", "dot"),
                                   ("moving_var", "moving variance", "#D55E00", "solid"),
                                   ("batch_var", "batch variance", "#D55E00", "dot")):
        fig.add_scatter(x=x, y=_series(internals.epochs, layer, key), name=name, mode="lines",
                        line=dict(color=color, dash=dash, width=3), row=1, col=3)
    fig.update_layout(font=dict(size=FONT_SIZE), height=400, margin=dict(t=80, b=40, l=50, r=10),
                      legend=dict(orientation="h", y=-0.2))
    return fig


def bn_modes_figure(internals: Internals) -> go.Figure:
    """Accuracy on the probe with running statistics (test time) against batch statistics."""
    x = [r.epoch for r in internals.epochs]
    fig = go.Figure()
    for key, name, color in (("test_mode", "running statistics (test time)", "#0072B2"),
                             ("train_mode", "batch statistics (training)", "#D55E00")):
        y = [r.bn_accuracy.get(key) for r in internals.epochs]
        fig.add_scatter(x=x, y=y, name=name, mode="lines+markers", line=dict(color=color, width=3))
    fig.update_layout(title="Batch norm at test time: the same weights, two kinds of statistics",
                      xaxis_title="epoch", yaxis=dict(title="probe accuracy", tickformat=".0%"),
                      font=dict(size=FONT_SIZE), height=360, margin=dict(t=50, b=40, l=60, r=10),
                      legend=dict(orientation="h", y=-0.3))
    return fig


def softmax_figure(internals: Internals) -> go.Figure | None:
    """The probe examples (as pictures when they are square images) above their class probabilities."""
    from plotly.subplots import make_subplots

    probes, latest = internals.probes, internals.latest
    rows = latest.softmax if latest else None
    if not probes or not probes.examples or not rows:
        return None
    examples, labels = probes.examples, probes.labels
    n = min(len(examples), len(rows))
    side = math.isqrt(len(examples[0])) if examples and examples[0] else 0
    pictures = side * side == len(examples[0]) and side > 1
    fig = make_subplots(rows=2 if pictures else 1, cols=n, vertical_spacing=0.08,
                        subplot_titles=[f"label {labels[i]}" if i < len(labels) else "" for i in range(n)])
    for i in range(n):
        probs = rows[i]
        guess = max(range(len(probs)), key=lambda c: probs[c] or 0, default=None)  # an empty row: none
        if pictures:
            image = [examples[i][r * side:(r + 1) * side] for r in range(side)]
            fig.add_heatmap(z=image[::-1], colorscale="Greys", showscale=False, row=1, col=i + 1)
        fig.add_bar(x=list(range(len(probs))), y=probs, showlegend=False, row=2 if pictures else 1, col=i + 1,
                    marker_color=["#009E73" if c == guess else "#9CA3AF" for c in range(len(probs))])
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    fig.update_yaxes(range=[0, 1], row=2 if pictures else 1)
    fig.update_layout(title=f"Softmax of {n} probe examples at epoch {latest.epoch} (green: the model's answer)",
                      font=dict(size=FONT_SIZE - 2), height=360, margin=dict(t=80, b=20, l=10, r=10))
    return fig


def confusion_figure(internals: Internals) -> go.Figure | None:
    matrix = internals.latest.confusion if internals.latest else None
    if not matrix:
        return None
    fig = go.Figure(go.Heatmap(z=matrix, colorscale="Blues", texttemplate="%{z}", showscale=False))
    fig.update_layout(title="Confusion on the probe (rows: true class, columns: predicted)",
                      xaxis=dict(title="predicted", dtick=1), yaxis=dict(title="true", dtick=1, autorange="reversed"),
                      font=dict(size=FONT_SIZE), height=420, margin=dict(t=50, b=40, l=60, r=10))
    return fig


def twin_path(run_path: Path | str) -> Path:
    """Where a run's twin without batch norm lives (next to it)."""
    path = Path(run_path)
    return path.with_name(f"{path.name}-no-bn")


def twin_config(config: dict) -> TrainConfig:
    """The run's own configuration (same seed, same data) with batch norm off."""
    from trainer.contract.config import TrainConfig

    twin = TrainConfig.from_dict({**config, "dataset": config.get("dataset_spec", "digits")})
    twin.hparams.batch_norm = False
    twin.argv = []
    return twin


def twin_figure(run_path: Path | str, twin: Path | str) -> go.Figure:
    """Both runs' validation curves: batch norm on against off."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("validation loss", "validation accuracy"))
    for path, name, color in ((run_path, "batch norm on", "#0072B2"), (twin, "batch norm off", "#D55E00")):
        line = current_line(RunDir(path).read_metrics())
        x = [r.get("epoch") for r in line]
        for col, key in ((1, "val_loss"), (2, "val_accuracy")):
            fig.add_scatter(x=x, y=[r.get(key) for r in line], name=name, legendgroup=name, showlegend=col == 1,
                            mode="lines", line=dict(color=color, width=3), row=1, col=col)
    fig.update_layout(font=dict(size=FONT_SIZE), height=360, margin=dict(t=50, b=40, l=50, r=10),
                      legend=dict(orientation="h", y=-0.25))
    return fig
