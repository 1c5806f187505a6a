"""The scale each hyperparameter lives on, and a step along it that stays in the table's range.

A learning rate lives on a log scale (0.001 to 0.01 is as far as 0.01 to 0.1), β on 1 − β's log
scale (0.9 averages over ~10 steps, 0.99 over ~100, 0.999 over ~1000). PBT's explore step
(:mod:`trainer.search.pbt`) moves a value by a factor *on that scale*: α × 0.8 or × 1.25, 1 − β
× 0.8 or × 1.25, so β = 0.99 becomes 0.992 or 0.9875, never 0.792. The range comes from the
hyperparameter table (:data:`trainer.contract.hparams.HYPERPARAMETERS`); the scale from the table's
dashboard controls (``trainer.contract.hparams.CONTROLS``) where it names one, else from
:data:`NATURAL_SCALES` below.

>>> round(step("beta", 0.99, 0.8), 6), round(step("beta", 0.99, 1.25), 6)
(0.992, 0.9875)
>>> step("lr", 9.0, 1.25)      # clamped to the table's (0, 10]
10.0
"""

from __future__ import annotations

import math

from trainer.contract import hparams
from trainer.contract.hparams import HYPERPARAMETERS

#: Where the table has no scale for a hyperparameter: how its values are spaced. Every name here
#: is a float hyperparameter of the table, and every scale one its kind may be searched on.
NATURAL_SCALES: dict[str, str] = {"lr": "log", "beta": "log1m", "beta2": "log1m", "epsilon": "log",
                                  "decay_rate": "float", "dropout": "float"}
#: A step multiplies the value (on its scale) by one of these: symmetric on a log scale (0.8 × 1.25 = 1).
FACTORS = (0.8, 1.25)


def scale_of(name: str) -> str:
    """The scale ``name`` lives on: the table's control's when it has one, else :data:`NATURAL_SCALES`."""
    control = getattr(hparams, "CONTROLS", {}).get(name)
    scale = getattr(control, "scale", None)
    return scale if scale in ("log", "log1m", "float") else NATURAL_SCALES.get(name, "float")


def clamp(name: str, value: float) -> float:
    """``value`` pulled inside the table's range for ``name`` (an open end: the nearest float inside)."""
    opt = HYPERPARAMETERS[name]
    if opt.low is not None and (value < opt.low or (opt.low_open and value <= opt.low)):
        value = math.nextafter(opt.low, math.inf) if opt.low_open else float(opt.low)
    if opt.high is not None and (value > opt.high or (opt.high_open and value >= opt.high)):
        value = math.nextafter(opt.high, -math.inf) if opt.high_open else float(opt.high)
    return value


def step(name: str, value: float, factor: float) -> float:
    """``value`` moved by ``factor`` on ``name``'s scale, clamped to the table's range and checked by it."""
    scale = scale_of(name)
    if scale == "log1m":
        moved = 1.0 - (1.0 - value) * factor
    else:  # log: a factor is a step; float: the same relative move, the best a scale without a unit offers
        moved = value * factor
    return HYPERPARAMETERS[name].check(clamp(name, moved))


__all__ = ["FACTORS", "NATURAL_SCALES", "clamp", "scale_of", "step"]
