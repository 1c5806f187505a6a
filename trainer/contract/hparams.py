"""Hyperparameters of a run: the one table of every knob, and the course's decay schedules.

Each field of :class:`Hyperparameters` is declared with :func:`~trainer.contract.options.option`: its
kind, range, help text, whether a sweep may search it, which optimizers it applies to and which
command changes it mid-run. ``panda train``'s flags, the validation of commands and configs, the
search space, the dashboard's controls and the trainer's command line all come from
:data:`HYPERPARAMETERS`; :data:`CONTROLS` adds how the dashboard offers a knob (its scale and
the grid its slider spans, inside the table's range); :func:`step` moves a value along its
scale, for PBT and the page alike. Pure Python (no TensorFlow), so clients can
read and validate cheaply.

>>> hp = Hyperparameters(lr=0.1, decay="inverse", decay_rate=1.0)
>>> [round(hp.decayed_lr(0.1, t), 4) for t in range(4)]   # alpha0 / (1 + rate * t)
[0.1, 0.05, 0.0333, 0.025]
>>> cosine = Hyperparameters(lr=0.1, decay="cosine")     # alpha0 * (1 + cos(pi * t / T)) / 2 over T = 4 epochs
>>> [round(cosine.decayed_lr(0.1, t, span=4), 4) for t in range(6)]   # held at t = T - 1 after the run's end
[0.1, 0.0854, 0.05, 0.0146, 0.0146, 0.0146]
>>> HYPERPARAMETERS["lr"].steer, HYPERPARAMETERS["lr"].range_text
('set_lr', '(0, 10]')
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Callable

from trainer.contract.options import Option, OptionError, option, options_of

OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam")
#: The decay schedules: α after ``t`` epochs from α0, with the decay's ``rate`` and the ``span`` T of epochs
#: from when α0 was set to the run's end (cosine anneals over it; epoch k of T trains with t = k - 1, so
#: every trained epoch has α > 0, and after the run's end α is held at t = T - 1's value).
DECAY_RULES: dict[str, Callable[[float, int, float, int], float]] = {
    "none": lambda lr0, t, rate, span: lr0,
    "inverse": lambda lr0, t, rate, span: lr0 / (1.0 + rate * t),
    "exponential": lambda lr0, t, rate, span: lr0 * rate**t,
    "cosine": lambda lr0, t, rate, span: lr0 * 0.5 * (1.0 + math.cos(math.pi * min(t, span - 1) / span)),
}
DECAYS = tuple(DECAY_RULES)
#: Optimizers with a β (momentum's β, RMSprop's ρ, Adam's β₁).
WITH_BETA = ("momentum", "rmsprop", "adam")
#: Why a β is refused for an optimizer without one (validation, the page's check and its controls say it).
NO_BETA = "plain sgd has no beta"
DEFAULT_BETA = 0.9
#: The largest learning rate accepted; anything above is a typo, not a choice.
MAX_LR = 10.0
#: The largest batch size accepted.
MAX_BATCH_SIZE = 1 << 20


@dataclass
class Hyperparameters:
    """Everything that shapes a run. Fields with ``steer`` may change while it trains."""

    optimizer: str = option("adam", "choice", "the optimizer", choices=OPTIMIZERS, search=True)
    lr: float = option(3e-3, "float", "learning rate alpha", label="learning rate", low=0, low_open=True,
                       high=MAX_LR, steer="set_lr", search=True, scale="log")
    beta: float | None = option(None, "float", "momentum beta / RMSprop rho / Adam beta1 (default 0.9; none for sgd)",
                                low=0, high=1, high_open=True, optional=True, steer="set_beta",
                                optimizers=WITH_BETA, search=True, scale="log1m")
    beta2: float = option(0.999, "float", "Adam's beta2", low=0, high=1, high_open=True, optimizers=("adam",),
                          search=True, scale="log1m")
    epsilon: float = option(1e-7, "float", "the optimizer's epsilon", low=0, low_open=True,
                            optimizers=("rmsprop", "adam"), search=True, scale="log")
    batch_size: int = option(64, "int", "mini-batch size", label="batch size", low=1, high=MAX_BATCH_SIZE,
                             steer="set_batch_size", search=True)
    decay: str = option("none", "choice", "learning-rate decay per epoch", choices=DECAYS, search=True)
    decay_rate: float = option(0.0, "float", "the decay's rate", label="decay rate", low=0, search=True,
                               scale="float")
    layers: int = option(2, "int", "hidden layers", low=0, high=64, search=True)
    units: int = option(64, "int", "units per hidden layer", low=1, high=16384, search=True)
    batch_norm: bool = option(True, "bool", "Dense -> BatchNorm -> ReLU", search=True)
    dropout: float = option(0.0, "float", "dropout after each hidden layer", low=0, high=1, high_open=True,
                            search=True, scale="float")

    def __post_init__(self) -> None:
        if self.beta is None and self.optimizer in WITH_BETA:
            self.beta = DEFAULT_BETA

    def validate(self) -> "Hyperparameters":
        """Check every value against :data:`HYPERPARAMETERS`; ``ValueError`` names the first bad one."""
        for name, opt in HYPERPARAMETERS.items():
            setattr(self, name, opt.check(getattr(self, name)))
        if self.beta is not None and self.optimizer not in WITH_BETA:
            raise OptionError("beta", f"does not apply: {NO_BETA}; use --optimizer momentum")
        if self.decay == "exponential" and not 0 < self.decay_rate <= 1:
            raise OptionError("exponential decay", f"needs a rate in (0, 1], got {self.decay_rate}")
        return self

    def decayed_lr(self, lr0: float, epochs_since: int, span: int | None = None) -> float:
        """The learning rate ``epochs_since`` epochs after it was set to ``lr0``; ``span``: the epochs from
        then to the run's end (a cosine decay needs it)."""
        if span is None and self.decay == "cosine":
            raise ValueError("a cosine decay needs the span of epochs it anneals over")
        return DECAY_RULES[self.decay](lr0, epochs_since, self.decay_rate, max(1, span or 1))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Hyperparameters":
        return cls(**{k: v for k, v in data.items() if k in HYPERPARAMETERS})


#: The table: every hyperparameter, by name.
HYPERPARAMETERS: dict[str, Option] = options_of(Hyperparameters)
#: Hyperparameters a command may change mid-run, by command name (``set_lr`` -> lr's option).
STEERABLE: dict[str, Option] = {opt.steer: opt for opt in HYPERPARAMETERS.values() if opt.steer}


def has_beta(optimizer: Any) -> bool:
    """Whether ``optimizer`` has a β: the table's ``optimizers`` for beta, the one place the rule lives.

    >>> has_beta("adam"), has_beta("sgd")
    (True, False)
    """
    return optimizer in (HYPERPARAMETERS["beta"].optimizers or ())


def scale_of(name: str) -> str:
    """The scale ``name`` lives on (its entry's ``scale``; ``"float"`` where it declares none).

    A learning rate lives on a log scale (0.001 to 0.01 is as far as 0.01 to 0.1), β on 1 − β's log
    scale (0.9 averages over ~10 steps, 0.99 over ~100, 0.999 over ~1000).
    """
    return HYPERPARAMETERS[name].scale or "float"


def clamp(name: str, value: float) -> float:
    """``value`` pulled inside the table's range for ``name`` (an open end: the nearest float inside)."""
    opt = HYPERPARAMETERS[name]
    if opt.low is not None and (value < opt.low or (opt.low_open and value <= opt.low)):
        value = math.nextafter(opt.low, math.inf) if opt.low_open else float(opt.low)
    if opt.high is not None and (value > opt.high or (opt.high_open and value >= opt.high)):
        value = math.nextafter(opt.high, -math.inf) if opt.high_open else float(opt.high)
    return value


def step(name: str, value: float, factor: float) -> float:
    """``value`` moved by ``factor`` on ``name``'s scale, clamped to the table's range and checked by it.

    The one rule for moving a value (PBT's explore step, the page's β nudges): β = 0.99 moved by 0.8
    becomes 0.992, never 0.792 (an averaging window of 100 steps cut to 5).

    >>> round(step("beta", 0.99, 0.8), 6), round(step("beta", 0.99, 1.25), 6)
    (0.992, 0.9875)
    >>> step("lr", 9.0, 1.25)      # clamped to the table's (0, 10]
    10.0
    """
    if scale_of(name) == "log1m":
        moved = 1.0 - (1.0 - value) * factor
    else:  # log: a factor is a step; float: the same relative move, the best a scale without a unit offers
        moved = value * factor
    return HYPERPARAMETERS[name].check(clamp(name, moved))


def log_scale(low: float, high: float, mantissas=(1, 2, 3, 5)) -> list[float]:
    """Round values spaced about evenly on a log scale: 1e-5, 2e-5, 3e-5, 5e-5, 1e-4, ...

    >>> log_scale(0.01, 0.1)
    [0.01, 0.02, 0.03, 0.05, 0.1]
    """
    out = []
    for exponent in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1):
        for m in mantissas:
            value = float(f"{m}e{exponent}")
            if low * (1 - 1e-9) <= value <= high * (1 + 1e-9):
                out.append(value)
    return out


@dataclass(frozen=True)
class Control:
    """How the dashboard offers one knob: its scale and the span of its slider or field.

    ``low``/``high`` default to the table's range; a bound is given here only where the table's
    cannot be a slider's end (α's open 0 on a log scale, a batch of 2²⁰ examples on a page).
    """

    scale: str | None = None  # the table's (log: round values per decade; log1m: on 1 − β, a grid), or "pow2", "int"
    low: float | None = None
    high: float | None = None
    grid: tuple = ()  # explicit points where round numbers on the scale aren't the useful ones

    def bounds(self, opt: Option) -> tuple[float, float]:
        """The control's ends: its own where given, else the table's."""
        return (opt.low if self.low is None else self.low), (opt.high if self.high is None else self.high)


#: How the dashboard offers each knob it shows; every grid lies inside the table's range.
CONTROLS: dict[str, Control] = {
    "lr": Control(low=1e-5),
    "beta": Control(grid=(0.0, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)),
    "batch_size": Control("pow2", high=4096),
    "layers": Control("int"),
    "units": Control("int"),
}
#: The new-run form's starting values where they differ from ``panda train``'s: a run a room can watch
#: (60 epochs at half a second each), not the CLI's quickest useful one.
FORM_DEFAULTS: dict[str, Any] = {"epochs": 60, "pace": 0.5}


def grid(name: str) -> list:
    """The values a dashboard slider offers for ``name``, from :data:`CONTROLS` and the table.

    >>> grid("batch_size")[:3], grid("batch_size")[-1], grid("lr")[-1] == MAX_LR
    ([1, 2, 4], 4096, True)
    """
    control, opt = CONTROLS[name], HYPERPARAMETERS[name]
    if control.grid:
        return list(control.grid)
    low, high = control.bounds(opt)
    scale = control.scale or opt.scale
    if scale == "log":
        return log_scale(low, high)
    if scale == "pow2":
        return [2**k for k in range(math.ceil(math.log2(max(low, 1))), math.floor(math.log2(high)) + 1)]
    return list(range(int(low), int(high) + 1))
