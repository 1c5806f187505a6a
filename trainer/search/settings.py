"""A sweep's settings (``panda sweep``'s options) and its trials' plans, checked before anything runs.

>>> from trainer.search.space import parse_param_args
>>> plans = plan_round(parse_param_args(["lr=log:1e-4:1", "optimizer=choice:sgd"]), SweepSettings(trials=2), 1)
>>> [(p.name, sorted(p.params)) for p in plans]      # sgd has no beta, so none is sampled
[('trial-0001', ['lr', 'optimizer']), ('trial-0002', ['lr', 'optimizer'])]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trainer.contract.config import TrainConfig
from trainer.contract.launching import trainer_argv
from trainer.contract.hparams import Hyperparameters
from trainer.contract.options import MAX_INT, option, options_of
from trainer.search.refine import DEFAULT_MARGIN
from trainer.search.samplers import SAMPLERS, make_sampler
from trainer.search.space import SearchSpace, SpaceError, resolve_trial
from trainer.search.stopping import PRUNERS

__all__ = ["SweepSettings", "SWEEP_OPTIONS", "BACKENDS", "TrialPlan", "trial_name", "check_space", "plan_round"]

#: Where trials run: processes on this machine, or tasks on a Ray cluster.
BACKENDS = ("local", "ray")


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
    sampler: str = option("random", "choice", "Optuna sampler: random search (default), a grid (to compare), or "
                          "TPE (learns from finished trials)", choices=tuple(SAMPLERS))
    early_stop: str = option("none", "choice", "stop hopeless trials with an Optuna pruner: median stopping rule, "
                             "successive halving or Hyperband", label="early stopping rule", choices=PRUNERS)
    grace: int = option(2, "int", "epochs before early stopping may judge a trial", low=1, high=MAX_INT,
                        metavar="EPOCHS")
    backend: str = option("local", "choice", "where trials run: processes on this machine, or Ray tasks",
                          choices=BACKENDS)
    address: str | None = option(None, "text", "the Ray cluster to join (auto: the one running on this machine; "
                                 "HOST:PORT); default: start a local Ray instance", optional=True, metavar="ADDR")
    cpus_per_trial: int | None = option(None, "int", "CPU cores per trial: TensorFlow's threads, and Ray's num_cpus "
                                        "(default: the machine's cores / P, at least 1)", optional=True, low=1,
                                        high=4096, metavar="C")
    gpus_per_trial: float = option(0.0, "float", "GPUs per trial (Ray's num_gpus; fractions share a card)", low=0,
                                   high=64, metavar="G")
    scheduler: str = option("none", "choice", "pbt: population-based training — every E epochs the bottom quantile "
                            "is proposed to copy a top trial's checkpoint and perturb its α/β (approve or veto on "
                            "the Sweeps page)", choices=("none", "pbt"))
    perturb_every: int = option(2, "int", "PBT: rank the population every E epochs of a trial", low=1,
                                high=MAX_INT, metavar="E")
    quantile: float = option(0.25, "float", "PBT: the bottom (and top) fraction of the population", low=0,
                             low_open=True, high=0.5, metavar="Q")
    auto: bool = option(False, "bool", "PBT: apply every exploit at once instead of waiting for approval")
    approve_timeout: float = option(120.0, "float", "PBT: seconds a proposal waits for Approve / Veto before it is "
                                    "applied on its own", low=0, high=1e7, metavar="SECONDS")
    #: Every trial's other ``panda train`` options (data_dir, label, model, pace, ...): TrainConfig's names.
    run_options: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> "SweepSettings":
        """Check every option, and a trial's configuration as ``panda train`` checks it."""
        for name, opt in SWEEP_OPTIONS.items():
            setattr(self, name, opt.check(getattr(self, name)))
        if self.backend != "ray":
            if self.address is not None:
                raise ValueError("--address joins a Ray cluster: use it with --backend ray")
            if self.gpus_per_trial:
                raise ValueError("--gpus-per-trial is a Ray resource: use it with --backend ray")
        self.trial_config({}).validate()
        if self.scheduler != "pbt" and (self.auto or self.perturb_every != 2 or self.quantile != 0.25
                                        or self.approve_timeout != 120.0):
            raise ValueError("--perturb-every, --quantile, --auto and --approve-timeout are PBT's: use them with "
                             "--scheduler pbt")
        if self.scheduler == "pbt":
            from trainer.search.pbt import check_pbt

            check_pbt(self, {})  # the counts; the space is checked with it by check_space's caller
        return self

    def threads(self) -> int:
        """TensorFlow threads per trial: ``--cpus-per-trial``, or this machine's share of its cores
        (on Ray, 1: the cluster's cores are Ray's to share out)."""
        import os

        if self.cpus_per_trial:
            return self.cpus_per_trial
        return 1 if self.backend == "ray" else max(1, (os.cpu_count() or 1) // self.parallel)

    def trial_config(self, params: dict[str, Any]) -> TrainConfig:
        """The configuration a trial with sampled ``params`` trains."""
        options = {"threads": self.threads(), **self.run_options}
        return TrainConfig(hparams=Hyperparameters(**params), dataset=self.dataset, epochs=self.epochs,
                           seed=self.seed, **options)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "SweepSettings":
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


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
        """The trainer's command line for this trial (:func:`trainer.contract.config.trainer_argv`)."""
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
    """Sample one round from an in-memory study and check every configuration as ``panda train``
    would (the dry run; a sweep asks its own study the same way, trial by trial)."""
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
