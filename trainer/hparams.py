"""Hyperparameters of a run, and the learning-rate decay schedules of the course.

Pure Python (no TensorFlow), so clients can read and validate them cheaply.

>>> hp = Hyperparameters(lr=0.1, decay="inverse", decay_rate=1.0)
>>> [round(hp.decayed_lr(0.1, t), 4) for t in range(4)]   # alpha0 / (1 + rate * t)
[0.1, 0.05, 0.0333, 0.025]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from trainer import commands

OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam")
DECAYS = ("none", "inverse", "exponential")
DEFAULT_BETA = 0.9


@dataclass
class Hyperparameters:
    """Everything that shapes a run. ``lr``, ``beta`` and ``batch_size`` may change while it trains."""

    optimizer: str = "adam"
    lr: float = 3e-3
    beta: float | None = None  # momentum beta, RMSprop rho, Adam beta1; None for sgd
    beta2: float = 0.999
    epsilon: float = 1e-7
    batch_size: int = 64
    decay: str = "none"
    decay_rate: float = 0.0
    layers: int = 2
    units: int = 64
    batch_norm: bool = True
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.beta is None and self.optimizer != "sgd":
            self.beta = DEFAULT_BETA

    def validate(self) -> "Hyperparameters":
        """Raise ``ValueError`` naming the first bad value."""
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r} (choose from {', '.join(OPTIMIZERS)})")
        if self.decay not in DECAYS:
            raise ValueError(f"unknown decay {self.decay!r} (choose from {', '.join(DECAYS)})")
        self.lr = commands.check_lr(self.lr)
        if self.beta is not None:
            if self.optimizer == "sgd":
                raise ValueError("plain sgd has no beta; use --optimizer momentum")
            self.beta = commands.check_beta(self.beta)
        self.beta2 = commands.check_beta(self.beta2)
        if not self.epsilon > 0:
            raise ValueError(f"epsilon must be > 0, got {self.epsilon}")
        self.batch_size = commands.check_batch_size(self.batch_size)
        if not self.decay_rate >= 0:
            raise ValueError(f"decay rate must be >= 0, got {self.decay_rate}")
        if self.decay == "exponential" and not 0 < self.decay_rate <= 1:
            raise ValueError(f"exponential decay needs a rate in (0, 1], got {self.decay_rate}")
        if self.layers < 0:
            raise ValueError(f"layers must be >= 0, got {self.layers}")
        if self.units < 1:
            raise ValueError(f"units must be >= 1, got {self.units}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        return self

    def decayed_lr(self, lr0: float, epochs_since: int) -> float:
        """The learning rate ``epochs_since`` epochs after it was set to ``lr0``."""
        if self.decay == "inverse":
            return lr0 / (1.0 + self.decay_rate * epochs_since)
        if self.decay == "exponential":
            return lr0 * self.decay_rate**epochs_since
        return lr0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Hyperparameters":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
