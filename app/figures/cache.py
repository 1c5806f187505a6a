"""The server's figures: built once per change of a run's records, shared by every tab.

A page of 30 viewers rerunning every second would otherwise build 30 identical Plotly figures a
second; the key says everything a figure depends on (the run, its log version, the epochs shown).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from app.data import autopilot as ap
from app.figures import autopilot_charts
from app.figures import run_charts as charts
from app.data.runview import RunView
from app.serving.shared import shared
from trainer.contract.jsonl import file_key
from trainer.training.exploration import FORKS



class FigureCache:
    """Figures (or their wire form) shared by every tab, by a key that says all they depend on.

    The one least-recently-used cache of the dashboard's figures: the run page's, the projector's
    and the Sweeps page's each hold one; ``build`` runs outside the lock, at most once per key and miss.
    """

    def __init__(self, size: int = 128):
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.size = size
        self.builds = 0  # how many times a figure was made (tests)

    def get(self, key, build):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        figure = build()
        with self._lock:
            self.builds += 1
            self._items[key] = figure
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return figure


def figure_cache() -> FigureCache:
    """The server's one figure cache (:mod:`app.serving.shared`: a client's "Clear cache" does not empty it)."""
    return shared("figure cache", None, FigureCache)


def figure(view: RunView, kind: str, **options):
    builders = {
        "loss": charts.loss_figure, "accuracy": charts.accuracy_figure,
        "lr": charts.learning_rate_figure, "batch": charts.batch_loss_figure,
    }
    # the epochs shown change without a new record right after a rewind (the status moves first)
    key = (str(view.path), view.log_version, view.n_epochs, len(view.abandoned), kind, tuple(sorted(options.items())))
    return figure_cache().get(key, lambda: builders[kind](view, **options))


def autopilot(view: RunView):
    """``(summary, lookahead figure or None)`` of the run's autopilot (:mod:`app.figures.autopilot_charts`),
    made once per change of its journal or of ``forks.jsonl`` (the file's key), for every session."""
    key = (str(view.path), view.log_version, file_key(view.path / FORKS), "autopilot")

    def build():
        summary = ap.summary(view.events, view.path)
        return summary, autopilot_charts.lookahead_figure(summary)

    return figure_cache().get(key, build)
