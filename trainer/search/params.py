"""Parameter scales: one hyperparameter's range, the scale it is sampled on, and its Optuna form.

The scale matters more than the range (the course's advice): sampling a learning rate uniformly
in [1e-4, 1] puts 90% of the trials in [0.1, 1]; sampling its exponent uniformly spends the same
effort on every decade. Each scale maps its range onto the unit interval *in its own scale*
(:meth:`~_Continuous.to_unit` / :meth:`~_Continuous.from_unit`), which grids and coarse-to-fine
narrowing use, and onto an Optuna distribution (:meth:`Param.distribution`), which Optuna's
samplers draw from:

=================  =====================================================  =====================
scale              Optuna distribution                                    Optuna's name
=================  =====================================================  =====================
``log``            ``FloatDistribution(low, high, log=True)``             ``lr``
``log1m``          ``FloatDistribution(1 - high, 1 - low, log=True)``     ``1-beta``
``int``            ``IntDistribution(low, high)``                         ``units``
``float``          ``FloatDistribution(low, high)``                       ``dropout``
``choice``         ``CategoricalDistribution(values)``                    ``optimizer``
=================  =====================================================  =====================

Optuna has no "1 − β is log-uniform" distribution, so a ``log1m`` parameter is stored in the
study as ``1-NAME`` (what is log-uniform) and turned back into β by :meth:`Param.from_optuna`.

The five scales are one family of small classes on a shared base, so they stay in one module.

>>> Log1mUniform(0.9, 0.999).distribution()
FloatDistribution(high=0.09999999999999998, log=True, low=0.0010000000000000009, step=None)
>>> Log1mUniform(0.9, 0.999).from_optuna(0.01), Log1mUniform(0.9, 0.999).optuna_name("beta")
(0.99, '1-beta')
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

__all__ = ["Param", "FloatUniform", "LogUniform", "Log1mUniform", "IntUniform", "Choice", "SCALES", "format_value"]


def _round_sig(value: float, digits: int = 6) -> float:
    """``value`` to ``digits`` significant figures, so command lines stay readable."""
    if value == 0 or not math.isfinite(value):
        return value
    return float(f"{value:.{digits}g}")


@dataclass(frozen=True)
class Param(ABC):
    """One hyperparameter's range. Subclasses say which Optuna distribution draws it, where a grid's
    points go, and how to compare values; the drawing itself is Optuna's."""

    scale: ClassVar[str]

    @abstractmethod
    def grid(self, k: int) -> list:
        """At most ``k`` values spread evenly in this parameter's scale."""

    @abstractmethod
    def spec(self) -> str:
        """The command-line form, e.g. ``log:0.0001:1``."""

    @abstractmethod
    def to_json(self) -> dict:
        """A JSON-able description that :func:`param_from_json` reads back."""

    @abstractmethod
    def contains(self, value: Any) -> bool:
        """Whether ``value`` lies in the range."""

    @property
    def size(self) -> float:
        """How many distinct values there are (``inf`` for a continuous range)."""
        return math.inf

    @abstractmethod
    def distribution(self) -> BaseDistribution:
        """The Optuna distribution a sampler draws this parameter from."""

    def optuna_name(self, name: str) -> str:
        """The parameter's name in the Optuna study."""
        return name

    def from_optuna(self, value: Any) -> Any:
        """A value Optuna drew, as the trainer takes it."""
        return value

    def to_optuna(self, value: Any) -> Any:
        """A trainer's value, as Optuna stores it (for enqueued trials and grids)."""
        return value


@dataclass(frozen=True)
class _Continuous(Param):
    """A range [low, high] sampled uniformly after a monotone warp (identity, log, ...)."""

    low: float
    high: float

    @staticmethod
    def _warp(value: float) -> float:
        return value

    @staticmethod
    def _unwarp(warped: float) -> float:
        return warped

    def _tidy(self, value: float) -> float:
        return _round_sig(value)

    def to_unit(self, value: float) -> float:
        """Where ``value`` lies in the range, 0 at ``low`` and 1 at ``high``, in this scale."""
        lo, hi = self._warp(self.low), self._warp(self.high)
        if hi == lo:
            return 0.5
        return (self._warp(float(value)) - lo) / (hi - lo)

    def from_unit(self, u: float) -> float:
        """The value at position ``u`` (0 = ``low``, 1 = ``high``) in this scale."""
        lo, hi = self._warp(self.low), self._warp(self.high)
        value = self._tidy(self._unwarp(lo + float(u) * (hi - lo)))
        return min(max(value, self.low), self.high)

    def grid(self, k: int) -> list[float]:
        if k <= 1 or self.low == self.high:
            return [self.from_unit(0.5)]
        return [self.from_unit(u) for u in np.linspace(0.0, 1.0, k)]

    def contains(self, value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and self.low <= value <= self.high

    def spec(self) -> str:
        return f"{self.scale}:{self.low:g}:{self.high:g}"

    def to_json(self) -> dict:
        return {"scale": self.scale, "min": self.low, "max": self.high}

    _log: ClassVar[bool] = False

    def distribution(self) -> FloatDistribution:
        return FloatDistribution(float(self.low), float(self.high), log=self._log)

    def from_optuna(self, value: Any) -> float:
        return min(max(self._tidy(float(value)), self.low), self.high)

    def within(self, u_low: float, u_high: float) -> "_Continuous":
        """The sub-range between unit positions ``u_low`` and ``u_high`` of this one."""
        low = self.from_unit(max(0.0, u_low))
        high = self.from_unit(min(1.0, u_high))
        return type(self)(low, max(low, high))


@dataclass(frozen=True)
class FloatUniform(_Continuous):
    """Uniform in [low, high]: right when every part of the range deserves the same effort.

    >>> FloatUniform(0.0, 0.5).from_unit(0.5)
    0.25
    """

    scale: ClassVar[str] = "float"


@dataclass(frozen=True)
class LogUniform(_Continuous):
    """The exponent uniform in [log10 low, log10 high]: each decade gets the same share.

    For a learning rate in [1e-4, 1], about a quarter of the samples fall in each of the four
    decades; a uniform draw would put 90% of them in [0.1, 1].

    >>> [LogUniform(1e-4, 1.0).from_unit(u) for u in (0, 0.25, 0.75, 1)]
    [0.0001, 0.001, 0.1, 1.0]
    """

    scale: ClassVar[str] = "log"
    _log: ClassVar[bool] = True

    @staticmethod
    def _warp(value: float) -> float:
        return math.log10(value)

    @staticmethod
    def _unwarp(warped: float) -> float:
        return 10.0**warped


@dataclass(frozen=True)
class Log1mUniform(_Continuous):
    """``1 - value`` log-uniform: for momentum β, where 0.9 → 0.99 matters as much as 0.99 → 0.999.

    β averages over about 1 / (1 - β) steps, so the sensitive quantity is 1 - β; uniform β in
    [0.9, 0.999] would spend 90% of the trials on β < 0.99.

    >>> [Log1mUniform(0.9, 0.999).from_unit(u) for u in (0, 0.5, 1)]
    [0.9, 0.99, 0.999]
    """

    scale: ClassVar[str] = "log1m"

    @staticmethod
    def _warp(value: float) -> float:
        return -math.log10(1.0 - value)

    @staticmethod
    def _unwarp(warped: float) -> float:
        return 1.0 - 10.0 ** (-warped)

    def _tidy(self, value: float) -> float:
        return 1.0 - _round_sig(1.0 - value)

    def distribution(self) -> FloatDistribution:
        return FloatDistribution(1.0 - self.high, 1.0 - self.low, log=True)

    def optuna_name(self, name: str) -> str:
        return f"1-{name}"

    def from_optuna(self, value: Any) -> float:
        beta = 1.0 - _round_sig(float(value))
        return min(max(beta, self.low), self.high)

    def to_optuna(self, value: Any) -> float:
        return 1.0 - float(value)


@dataclass(frozen=True)
class IntUniform(Param):
    """A whole number in [low, high], both ends included, each equally likely.

    >>> IntUniform(2, 4).grid(10)
    [2, 3, 4]
    """

    low: int
    high: int
    scale: ClassVar[str] = "int"

    @property
    def size(self) -> float:
        return self.high - self.low + 1

    def to_unit(self, value: int) -> float:
        if self.high == self.low:
            return 0.5
        return (float(value) - self.low) / (self.high - self.low)

    def from_unit(self, u: float) -> int:
        return int(min(max(round(self.low + float(u) * (self.high - self.low)), self.low), self.high))

    def grid(self, k: int) -> list[int]:
        if k <= 1:
            return [self.from_unit(0.5)]
        return sorted({self.from_unit(u) for u in np.linspace(0.0, 1.0, min(k, int(self.size)))})

    def contains(self, value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and self.low <= value <= self.high

    def spec(self) -> str:
        return f"int:{self.low}:{self.high}"

    def to_json(self) -> dict:
        return {"scale": "int", "min": self.low, "max": self.high}

    def distribution(self) -> IntDistribution:
        return IntDistribution(int(self.low), int(self.high))

    def from_optuna(self, value: Any) -> int:
        return int(value)

    def within(self, u_low: float, u_high: float) -> "IntUniform":
        """The whole numbers between unit positions ``u_low`` and ``u_high``, rounded outward."""
        span = self.high - self.low
        low = self.low + math.floor(max(0.0, u_low) * span + 1e-9)
        high = self.low + math.ceil(min(1.0, u_high) * span - 1e-9)
        return IntUniform(int(low), int(max(low, high)))


@dataclass(frozen=True)
class Choice(Param):
    """One of a list of values (optimizer, batch norm on or off); a single value is a fixed one.

    >>> Choice(("adam", "sgd")).spec()
    'choice:adam,sgd'
    """

    values: tuple
    scale: ClassVar[str] = "choice"

    @property
    def size(self) -> float:
        return len(self.values)

    @property
    def fixed(self) -> bool:
        return len(self.values) == 1

    def grid(self, k: int) -> list:
        return list(self.values)

    def contains(self, value: Any) -> bool:
        return any(value == v and type(value) is type(v) for v in self.values)

    def spec(self) -> str:
        text = ",".join(format_value(v) for v in self.values)
        return text if self.fixed else f"choice:{text}"

    def to_json(self) -> dict:
        return {"scale": "choice", "values": list(self.values)}

    def distribution(self) -> CategoricalDistribution:
        return CategoricalDistribution(self.values)


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


SCALES: dict[str, type[Param]] = {
    "log": LogUniform,
    "log1m": Log1mUniform,
    "int": IntUniform,
    "float": FloatUniform,
    "choice": Choice,
}

