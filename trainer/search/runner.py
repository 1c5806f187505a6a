"""Run a sweep: ask Optuna for configurations, train each as an ordinary run, tell Optuna the result.

Trials are separate ``python -m trainer train`` processes (on this machine or as Ray tasks, see
:mod:`trainer.search.backends`), not threads: each owns its run directory, so the dashboard can
open, watch and steer any trial like any run, and a trial that crashes takes nothing else with
it. The runner (with :mod:`trainer.search.trials`, its process-supervising half) only starts
trainers, reads what they write (``metrics.jsonl``, ``status.json``)
and, to stop one early, appends a ``stop`` command — the same contract every other client uses.

The sweep's state is its Optuna study (:mod:`trainer.search.study`): every trial is asked from
it, reported to it epoch by epoch (from the run directory, so the pruner judges what the trial
really did, steering included) and told its outcome. ``sweep.json`` and ``trials.jsonl`` keep
what the dashboard reads. :meth:`SweepRunner.resume` reopens both and continues: finished trials
are kept, unfinished ones resumed from their checkpoints or run again, and nothing runs twice.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from trainer.contract.rundir import RunDirError
from trainer.search.backends import make_backend
from trainer.search.pbt import PbtScheduler, check_pbt, population
from trainer.search.progress import Progress, summarize
from trainer.search.refine import narrow, top_trials
from trainer.search.samplers import make_sampler
from trainer.search.settings import SWEEP_OPTIONS, SweepSettings, TrialPlan, check_space, plan_round, trial_name
from trainer.search.space import SearchSpace
from trainer.search.stopping import make_pruner
from trainer.search.study import JOURNAL, PARAMS_ATTR, ROUND_ATTR, TRIAL_ATTR, open_study
from trainer.search.sweepdir import FINAL_STATES, SweepDir
from trainer.search.trials import KILL_GRACE_SECONDS, TrialSupervision, _Trial

__all__ = ["SweepRunner", "SweepSettings", "SWEEP_OPTIONS", "TrialPlan", "Progress", "check_space", "plan_round",
           "summarize", "KILL_GRACE_SECONDS"]

#: Optuna trial states a resumed sweep keeps as they are.
_DONE = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


class SweepRunner(TrialSupervision):
    """Run every round of a sweep, writing the study, ``sweep.json`` and ``trials.jsonl`` as it goes."""

    def __init__(self, sweep: SweepDir, space: SearchSpace, settings: SweepSettings, *, command: list[str] | None = None,
                 progress: Progress | None = None, poll_seconds: float = 0.5, kill_grace: float = KILL_GRACE_SECONDS,
                 env: dict[str, str] | None = None, argv: list[str] | None = None, backend=None):
        self.sweep = sweep
        self.space = space
        self.settings = settings.validate()
        check_space(space)
        check_pbt(self.settings, space)
        self.pbt: PbtScheduler | None = None  # population-based training (trainer/search/pbt.py), made in run()
        self.command = command  # the trainer program; None: python -m trainer (tests substitute a stand-in)
        self.progress = progress or Progress(enabled=False)
        self.poll_seconds = poll_seconds
        self.kill_grace = kill_grace
        self.env = {"TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
        self.argv = argv
        self.backend = backend
        self.pruner = make_pruner(settings.early_stop, settings.grace, settings.epochs)
        self.results: dict[str, dict[str, Any]] = {}  # trial -> {trial, round, params, state, best_val_accuracy, ...}
        self.running: dict[str, _Trial] = {}
        self.queue: deque[str] = deque()
        self.round = 0
        self.spec: dict[str, Any] = {}
        self.study: optuna.Study | None = None
        self._resuming = False
        self._wake = threading.Event()

    @classmethod
    def resume(cls, path: Path | str, **kwargs: Any) -> "SweepRunner":
        """A runner that continues the sweep at ``path`` (``RunDirError`` if it is not one)."""
        sweep = SweepDir(path)
        if not SweepDir.is_sweep(sweep.path):
            raise RunDirError(f"{sweep.path} is not a Panda sweep (no sweep.json); nothing to resume")
        spec = sweep.read_spec()
        if not (sweep.path / JOURNAL).is_file():
            raise RunDirError(f"{sweep.path} has no Optuna journal ({JOURNAL}): it was made by an older Panda "
                              "and cannot be resumed")
        if spec.get("state") == "finished":
            raise RunDirError(f"{sweep.path} already finished; nothing to resume")
        settings = SweepSettings.from_json(spec["settings"])
        space = SearchSpace.from_json({k: spec["space"][k] for k in spec.get("param_order", spec["space"])})
        runner = cls(sweep, space, settings, **kwargs)
        runner.spec = dict(spec)
        runner.results = sweep.trials()
        runner._resuming = True
        return runner

    # ------------------------------------------------------------------ bookkeeping

    def _record(self, name: str, **fields: Any) -> None:
        result = self.results.setdefault(name, {"trial": name})
        result.update(fields)
        self.sweep.append_trial({"trial": name, "round": result.get("round"), **fields})

    def counts(self) -> dict[str, Any]:
        states = [r.get("state") for r in self.results.values()]
        best = top_trials(self.results.values(), 1)
        return {
            "round": self.round, "rounds": self.settings.rounds, "total": len(states),
            "queued": states.count("queued"), "running": states.count("running") + states.count("stopping"),
            **{state: states.count(state) for state in FINAL_STATES}, "best": best[0] if best else None,
        }

    def progress_line(self) -> str:
        c = self.counts()
        done = c["finished"] + c["stopped"]
        parts = [f"round {c['round']}/{c['rounds']}", f"done {done}/{c['total']}", f"running {c['running']}"]
        parts += [f"{state} {c[state]}" for state in ("failed", "diverged", "stopped", "interrupted") if c[state]]
        if c["best"]:
            parts.append(f"best {c['best']['best_val_accuracy']:.4f} ({c['best']['trial']})")
        return " · ".join(parts)

    def _refresh(self) -> None:
        self.progress.update(self.progress_line())

    def _write_spec(self, **fields: Any) -> None:
        self.spec.update(fields)
        self.sweep.write_spec(self.spec)

    # ------------------------------------------------------------------ rounds

    def run(self, first_round: list[TrialPlan] | None = None) -> str:
        """Train every round; returns the sweep's final state (``finished`` or ``interrupted``).

        ``first_round``: fixed configurations for round 1 (enqueued in the study) instead of sampled ones.
        """
        if self.backend is None:
            self.backend = make_backend(self.settings, self.env)  # BackendError before anything is written
        if self._resuming:
            self.study = open_study(self.sweep.path, self.spec["name"], create=False, pruner=self.pruner)
            self._write_spec(state="running", finished=None, resumed=[*self.spec.get("resumed", []), time.time()])
        else:
            if not self.sweep.path.exists():
                self.sweep.create()
            self.study = open_study(self.sweep.path, self.sweep.name, create=True, pruner=self.pruner)
            self._write_spec(
                name=self.sweep.name, created=time.time(), argv=self.argv, seed=self.settings.seed,
                sampler=self.settings.sampler, settings=self.settings.to_json(), space=self.space.to_json(),
                param_order=list(self.space), storage=JOURNAL, rounds=[], state="running", finished=None,
            )
        if self.settings.scheduler == "pbt":
            self.pbt = PbtScheduler.of(self.sweep.path, self.settings)
        state = "failed"
        try:
            space, first_index = self.space, 1
            for round in range(1, self.settings.rounds + 1):
                self.round = round
                recorded = [r for r in self.spec["rounds"] if r["round"] == round]
                if recorded:  # a resumed sweep: this round's space was chosen before the interruption
                    space = SearchSpace.from_json(recorded[0]["space"])
                    first_index, size = recorded[0]["first_index"], recorded[0]["size"]
                else:
                    around: list[str] = []
                    if round > 1:
                        best = top_trials(self.results.values(), self.settings.keep)
                        around = [b["trial"] for b in best]
                        space = narrow(space, [b["params"] for b in best], self.settings.margin)
                        self.progress.message(f"round {round}: narrowed around {', '.join(around) or 'nothing (no trial scored)'}: "
                                              + " ".join(space.describe()))
                    fixed = first_round if (round == 1 and first_round is not None) else None
                    size = len(fixed) if fixed else make_sampler(self.settings.sampler).round_size(space, self.settings.trials)
                    for i, plan in enumerate(fixed or []):  # fixed configurations: Optuna's enqueued trials
                        self.study.enqueue_trial(space.to_optuna({k: v for k, v in plan.params.items() if k in space}),
                                                 user_attrs={TRIAL_ATTR: trial_name(first_index + i), ROUND_ATTR: round,
                                                             PARAMS_ATTR: plan.params}, skip_if_exists=False)
                    self._write_spec(rounds=self.spec["rounds"] + [{"round": round, "space": space.to_json(), "around": around,
                                                                    "first_index": first_index, "size": size}])
                self._run_round(space, round, first_index, size)
                first_index += size
            state = "finished"
        except KeyboardInterrupt:
            state = "interrupted"
        finally:
            if self.running or self.queue:
                self._shut_down()
            self._write_spec(state=state, finished=time.time())
            self._refresh()
            self.progress.close()
            self.backend.close()
        return state

    def _run_round(self, space: SearchSpace, round: int, first_index: int, size: int) -> None:
        self.study.sampler = make_sampler(self.settings.sampler, self.settings.seed).optuna(space, self.settings.trials, round)
        known = {t.user_attrs.get(TRIAL_ATTR): t for t in self.study.get_trials(deepcopy=False)}
        for index in range(first_index, first_index + size):
            name = trial_name(index)
            frozen = known.get(name)
            if frozen is not None and frozen.state in _DONE:
                continue  # kept as it is: nothing runs twice
            if self.results.get(name, {}).get("state") != "queued":
                self._record(name, round=round, index=index, state="queued")
            self.queue.append(name)
        self._space = space
        while self.queue or self.running:
            while self.queue and len(self.running) < self.settings.parallel:
                self._launch(self.queue.popleft(), round)
            self._poll()
            if self.pbt is not None:
                self.pbt.step(population(self.running))
            self._refresh()
            if self.queue or self.running:
                self._wake.wait(self.poll_seconds)
                self._wake.clear()

    # ------------------------------------------------------------------ one trial

    def _trial_of(self, name: str) -> optuna.Trial:
        """The Optuna trial for ``name``: the unfinished one a resumed sweep left, or a new one asked now."""
        for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if frozen.user_attrs.get(TRIAL_ATTR) == name:
                return optuna.Trial(self.study, frozen._trial_id)
        return self.study.ask(self._space.distributions())
