"""Save the exact training state in memory and put it back bit for bit.

A :class:`Snapshot` copies every variable it is given (weights, batch-norm moving statistics,
dropout seed states, optimizer slots and iteration count, the epoch's data order and position, the
on-device metric sums, the hyperparameter knobs) to host memory with ``.numpy()``, plus any Python
values the caller names (step counters, the hyperparameters object). :meth:`Snapshot.restore`
assigns the copies back: the same bytes, so training after a restore is the training that would
have happened without the detour. Nothing touches the disk; exploring (``find_lr``, ``fork``,
:mod:`trainer.training.exploration`) takes one before it trains and restores it after.

>>> import tensorflow as tf
>>> v = tf.Variable([1.0, 2.0])
>>> snap = Snapshot.take([v], step=7)
>>> _ = v.assign([3.0, 4.0])
>>> snap.restore(), v.numpy().tolist()
({'step': 7}, [1.0, 2.0])
"""

from __future__ import annotations

import copy
from typing import Any, Iterable

import numpy as np


def unique(variables: Iterable[Any]) -> list[Any]:
    """``variables`` without repeats (the same variable may be reachable twice, e.g. the lr knob)."""
    seen: set[int] = set()
    out = []
    for v in variables:
        if v is not None and id(v) not in seen:
            seen.add(id(v))
            out.append(v)
    return out


class Snapshot:
    """Host copies of some variables' values and of some Python values, restorable exactly."""

    def __init__(self, variables: list[Any], values: list[np.ndarray], python: dict[str, Any]):
        self.variables = variables
        self.values = values
        self.python = python

    @classmethod
    def take(cls, variables: Iterable[Any], **python: Any) -> "Snapshot":
        variables = unique(variables)
        values = [np.array(v.numpy(), copy=True) for v in variables]
        return cls(variables, values, copy.deepcopy(python))

    def restore(self) -> dict[str, Any]:
        """Assign every saved value back; returns a fresh copy of the saved Python values."""
        for variable, value in zip(self.variables, self.values):
            variable.assign(value)
        return copy.deepcopy(self.python)

    def matches(self) -> bool:
        """Whether every variable holds exactly (bit for bit) the saved value now."""
        return all(np.array_equal(np.asarray(v.numpy()), value, equal_nan=True) and
                   np.asarray(v.numpy()).tobytes() == value.tobytes()
                   for v, value in zip(self.variables, self.values))
