"""A sweep folder as the Sweeps page sees it: the trials, their curves and scores, one table.

Everything here is a pure reader of the files the sweep runner and the trainers write
(:mod:`trainer.search.sweepdir`, :mod:`trainer.rundir`), so it is tested without a browser and
imports neither Streamlit nor Plotly (nor TensorFlow). The one object that lives across page
refreshes, :class:`TrialCurves`, is created by its caller: the page keeps one per sweep in
``st.cache_resource``, a test or a benchmark makes its own.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from trainer.rundir import JsonlTail, RunDirError, current_line
from trainer.search.sweepdir import FINAL_STATES, SweepDir

SCORE = "best_val_accuracy"


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
        """Parameters that actually vary (a choice of one is a fixed value).

        >>> space = {"lr": {"scale": "log", "min": 1e-4, "max": 1}, "decay": {"scale": "choice", "values": ["none"]}}
        >>> SweepView(Path("s"), {"space": space}, {}).searched()
        ['lr']
        """
        out = []
        for name, spec in self.space.items():
            if spec.get("scale") == "choice" and len(spec.get("values") or []) < 2:
                continue
            out.append(name)
        return out

    def value(self, trial: str, param: str) -> Any:
        """The value the sweep gave ``trial`` (its plan), else the one its run started with."""
        params = self.trials.get(trial, {}).get("params") or {}
        if param in params:
            return params[param]
        return self.hparams.get(trial, {}).get(param)


class TrialCurves:
    """Each trial's current history, read incrementally: a refresh parses only appended lines.

    One instance may serve every tab of the server (a lock guards it); a metrics file that was
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


def load_sweep(path: Path | str, curves: TrialCurves | None = None) -> SweepView:
    """Read ``sweep.json``, ``trials.jsonl`` and every trial's metrics (current history).

    ``curves`` keeps what was read for the next call; without it every file is read whole.
    """
    curves = curves if curves is not None else TrialCurves()
    sweep = SweepDir(path)
    spec = sweep.read_spec()
    trials = sweep.trials()
    view = SweepView(sweep.path, spec, trials)
    for name in trials:
        run = sweep.trial_run(name)
        if not run.exists():
            continue
        view.curves[name] = curves.current_line(run)
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
    """How many trials are in each state, every state named (zero included)."""
    states = [t.get("state") for t in view.trials.values()]
    return {s: states.count(s) for s in ("queued", "running", "stopping", *FINAL_STATES)}


def best_trial(view: SweepView) -> str | None:
    """The trial with the highest score so far, or ``None`` while none has one.

    >>> best_trial(SweepView(Path("s"), {}, {"a": {SCORE: 0.8}, "b": {SCORE: 0.9}, "c": {}}))
    'b'
    """
    scored = [(t[SCORE], name) for name, t in view.trials.items() if isinstance(t.get(SCORE), (int, float))]
    return max(scored)[1] if scored else None


def score_param(view: SweepView) -> str:
    """The hyperparameter the score is plotted against: the learning rate when trials have one.

    >>> score_param(SweepView(Path("s"), {"space": {"units": {"scale": "int", "min": 8, "max": 64}}}, {}))
    'units'
    """
    if "lr" in view.searched() or any(view.value(n, "lr") is not None for n in view.trials):
        return "lr"
    return (view.searched() or ["lr"])[0]


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


def spec_text(spec: dict) -> str:
    """A parameter's space as the command line writes it.

    >>> spec_text({"scale": "log", "min": 0.0001, "max": 1})
    'log:0.0001:1'
    >>> spec_text({"scale": "choice", "values": ["sgd", "adam"]}), spec_text({"scale": "choice", "values": [True]})
    ('choice:sgd,adam', 'true')
    """
    if spec.get("scale") == "choice":
        values = [str(v).lower() if isinstance(v, bool) else str(v) for v in spec.get("values") or []]
        return ",".join(values) if len(values) == 1 else "choice:" + ",".join(values)
    return f"{spec.get('scale')}:{spec.get('min'):g}:{spec.get('max'):g}"
