"""A sweep folder as the Sweeps page sees it: the trials, their curves and scores, one table.

Everything here is a pure reader of the files the sweep runner and the trainers write
(:mod:`trainer.search.sweepdir`, :mod:`trainer.contract.rundir`), so it is tested without a browser and
imports neither Streamlit nor Plotly (nor TensorFlow). The one object that lives across page
refreshes, :class:`TrialCurves`, is created by its caller: the page keeps one per sweep in
the server's shared state (:mod:`app.serving.shared`), a test or a benchmark makes its own.

It holds together as one reader of a sweep folder: :class:`SweepView`, :class:`TrialCurves` and the
table functions share the same files and fields.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from trainer.contract.commands import CHANGERS, HPARAM_COMMANDS
from trainer.contract.config import check_name
from trainer.contract.file_records import ParamSpec, RunConfig, SweepSpec, Trial
from trainer.contract.records import Status
from trainer.contract.jsonl import file_key
from trainer.contract.rundir import JsonlTail, RunDir, RunDirError, current_line
from trainer.search.pbt import proposals as pbt_proposals
from trainer.search.pbt import PBT_LOG
from trainer.search.sweepdir import FINAL_STATES, SweepDir

SCORE = "best_val_accuracy"
#: Hyperparameters a user may steer while a trial runs, and the commands that change each (the command table).
STEERABLE = CHANGERS
#: Applied commands after which a trial is no longer only what the sweep sampled.
STEERING = (*HPARAM_COMMANDS, "rewind")


@dataclass
class SweepView:
    """Everything the page draws, read once from the sweep folder."""

    path: Path
    spec: dict
    trials: dict[str, Trial]  # trials.jsonl folded: one typed value per trial (a live one's score so far)
    curves: dict[str, list[dict]] = field(default_factory=dict)  # each trial's current epochs
    hparams: dict[str, dict[str, Any]] = field(default_factory=dict)  # config.json hparams per trial
    now: dict[str, dict[str, Any]] = field(default_factory=dict)  # the steerable hparams in force per trial
    steering: dict[str, list[dict]] = field(default_factory=dict)  # each trial's applied steering events
    pbt: dict[str, dict[str, Any]] = field(default_factory=dict)  # PBT proposals (pbt.jsonl folded), by id
    liveness: dict[str, str] = field(default_factory=dict)  # a live trial's run, as RunDir.liveness judges it
    version: tuple = ()  # equal for two loads through one TrialCurves only if they drew the same (figure caches)

    @property
    def name(self) -> str:
        return self.path.name

    @cached_property
    def sweep(self) -> SweepSpec:
        """``sweep.json`` typed (all defaults when it is unusable): the page reads attributes."""
        return SweepSpec.from_json(self.spec) or SweepSpec()

    @property
    def space(self) -> dict[str, ParamSpec]:
        """The first round's space, in the order the user gave it."""
        return self.sweep.space

    def scale(self, param: str) -> str | None:
        """The scale a parameter was sampled on (the first round's), or ``None`` if it was fixed."""
        spec = self.space.get(param)
        return spec.scale if spec else None

    def searched(self) -> list[str]:
        """Parameters that actually vary (a choice of one is a fixed value).

        >>> space = {"lr": {"scale": "log", "min": 1e-4, "max": 1}, "decay": {"scale": "choice", "values": ["none"]}}
        >>> SweepView(Path("s"), {"space": space}, {}).searched()
        ['lr']
        """
        out = []
        for name, spec in self.space.items():
            if spec.scale == "choice" and len(spec.values) < 2:
                continue
            out.append(name)
        return out

    def value(self, trial: str, param: str) -> Any:
        """The value the sweep gave ``trial`` (its plan), else the one its run started with."""
        params = self.trials[trial].params if trial in self.trials else {}
        if param in params:
            return params[param]
        return self.hparams.get(trial, {}).get(param)

    def current(self, trial: str, param: str) -> Any:
        """The value in force now: what the run reports, else (nothing ran yet) the sampled one."""
        now = self.now.get(trial, {})
        return now[param] if now.get(param) is not None else self.value(trial, param)

    def is_steered(self, trial: str) -> bool:
        """Whether a hand changed α, β, the batch size or the history of ``trial``."""
        return bool(self.steering.get(trial))

    def steered_knobs(self) -> list[str]:
        """The hyperparameters some trial's steering changed, in :data:`STEERABLE` order."""
        cmds = {e.get("cmd") for events in self.steering.values() for e in events}
        return [k for k, changers in STEERABLE.items() if cmds & set(changers)]


def is_steering(event: dict) -> bool:
    """Whether a trainer event is a hand-steering command it applied.

    >>> is_steering({"event": "applied", "cmd": "scale_lr", "value": 0.5})
    True
    >>> is_steering({"event": "rejected", "cmd": "set_lr"}), is_steering({"event": "applied", "cmd": "pause"})
    (False, False)
    """
    return event.get("event") == "applied" and event.get("cmd") in STEERING


def steering_text(events: list[dict]) -> str:
    """What the hand did to a trial, for a hover.

    >>> steering_text([{"cmd": "set_lr", "value": 0.01, "epoch": 3}, {"cmd": "rewind", "value": "epoch-0002", "epoch": 5}])
    'set_lr 0.01 at epoch 3; rewind epoch-0002 at epoch 5'
    """
    parts = []
    for e in events:
        value = f" {e['value']:g}" if isinstance(e.get("value"), (int, float)) else (f" {e['value']}" if e.get("value") is not None else "")
        parts.append(f"{e.get('cmd')}{value}" + (f" at epoch {e['epoch']}" if e.get("epoch") is not None else ""))
    return "; ".join(parts)


def hparams_now(status: dict | None, line: list[dict]) -> dict[str, Any]:
    """The steerable hyperparameters in force: ``status.json``'s (rewritten the moment a command
    is applied), each one it lacks from the last epoch of the current history.

    >>> hparams_now({"hparams": {"lr": 0.5, "beta": None}}, [{"epoch": 1, "lr": 0.1, "beta": 0.9}])
    {'lr': 0.5, 'beta': 0.9}
    """
    reported = Status.from_json(status).hparams
    last = line[-1] if line else {}
    out = {}
    for k in STEERABLE:
        value = reported.get(k) if reported.get(k) is not None else last.get(k)
        if value is not None:
            out[k] = value
    return out


_VERSIONS = itertools.count(1)


class TrialCurves:
    """A sweep folder read incrementally, for every refresh of every tab: a refresh parses only what changed.

    Appended lines (``trials.jsonl``, ``pbt.jsonl``, each trial's ``metrics.jsonl`` and ``events.jsonl``)
    are parsed once; ``config.json`` (written once) is read once per trial; ``status.json`` and
    ``sweep.json`` again only when their (inode, mtime, size) changed. So a refresh of a 200-trial
    sweep whose trials finished is a few hundred ``stat`` calls. One instance may serve every tab of
    the server (a lock guards it); a file that was replaced or cut is read again from the start.
    """

    def __init__(self) -> None:
        self._logs: dict[str, tuple[JsonlTail, list[dict]]] = {}  # metrics.jsonl: every record
        self._events: dict[str, tuple[JsonlTail, list[dict]]] = {}  # events.jsonl: the steering ones
        self._sweep_logs: dict[str, tuple[JsonlTail, list[dict]]] = {}  # trials.jsonl, pbt.jsonl: every line
        self._configs: dict[str, dict] = {}  # a trial's config.json hparams (read once)
        self._snapshots: dict[str, tuple[tuple | None, Any]] = {}  # path -> (file key, what was read)
        self._derived: dict[tuple, tuple[tuple, Any]] = {}  # (what, path) -> (records seen, what was made of them)
        self._runs: dict[tuple[str, str], RunDir] = {}
        self._lock = threading.Lock()
        self.version = next(_VERSIONS)  # a new number whenever anything read was new (unique in the process)
        self.reads = 0  # whole-file reads of snapshots (status, config, spec): what the cache saves

    def _grow(self, logs: dict, path: Path, keep: Callable[[dict], bool] | None = None) -> list[dict]:
        entry = logs.get(str(path))
        if entry is None:
            entry = logs[str(path)] = (JsonlTail(path), [])
        tail, records = entry
        restarts = tail.restarts
        new = tail.read_new()
        if tail.restarts != restarts:
            records.clear()
        records.extend(r for r in new if keep is None or keep(r))
        if new or tail.restarts != restarts:
            self.version = next(_VERSIONS)
        return records

    def _snapshot(self, path: Path, read: Callable[[], Any]) -> Any:
        """``read()`` again only when ``path`` changed (or came, or went) since the last call."""
        key = file_key(path)
        cached = self._snapshots.get(str(path))
        if cached is not None and cached[0] == key:
            return cached[1]
        self.reads += 1
        value = read()
        self._snapshots[str(path)] = (key, value)
        self.version = next(_VERSIONS)
        return value

    def _derive(self, what: str, logs: dict, path: Path, make: Callable[[list[dict]], Any],
                keep: Callable[[dict], bool] | None = None) -> Any:
        """``make(records)`` of a tailed file, made again only when lines were added (or it restarted)."""
        records = self._grow(logs, path, keep)
        seen = (logs[str(path)][0].restarts, len(records))
        cached = self._derived.get((what, str(path)))
        if cached is not None and cached[0] == seen:
            return cached[1]
        value = make(records)
        self._derived[(what, str(path))] = (seen, value)
        return value

    def trial(self, sweep: SweepDir, name: str) -> RunDir:
        """The trial's run folder (``ValueError`` for a name that is no run name), made once."""
        key = (str(sweep.path), name)
        run = self._runs.get(key)
        if run is None:
            run = self._runs[key] = sweep.trial_run(name)
        return run

    def current_line(self, run) -> list[dict]:
        """The trial's current history (shared: read only)."""
        with self._lock:
            return self._derive("line", self._logs, run.metrics_path, current_line)

    def steering(self, run) -> list[dict]:
        """The trial's applied steering commands (:func:`is_steering`), oldest first (shared: read only)."""
        with self._lock:
            return self._derive("steering", self._events, run.events_path, list, is_steering)

    def status(self, run):
        with self._lock:
            return self._snapshot(run.status_path, run.status)

    def hparams(self, run) -> dict:
        """The trial's config.json hparams; read once (a config that cannot be read yet: tried again)."""
        with self._lock:
            key = str(run.path)
            if key not in self._configs:
                self.reads += 1
                try:
                    self._configs[key] = RunConfig.from_json(run.read_config()).hparams
                except RunDirError:
                    return {}
                self.version = next(_VERSIONS)
            return self._configs[key]

    def spec(self, sweep: SweepDir) -> dict:
        with self._lock:
            return self._snapshot(sweep.spec_path, sweep.read_spec)

    def trials(self, sweep: SweepDir) -> dict[str, Trial]:
        """``trials.jsonl`` folded (:meth:`SweepDir.trials`) into typed values; a new table per call."""
        with self._lock:
            folded = self._derive("trials", self._sweep_logs, sweep.trials_path, sweep.trials)
        return {name: Trial(**fields) for name, fields in folded.items()}  # fields checked by trial_record

    def pbt(self, sweep: SweepDir) -> dict[str, dict]:
        """PBT's proposals, ``pbt.jsonl`` folded (shared: read only)."""
        with self._lock:
            return self._derive("pbt", self._sweep_logs, sweep.path / PBT_LOG, pbt_proposals)


def load_sweep(path: Path | str, curves: TrialCurves | None = None) -> SweepView:
    """Read ``sweep.json``, ``trials.jsonl`` and every trial's metrics (current history).

    ``curves`` keeps what was read for the next call; without it every file is read whole.
    """
    curves = curves if curves is not None else TrialCurves()
    sweep = SweepDir(path)
    spec = curves.spec(sweep)
    trials = curves.trials(sweep)
    view = SweepView(sweep.path, spec, trials, pbt=curves.pbt(sweep))
    for name in trials:
        run = curves.trial(sweep, name)
        if not run.exists():
            continue
        view.curves[name] = curves.current_line(run)
        view.steering[name] = curves.steering(run)
        status = curves.status(run)  # typed: another process's file may hold anything
        view.now[name] = hparams_now(status.to_json() if status else None, view.curves[name])
        view.hparams[name] = curves.hparams(run)
        if trials[name].state in ("running", "stopping"):
            # a live trial's best so far, from its metrics (trials.jsonl has it only at the end)
            scores = [r.get("val_accuracy") for r in view.curves[name] if isinstance(r.get("val_accuracy"), (int, float))]
            if scores:
                trials[name] = replace(trials[name], best_val_accuracy=max(scores), epochs=len(view.curves[name]))
            view.liveness[name] = run.liveness(status)
    view.version = (curves.version, tuple((n, t.state, view.liveness.get(n)) for n, t in trials.items()))
    return view


def pending(view: SweepView) -> list[dict]:
    """PBT proposals waiting for Approve / Veto, oldest first."""
    return [p for p in view.pbt.values() if p.get("state") == "pending"]


def exploits(view: SweepView) -> list[dict]:
    """PBT exploits sent to their targets (``applied``), oldest first: what the curves mark."""
    return [p for p in view.pbt.values() if p.get("state") == "applied"]


def trials_frame(view: SweepView) -> pd.DataFrame:
    """One row per trial: name, round, state, score, epochs, each searched hyperparameter as
    sampled, then each steerable one as it is now (``lr now``), whether a hand steered it, a note.

    A steerable hyperparameter the sweep kept fixed gets both columns once some trial was
    steered on it; an empty note is an empty string, not a missing value.
    """
    params = view.searched()
    knobs = [k for k in STEERABLE if k in params or k in view.steered_knobs()]
    fixed = [k for k in knobs if k not in params]
    rows = []
    for name, t in view.trials.items():
        row = {
            "trial": name,
            "round": t.round,
            "state": t.state,
            SCORE: t.best_val_accuracy,
            "best_epoch": t.best_epoch,
            "epochs": t.epochs if t.epochs is not None else len(view.curves.get(name, [])),
        }
        for p in params + fixed:
            row[p] = view.value(name, p)
        for k in knobs:
            row[f"{k} now"] = view.current(name, k)
        row["steered"] = view.is_steered(name)
        row["note"] = t.error or t.reason or ""
        rows.append(row)
    columns = ["trial", "round", "state", SCORE, "best_epoch", "epochs", *params, *fixed, *(f"{k} now" for k in knobs)]
    frame = pd.DataFrame(rows, columns=[*columns, "steered", "note"])
    return frame.sort_values(SCORE, ascending=False, na_position="last", kind="stable").reset_index(drop=True)


def counts(view: SweepView) -> dict[str, int]:
    """How many trials are in each state, every state named (zero included)."""
    states = [t.state for t in view.trials.values()]
    return {s: states.count(s) for s in ("queued", "running", "stopping", *FINAL_STATES)}


def best_trial(view: SweepView) -> str | None:
    """The trial with the highest score so far, or ``None`` while none has one.

    >>> trials = {"a": Trial("a", best_val_accuracy=0.8), "b": Trial("b", best_val_accuracy=0.9), "c": Trial("c")}
    >>> best_trial(SweepView(Path("s"), {}, trials))
    'b'
    """
    scored = [(t.best_val_accuracy, name) for name, t in view.trials.items() if t.best_val_accuracy is not None]
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
    path = view.path / check_name(trial)  # names come from trials.jsonl: never a path out of the sweep
    root = Path(runs_root) if runs_root is not None else view.path.parent
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def spec_text(spec: ParamSpec) -> str:
    """A parameter's space as the command line writes it.

    >>> spec_text(ParamSpec("log", 0.0001, 1))
    'log:0.0001:1'
    >>> spec_text(ParamSpec("choice", values=["sgd", "adam"])), spec_text(ParamSpec("choice", values=[True]))
    ('choice:sgd,adam', 'true')
    >>> spec_text(ParamSpec.from_json({"kind": "float", "low": 0.1}))  # a sweep.json of another shape: shown, never a crash
    'None:?:?'
    """
    def bound(v) -> str:
        return "?" if v is None else f"{v:g}"

    if spec.scale == "choice":
        values = [str(v).lower() if isinstance(v, bool) else str(v) for v in spec.values]
        return ",".join(values) if len(values) == 1 else "choice:" + ",".join(values)
    return f"{spec.scale}:{bound(spec.min)}:{bound(spec.max)}"
