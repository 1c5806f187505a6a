"""The lookahead autopilot's sampler: an in-memory Optuna study over log10 α, asked and told across stages.

Bayesian optimization for one run (the caviar tool lent to the panda): the stage planner
(:class:`trainer.steering.autopilot.StagePlanner`, pure Python) asks it for α's to try and tells it what
each did (its prediction relative to its stage's best: lower is better). TPE with a fixed seed, so
the same stages ask the same α's; it models after :data:`STARTUP_TRIALS` tells (stage 1's three
candidates). The range is the run's starting α divided or multiplied by 10^:data:`SPAN_DECADES`,
within the valid α's. The study lives in memory; ``--resume`` rebuilds it by telling it the
journaled stages again (:meth:`StagePlanner.resumed`).

>>> a, b = StageSampler(1e-3, seed=0), StageSampler(1e-3, seed=0)
>>> a.ask(2) == b.ask(2)
True
"""

from __future__ import annotations

import math

import optuna

from trainer.contract.commands import MAX_LR

optuna.logging.set_verbosity(optuna.logging.WARNING)

#: The range searched: the run's first α ÷/× 10 to this power.
SPAN_DECADES = 3
#: The smallest α searched.
MIN_LR = 1e-8
#: Tells before TPE models (random draws in the range until then).
STARTUP_TRIALS = 3
PARAM = "log10_lr"


class StageSampler:
    """An Optuna study of ``log10 α``: :meth:`ask` proposes, :meth:`tell` records any α's score."""

    def __init__(self, lr0: float, seed: int = 0):
        center = math.log10(lr0)
        self.low = max(math.log10(MIN_LR), center - SPAN_DECADES)
        self.high = min(math.log10(MAX_LR), center + SPAN_DECADES)
        self.distribution = optuna.distributions.FloatDistribution(self.low, self.high)
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=STARTUP_TRIALS)
        self.study = optuna.create_study(direction="minimize", sampler=sampler)
        self.pending: dict[float, optuna.trial.Trial] = {}

    def ask(self, n: int) -> list[float]:
        """``n`` α's to try (a question left unanswered from an abandoned stage is dropped first)."""
        for trial in self.pending.values():
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        self.pending = {}
        out = []
        for _ in range(n):
            trial = self.study.ask({PARAM: self.distribution})
            lr = float(f"{10 ** trial.params[PARAM]:.3g}")
            self.pending.setdefault(lr, trial)
            out.append(lr)
        return out

    def tell(self, lr: float, value: float) -> None:
        """What α = ``lr`` scored: the answer to an asked trial, else a trial of its own (within the range)."""
        trial = self.pending.pop(float(f"{lr:.3g}"), None)
        if trial is not None:
            self.study.tell(trial, value)
            return
        x = min(max(math.log10(lr), self.low), self.high)
        self.study.add_trial(optuna.trial.create_trial(params={PARAM: x}, distributions={PARAM: self.distribution},
                                                       value=value))

    @property
    def told(self) -> int:
        return len([t for t in self.study.trials if t.state == optuna.trial.TrialState.COMPLETE])
