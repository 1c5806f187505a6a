"""The Lessons page's data and figures: the tuning week's ideas, computed, not drawn by hand.

Each panel is a pure function of numbers (draws from Panda's own samplers) or of run directories
that exist, so the page can be tested without a browser and every figure is the real thing.

* :func:`scale_shares`: where N draws of α land, per decade, uniform against log-uniform; the
  same for β against 1 − β, with the averaging window 1 / (1 − β) each β means.
* :func:`grid_vs_random`: nine trials in two dimensions where only one matters: a 3 × 3 grid
  tries three values of it, nine random trials try nine.
* :func:`panda_vs_caviar`: best validation accuracy against epochs spent, for one babysat run
  and for a sweep, from their ``metrics.jsonl``.

>>> g = grid_vs_random(9, seed=0)
>>> g.distinct_grid, g.distinct_random
(3, 9)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import plotly.graph_objects as go

from trainer.rundir import RunDir, current_line
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

    The right-scale draws come from the samplers ``panda sweep`` uses (:mod:`trainer.search.space`).
    """
    rng = np.random.default_rng(seed)
    low, high = ALPHA_RANGE
    decades = [10.0**e for e in range(round(math.log10(low)), round(math.log10(high)) + 1)]
    alpha_uniform = rng.uniform(low, high, n)
    alpha_log = np.array(LogUniform(low, high).sample(rng, n))
    alpha = Shares([f"[{a:g}, {b:g})" for a, b in zip(decades, decades[1:])],
                   _shares(alpha_uniform, decades), _shares(alpha_log, decades))
    b_low, b_high = BETA_RANGE
    beta_edges = [b_low, 0.99, b_high]
    beta_uniform = rng.uniform(b_low, b_high, n)
    beta_log = np.array(Log1mUniform(b_low, b_high).sample(rng, n))
    beta = Shares([f"β in [{a:g}, {b:g}] (averages ~{1 / (1 - a):.0f}–{1 / (1 - b):.0f} steps)"
                   for a, b in zip(beta_edges, beta_edges[1:])],
                  _shares(beta_uniform, beta_edges), _shares(beta_log, beta_edges))
    return alpha, beta


def averaging_window(beta: float) -> float:
    """How many recent steps an exponentially weighted average with ``beta`` roughly remembers.

    >>> averaging_window(0.9), averaging_window(0.999)
    (10.0, 1000.0)
    """
    return round(1.0 / (1.0 - beta), 6)


def shares_figure(shares: Shares, title: str) -> go.Figure:
    fig = go.Figure([
        go.Bar(name="uniform", x=shares.bins, y=shares.uniform, marker_color="#D55E00",
               texttemplate="%{y:.0%}", textposition="outside"),
        go.Bar(name="on the right scale", x=shares.bins, y=shares.right_scale, marker_color="#0072B2",
               texttemplate="%{y:.0%}", textposition="outside"),
    ])
    fig.update_layout(title=title, barmode="group", yaxis=dict(tickformat=".0%", range=[0, 1.1]),
                      font=dict(size=FONT_SIZE), height=380, margin=dict(t=50, b=40, l=50, r=10),
                      legend=dict(orientation="h", y=-0.2))
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
    random = list(zip(alpha.sample(rng, trials), map(float, other.sample(rng, trials))))
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
