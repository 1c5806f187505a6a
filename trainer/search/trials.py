"""Process supervision for a sweep: start each trial's trainer, follow what it writes, end it.

:class:`TrialSupervision` is the half of :class:`~trainer.search.runner.SweepRunner` that deals
with processes and run directories: launching a trial (new, or resumed from its checkpoint)
through the sweep's backend, reading its ``metrics.jsonl`` and reporting each epoch to Optuna,
stopping it with a ``stop`` command when it diverges or the pruner says so, classifying how it
ended, and shutting every trial down on Ctrl-C. The runner's other half asks Optuna for the
rounds' configurations (:mod:`trainer.search.runner`).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from optuna.trial import TrialState

from trainer.contract.launching import STOP_GRACE, resume_argv
from trainer.contract.records import Status
from trainer.contract.rundir import DIVERGED_EXIT, JsonlTail, RunDir, current_line
from trainer.search.backends import Launched
from trainer.search.settings import TrialPlan
from trainer.search.space import SpaceError, resolve_trial
from trainer.search.study import PARAMS_ATTR, ROUND_ATTR, STATE_ATTR, TRIAL_ATTR

__all__ = ["KILL_GRACE_SECONDS", "TrialSupervision"]

#: Seconds a trial gets to checkpoint and exit after Ctrl-C before it is killed.
KILL_GRACE_SECONDS = STOP_GRACE


@dataclass
class _Trial:
    """A launched trial's bookkeeping."""

    plan: TrialPlan
    otrial: optuna.Trial
    launched: Launched | None
    metrics: JsonlTail
    run: RunDir
    records: list[dict] = field(default_factory=list)
    curve: list[float | None] = field(default_factory=list)
    reported: set[int] = field(default_factory=set)
    stop_reason: str | None = None
    diverged: str | None = None
    interrupted: bool = False


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


class TrialSupervision:
    """Launch, follow and end trials; mixed into :class:`~trainer.search.runner.SweepRunner`, whose
    state (``sweep``, ``settings``, ``study``, ``backend``, ``running``, ``queue``...) it uses."""

    def _launch(self, name: str, round: int) -> None:
        otrial = self._trial_of(name)
        reported = set(otrial.storage.get_trial(otrial._trial_id).intermediate_values)
        attrs = otrial.user_attrs
        run = self.sweep.trial_run(name)
        params = attrs.get(PARAMS_ATTR)
        resume = PARAMS_ATTR in attrs and TRIAL_ATTR in attrs and STATE_ATTR not in attrs and run.path.exists()
        if params is None:
            try:
                params = resolve_trial(self._space.from_optuna(otrial.params))
            except SpaceError as e:
                self.study.tell(otrial, state=TrialState.FAIL)
                self._record(name, state="failed", error=str(e), params=self._space.from_optuna(otrial.params))
                return
        for key, value in {TRIAL_ATTR: name, ROUND_ATTR: round, PARAMS_ATTR: params}.items():
            if attrs.get(key) != value:
                otrial.set_user_attr(key, value)
        plan = TrialPlan(name, int(name.rsplit("-", 1)[1]), round, params)
        program = None if self.command is None else tuple(self.command)
        trial = _Trial(plan, otrial, None, JsonlTail(run.metrics_path), run, reported=reported)
        if resume and run.read_config() is not None:
            self._read_metrics(trial)
            if len(trial.curve) >= self.settings.epochs and (run.status() or Status()).state == "finished":
                self.running[name] = trial  # it trained to the end before the sweep was interrupted
                self._record(name, state="running", params=params)
                self._finish(trial)
                return
            if run.list_checkpoints():
                argv = resume_argv(run.path.resolve(), program=program)
                how = "resumed from its checkpoint"
            else:
                resume = False
        if not resume or run.read_config() is None:
            if run.path.exists():
                shutil.rmtree(run.path)  # started but never checkpointed: run it again from the start
                trial.metrics = JsonlTail(run.metrics_path)
                trial.records, trial.curve = [], []
            argv = plan.argv(self.sweep.path.resolve(), self.settings, program)
            how = None
        try:
            trial.launched = self.backend.launch(argv, self.sweep.log_path(name), self._wake.set)
        except OSError as e:
            self.study.tell(otrial, state=TrialState.FAIL)
            self._record(name, state="failed", error=f"could not start the trainer: {e}", params=params)
            self.progress.message(f"{name} failed: could not start the trainer: {e}")
            return
        self.running[name] = trial
        self._record(name, round=round, state="running", params=params, pid=trial.launched.pid, started=time.time(),
                     backend=self.backend.name, resumed=how)
        if how:
            self.progress.message(f"{name} {how}")

    def _poll(self) -> None:
        for name, trial in list(self.running.items()):
            self._read_metrics(trial)
            if trial.launched.poll() is not None:
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
            reason = self._prune_reason(trial)
            if reason:
                trial.stop_reason = reason
                trial.run.send_command("stop", source="sweep")
                self._record(name, state="stopping", reason=reason)

    def _read_metrics(self, trial: _Trial) -> bool:
        new = trial.metrics.read_new()
        if not new:
            return False
        trial.records += new
        line = current_line(trial.records)
        trial.curve = [r.get("val_accuracy") for r in line]
        for record in line:  # what the trial really did, steering included, is what Optuna judges
            epoch, value = record.get("epoch"), record.get("val_accuracy")
            if isinstance(epoch, int) and isinstance(value, (int, float)) and epoch not in trial.reported:
                trial.otrial.report(float(value), step=epoch)
                trial.reported.add(epoch)
        return True

    def _prune_reason(self, trial: _Trial) -> str | None:
        epoch = len(trial.curve)
        if not epoch or epoch >= self.settings.epochs or self.settings.early_stop == "none":
            return None
        if not trial.otrial.should_prune():
            return None
        best = max((v for v in trial.curve if v is not None), default=float("nan"))
        return f"{self.settings.early_stop} pruner (Optuna): best val_accuracy {best:.4g} by epoch {epoch}"

    def _finish(self, trial: _Trial) -> None:
        name = trial.plan.name
        self._read_metrics(trial)
        del self.running[name]
        rc = trial.launched.poll() if trial.launched else 0
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
        elif trial.diverged or run_state == "diverged" or rc == DIVERGED_EXIT:
            state, reason = "diverged", trial.diverged or status.message
        elif trial.stop_reason:
            state, reason = "stopped", trial.stop_reason
        else:
            state = "finished"
        if state != "interrupted":  # an interrupted trial stays RUNNING in the study: --resume continues it
            trial.otrial.set_user_attr(STATE_ATTR, state)
            if state == "finished" and best is not None:
                self.study.tell(trial.otrial, best)
            elif state in ("stopped", "diverged"):
                self.study.tell(trial.otrial, state=TrialState.PRUNED)
            else:
                self.study.tell(trial.otrial, state=TrialState.FAIL)
        self._record(name, state=state, returncode=rc, best_val_accuracy=best, best_epoch=best_epoch,
                     epochs=len(trial.curve), reason=reason, error=error, ended=time.time())
        if state == "failed":
            self.progress.message(f"{name} failed: {error}")
        elif state == "diverged":
            self.progress.message(f"{name} diverged (stopped; resumable): {reason}")
        elif state == "stopped":
            self.progress.message(f"{name} stopped early: {reason}")

    def _shut_down(self) -> None:
        """Stop every trial (they checkpoint and exit), kill laggards; the queue never starts."""
        for name in self.queue:
            self._record(name, state="interrupted", reason="never started")
        self.queue.clear()
        for trial in self.running.values():
            trial.interrupted = True
            trial.launched.terminate()
        deadline = time.monotonic() + self.kill_grace
        try:
            for trial in list(self.running.values()):
                trial.launched.wait(timeout=max(0.0, deadline - time.monotonic()))
        except KeyboardInterrupt:
            pass  # a second Ctrl-C: kill at once
        for trial in list(self.running.values()):
            trial.launched.kill()
            self._finish(trial)
