"""Run a sweep: up to P trainer processes at once, each an ordinary run under the sweep folder.

Trials are separate ``python -m trainer train`` processes, not threads: each owns its run
directory, so the dashboard can open, watch and steer any trial like any run, and a trial that
crashes takes nothing else with it. The runner only launches processes, reads what they write
(``metrics.jsonl``, ``status.json``) and, for early stopping, appends a ``stop`` command — the
same contract every other client uses.

>>> from trainer.search.space import parse_param_args
>>> plans = plan_round(parse_param_args(["lr=log:1e-4:1", "optimizer=choice:sgd"]), SweepSettings(trials=2), 1)
>>> [(p.name, sorted(p.params)) for p in plans]      # sgd has no beta, so none is sampled
[('trial-0001', ['lr', 'optimizer']), ('trial-0002', ['lr', 'optimizer'])]
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from trainer.config import TrainConfig, trainer_argv
from trainer.hparams import Hyperparameters
from trainer.options import MAX_INT, option, options_of
from trainer.records import Status
from trainer.rundir import JsonlTail, RunDir, current_line
from trainer.search.refine import DEFAULT_MARGIN, narrow, top_trials
from trainer.search.samplers import SAMPLERS, make_sampler
from trainer.search.space import SearchSpace, SpaceError, resolve_trial
from trainer.search.stopping import STOPPERS, make_stopper
from trainer.search.sweepdir import FINAL_STATES, SweepDir

#: Seconds a trial gets to checkpoint and exit after Ctrl-C before it is killed.
KILL_GRACE_SECONDS = 20.0


@dataclass
class SweepSettings:
    """Everything about a sweep except its space: ``panda sweep``'s options. Stored in ``sweep.json``."""

    trials: int = option(8, "int", "trials per round", low=1, high=100_000)
    parallel: int = option(2, "int", "trainers at once", low=1, high=1024, metavar="P")
    epochs: int = option(10, "int", "epochs per trial", low=1, high=10_000_000)
    dataset: str = option("digits", "text", "as for panda train", metavar="SPEC")
    rounds: int = option(1, "int", "coarse-to-fine rounds", low=1, high=1000)
    keep: int = option(3, "int", "narrow each new round around the best K trials", low=1, high=100_000, metavar="K")
    margin: float = option(DEFAULT_MARGIN, "float", "padding around the best trials, as a fraction of each range in "
                           "its scale", low=0, high=10)
    seed: int = option(0, "int", "seeds the sampler and every trial's weights", low=0, high=MAX_INT)
    sampler: str = option("random", "choice", "random search (default) or a grid, for comparison",
                          choices=tuple(SAMPLERS))
    early_stop: str = option("none", "choice", "stop hopeless trials: median stopping rule or successive halving",
                             label="early stopping rule", choices=tuple(STOPPERS))
    grace: int = option(2, "int", "epochs before early stopping may judge a trial", low=1, high=MAX_INT,
                        metavar="EPOCHS")
    #: Every trial's other ``panda train`` options (data_dir, label, model, pace, ...): TrainConfig's names.
    run_options: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> "SweepSettings":
        """Check every option, and a trial's configuration as ``panda train`` checks it."""
        for name, opt in SWEEP_OPTIONS.items():
            setattr(self, name, opt.check(getattr(self, name)))
        self.trial_config({}).validate()
        return self

    def trial_config(self, params: dict[str, Any]) -> TrainConfig:
        """The configuration a trial with sampled ``params`` trains."""
        return TrainConfig(hparams=Hyperparameters(**params), dataset=self.dataset, epochs=self.epochs,
                           seed=self.seed, **self.run_options)

    def to_json(self) -> dict:
        return asdict(self)


#: ``panda sweep``'s own options, by name.
SWEEP_OPTIONS = options_of(SweepSettings)


def trial_name(index: int) -> str:
    return f"trial-{index:04d}"


@dataclass
class TrialPlan:
    """One configuration to train: its name, round and hyperparameters."""

    name: str
    index: int
    round: int
    params: dict[str, Any]

    def argv(self, sweep_path: Path, settings: SweepSettings, program: list[str] | None = None) -> list[str]:
        """The trainer's command line for this trial (:func:`trainer.config.trainer_argv`)."""
        return trainer_argv(sweep_path, self.name, settings.trial_config(self.params),
                            program=None if program is None else tuple(program))


def check_space(space: SearchSpace) -> None:
    """Combinations a range can produce that the trainer would refuse, caught before any trial."""
    decay, rate = space.params.get("decay"), space.params.get("decay_rate")
    if decay is not None and rate is not None and "exponential" in getattr(decay, "values", ()):
        low = getattr(rate, "low", min(getattr(rate, "values", (1,))))
        high = getattr(rate, "high", max(getattr(rate, "values", (1,))))
        if not (0 < low and high <= 1):
            raise SpaceError(f"decay_rate: exponential decay needs a rate in (0, 1], but the range is [{low:g}, {high:g}]")


def plan_round(space: SearchSpace, settings: SweepSettings, round: int, first_index: int = 1) -> list[TrialPlan]:
    """Sample one round and check every configuration as ``panda train`` would."""
    configs = make_sampler(settings.sampler, settings.seed).sample(space, settings.trials, round)
    plans = []
    for i, params in enumerate(configs):
        name = trial_name(first_index + i)
        try:
            resolved = resolve_trial(params)
        except SpaceError as e:
            raise SpaceError(f"{name}: {e}") from None
        plans.append(TrialPlan(name, first_index + i, round, resolved))
    return plans


# --------------------------------------------------------------------------- progress display


class Progress:
    """One updating line on a terminal (``\\r``), plain lines when the output is a file or pipe."""

    def __init__(self, stream: IO[str] | None = None, tty: bool | None = None, enabled: bool = True):
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self.enabled = enabled
        self._last = ""
        self._drawn = 0

    def update(self, line: str) -> None:
        if not self.enabled or line == self._last:
            return
        self._last = line
        if self.tty:
            width = max(20, shutil.get_terminal_size((100, 20)).columns - 1)
            line = line[:width]
            self.stream.write("\r" + line + " " * max(0, self._drawn - len(line)))
            self._drawn = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        """A line of its own (a trial failed, a round began), above the progress line."""
        if not self.enabled:
            return
        if self.tty and self._drawn:
            self.stream.write("\r" + " " * self._drawn + "\r" + text + "\n" + self._last[: self._drawn])
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
        self._drawn = 0


# --------------------------------------------------------------------------- the runner


@dataclass
class _Trial:
    """A launched trial's bookkeeping."""

    plan: TrialPlan
    process: subprocess.Popen
    log: IO[bytes]
    metrics: JsonlTail
    run: RunDir
    records: list[dict] = field(default_factory=list)
    curve: list[float | None] = field(default_factory=list)
    stop_reason: str | None = None
    diverged: str | None = None
    interrupted: bool = False
    judged_at: int = 0  # epochs already shown to the early-stopping rule


def _log_error(path: Path) -> str | None:
    """The line of a trainer's log that explains a crash (Panda's or Python's last error line)."""
    try:
        lines = [l.strip() for l in path.read_text(encoding="utf-8", errors="replace").splitlines() if l.strip()]
    except OSError:
        return None
    for line in reversed(lines):
        if line.startswith("panda") or "Error" in line.split(":")[0]:
            return line[:500]
    return lines[-1][:500] if lines else None


class SweepRunner:
    """Run every round of a sweep, writing ``sweep.json`` and ``trials.jsonl`` as it goes.

    ``on_change`` is called (in this thread) whenever the counts change, with :meth:`counts`.
    """

    def __init__(
        self,
        sweep: SweepDir,
        space: SearchSpace,
        settings: SweepSettings,
        *,
        command: list[str] | None = None,
        progress: Progress | None = None,
        poll_seconds: float = 0.5,
        kill_grace: float = KILL_GRACE_SECONDS,
        env: dict[str, str] | None = None,
        argv: list[str] | None = None,
    ):
        self.sweep = sweep
        self.space = space
        self.settings = settings.validate()
        check_space(space)
        self.command = command  # the trainer program; None: python -m trainer (tests substitute a stand-in)
        self.progress = progress or Progress(enabled=False)
        self.poll_seconds = poll_seconds
        self.kill_grace = kill_grace
        self.env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
        self.argv = argv
        self.stopper = make_stopper(settings.early_stop, settings.grace)
        self.results: dict[str, dict[str, Any]] = {}  # trial -> {trial, round, params, state, best_val_accuracy, ...}
        self.running: dict[str, _Trial] = {}
        self.queue: deque[TrialPlan] = deque()
        self.round = 0
        self.spec: dict[str, Any] = {}
        self._wake = threading.Event()
        self._curves: dict[str, list[float | None]] = {}

    # ------------------------------------------------------------------ bookkeeping

    def _record(self, name: str, **fields: Any) -> None:
        result = self.results.setdefault(name, {"trial": name})
        result.update(fields)
        self.sweep.append_trial({"trial": name, "round": result.get("round"), **fields})

    def counts(self) -> dict[str, Any]:
        states = [r.get("state") for r in self.results.values()]
        best = top_trials(self.results.values(), 1)
        return {
            "round": self.round,
            "rounds": self.settings.rounds,
            "total": len(states),
            "queued": states.count("queued"),
            "running": states.count("running") + states.count("stopping"),
            **{state: states.count(state) for state in FINAL_STATES},
            "best": best[0] if best else None,
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

    # ------------------------------------------------------------------ running

    def run(self, first_round: list[TrialPlan] | None = None) -> str:
        """Train every round; returns the sweep's final state (``finished`` or ``interrupted``)."""
        if not self.sweep.path.exists():
            self.sweep.create()
        self._write_spec(
            name=self.sweep.name, created=time.time(), argv=self.argv, seed=self.settings.seed,
            sampler=self.settings.sampler, settings=self.settings.to_json(), space=self.space.to_json(),
            param_order=list(self.space),  # sweep.json's keys are sorted; this keeps the user's order
            rounds=[], state="running", finished=None,
        )
        state = "failed"
        try:
            space = self.space
            next_index = 1
            for round in range(1, self.settings.rounds + 1):
                self.round = round
                around: list[str] = []
                if round > 1:
                    best = top_trials(self.results.values(), self.settings.keep)
                    around = [b["trial"] for b in best]
                    space = narrow(space, [b["params"] for b in best], self.settings.margin)
                    self.progress.message(f"round {round}: narrowed around {', '.join(around) or 'nothing (no trial scored)'}: "
                                          + " ".join(space.describe()))
                plans = first_round if (round == 1 and first_round is not None) else plan_round(space, self.settings, round, next_index)
                next_index += len(plans)
                self._write_spec(rounds=self.spec["rounds"] + [{"round": round, "space": space.to_json(), "around": around}])
                for plan in plans:
                    self._record(plan.name, round=plan.round, index=plan.index, state="queued", params=plan.params)
                self.queue.extend(plans)
                self._run_queue()
            state = "finished"
        except KeyboardInterrupt:
            state = "interrupted"
        finally:
            if self.running or self.queue:
                self._shut_down()
            self._write_spec(state=state, finished=time.time())
            self._refresh()
            self.progress.close()
        return state

    def _run_queue(self) -> None:
        while self.queue or self.running:
            while self.queue and len(self.running) < self.settings.parallel:
                self._launch(self.queue.popleft())
            self._poll()
            self._refresh()
            if self.queue or self.running:
                self._wake.wait(self.poll_seconds)
                self._wake.clear()

    def _launch(self, plan: TrialPlan) -> None:
        argv = plan.argv(self.sweep.path, self.settings, self.command)
        log = open(self.sweep.log_path(plan.name), "wb")
        try:
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=self.env, start_new_session=True,  # Ctrl-C reaches the runner, which stops each trial
            )
        except OSError as e:
            log.close()
            self._record(plan.name, state="failed", error=f"could not start the trainer: {e}")
            self.progress.message(f"{plan.name} failed: could not start the trainer: {e}")
            return
        run = RunDir(self.sweep.path / plan.name)
        self.running[plan.name] = _Trial(plan, process, log, JsonlTail(run.metrics_path), run)
        threading.Thread(target=self._reap, args=(process,), daemon=True, name=f"sweep-wait-{plan.name}").start()
        self._record(plan.name, state="running", pid=process.pid, started=time.time())

    def _reap(self, process: subprocess.Popen) -> None:
        process.wait()
        self._wake.set()

    def _poll(self) -> None:
        for name, trial in list(self.running.items()):
            self._read_metrics(trial)
            if trial.process.poll() is not None:
                self._finish(trial)
                continue
            if trial.stop_reason or trial.diverged:
                continue
            status = trial.run.status()
            if status is not None and status.state == "diverged":
                # A diverged trainer waits, paused, for a person; a sweep cannot babysit it.
                trial.diverged = status.message or "diverged"
                trial.run.send_command("stop", source="sweep")
                self._record(name, state="stopping", reason=f"diverged: {trial.diverged}")
                continue
            reason = self._early_stop_reason(trial)
            if reason:
                trial.stop_reason = reason
                trial.run.send_command("stop", source="sweep")
                self._record(name, state="stopping", reason=reason)

    def _read_metrics(self, trial: _Trial) -> bool:
        new = trial.metrics.read_new()
        if not new:
            return False
        trial.records += new
        trial.curve = [r.get("val_accuracy") for r in current_line(trial.records)]
        self._curves[trial.plan.name] = trial.curve
        return True

    def _early_stop_reason(self, trial: _Trial) -> str | None:
        name = trial.plan.name
        if len(trial.curve) >= self.settings.epochs:
            return None
        if trial.judged_at == len(trial.curve):
            return None
        trial.judged_at = len(trial.curve)
        return self.stopper.should_stop(name, self._curves)

    def _finish(self, trial: _Trial) -> None:
        name = trial.plan.name
        self._read_metrics(trial)
        trial.log.close()
        del self.running[name]
        rc = trial.process.returncode
        status = trial.run.status() or Status()
        run_state = status.state
        scores = [(v, i + 1) for i, v in enumerate(trial.curve) if v is not None]
        best, best_epoch = max(scores) if scores else (None, None)
        error = reason = None
        if trial.interrupted:
            state, reason = "interrupted", "Ctrl-C"
        elif run_state == "failed" or (rc != 0 and rc != 3 and run_state != "finished"):
            state = "failed"
            error = status.message if run_state == "failed" else None
            error = error or _log_error(self.sweep.log_path(name))
            error = error or (f"killed by signal {-rc}" if rc < 0 else f"exit code {rc}")
        elif trial.diverged or run_state == "diverged" or rc == 3:
            state, reason = "diverged", trial.diverged or status.message
        elif trial.stop_reason:
            state, reason = "stopped", trial.stop_reason
        else:
            state = "finished"
        self._record(
            name, state=state, returncode=rc, best_val_accuracy=best, best_epoch=best_epoch,
            epochs=len(trial.curve), reason=reason, error=error, ended=time.time(),
        )
        if state == "failed":
            self.progress.message(f"{name} failed: {error}")
        elif state == "diverged":
            self.progress.message(f"{name} diverged (stopped; resumable): {reason}")
        elif state == "stopped":
            self.progress.message(f"{name} stopped early: {reason}")

    def _shut_down(self) -> None:
        """Stop every trial process (they checkpoint and exit on SIGTERM), kill laggards."""
        for plan in self.queue:
            self._record(plan.name, state="interrupted", reason="never started")
        self.queue.clear()
        for trial in self.running.values():
            trial.interrupted = True
            if trial.process.poll() is None:
                try:
                    trial.process.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + self.kill_grace
        try:
            for trial in list(self.running.values()):
                left = deadline - time.monotonic()
                try:
                    trial.process.wait(timeout=max(0.0, left))
                except subprocess.TimeoutExpired:
                    pass
        except KeyboardInterrupt:
            pass  # a second Ctrl-C: kill at once
        for trial in list(self.running.values()):
            if trial.process.poll() is None:
                trial.process.kill()
                trial.process.wait()
            self._finish(trial)


def summarize(results: dict[str, dict[str, Any]], top: int = 5) -> list[str]:
    """The sweep's outcome as text lines: the best trials and their hyperparameters."""
    lines = []
    for t in top_trials(results.values(), top):
        params = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in (t.get("params") or {}).items())
        lines.append(f"  {t['trial']}  val_accuracy {t['best_val_accuracy']:.4f} (epoch {t.get('best_epoch')})  {t.get('state')}  {params}")
    return lines
