"""What ``PandaCallback`` makes of ``fit``'s numbers: floats, accuracy, per-batch losses, the model's signature.

Pure helpers, tested without a ``fit``.

>>> batch_losses({0: 2.0, 1: 1.5, 2: 1.25}, base_batch=0, batch_size=10, seen=28)
[(0, 2.0), (1, 1.0), (2, 0.625)]
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass

import numpy as np

#: Keras log keys that mean "accuracy", in order of preference.
ACCURACY_KEYS = ("accuracy", "sparse_categorical_accuracy", "categorical_accuracy", "binary_accuracy", "acc",
                 "compile_metrics")


def as_float(value) -> float | None:
    """A Python float from a number, numpy or TensorFlow scalar or Keras variable; else ``None``."""
    if value is None or isinstance(value, (str, bool)):
        return None
    try:
        return float(np.asarray(value).item())
    except (TypeError, ValueError, AttributeError):
        return None


def model_signature(model) -> dict:
    """What makes a checkpoint of ``model`` restorable: layer types, weight shapes, optimizer.

    Names are left out: Keras numbers them per process (``dense_3``), so the same architecture
    built in another process has the same signature. Read from the variables that exist, never
    through ``count_params`` (it raises for a model Keras has not marked built, e.g. one that only
    overrides ``train_step``).
    """
    layers = [[type(layer).__name__, [list(map(int, w.shape)) for w in layer.weights]] for layer in model.layers]
    optimizer = type(model.optimizer).__name__ if getattr(model, "optimizer", None) is not None else None
    digest = hashlib.sha256(json.dumps([layers, optimizer]).encode()).hexdigest()[:16]
    params = sum(int(np.prod(w.shape)) for w in model.weights)
    return {"sha": digest, "class": type(model).__name__, "name": model.name, "optimizer": optimizer,
            "layers": len(model.layers), "params": params}


def unbuilt(model) -> bool:
    """Whether some layer of ``model`` has not made its variables yet (a subclassed model before its first call)."""
    flatten = getattr(model, "_flatten_layers", None)
    inner = list(flatten(include_self=False)) if callable(flatten) else list(model.layers)
    return not model.trainable_variables or any(not getattr(layer, "built", True) for layer in inner)


@dataclass(frozen=True)
class FitData:
    """What ``fit``'s data says of its batches: their size, the last one's, and how many an epoch (``None``: unknown)."""

    batch_size: int | None = None
    partial: int | None = None
    num_batches: int | None = None

    @classmethod
    def of_fit(cls) -> "FitData":
        """Read from the data adapter of the ``fit`` that is calling (its ``epoch_iterator``), best effort.

        Keras hands callbacks no batch size; a ``train_step`` of its own never feeds the loss
        tracker that counts examples. The adapter is a local of Keras's ``fit``: when a Keras
        version has none there, everything is ``None`` and the first batch decides.
        """
        frame = sys._getframe(1)
        while frame is not None:
            adapter = getattr(frame.f_locals.get("epoch_iterator"), "data_adapter", None)
            if frame.f_code.co_name == "fit" and adapter is not None:
                return cls(*(_positive(getattr(adapter, k, None)) for k in ("batch_size", "partial_batch_size",
                                                                             "num_batches")))
            frame = frame.f_back
        return cls()


def _positive(value) -> int | None:
    try:
        return int(value) if value is not None and int(value) > 0 else None
    except (TypeError, ValueError):
        return None


def accuracy_of(logs: dict, prefix: str = "") -> float | None:
    """The accuracy in Keras ``logs``, whatever the compiled metric was called.

    A multi-output model's accuracy is the first output's that has one (``digit_accuracy``).

    >>> accuracy_of({"loss": 1.0, "digit_accuracy": 0.5, "val_digit_accuracy": 0.25})
    0.5
    >>> accuracy_of({"val_digit_accuracy": 0.25}, "val_")
    0.25
    """
    for key in ACCURACY_KEYS:
        value = logs.get(prefix + key)
        if isinstance(value, (int, float)):
            return float(value)
    for key, value in logs.items():
        mine = key.startswith(prefix) and (prefix or not key.startswith("val_"))
        if mine and key.endswith("_accuracy") and isinstance(value, (int, float)):
            return float(value)
    return None


def batch_losses(means: dict, base_batch: int, batch_size: int | None, seen: int | None) -> list[tuple[int, float]]:
    """(batch, loss) of each batch from ``base_batch`` on, out of Keras's running means of the loss.

    ``means[b]`` is the mean over batches ``base_batch`` .. ``b`` (a number or a tensor, read here);
    batches hold ``batch_size`` examples, except the last, which makes the epoch's ``seen``.
    """
    batches = sorted(b for b in means if b >= base_batch)
    out, total0, n0 = [], 0.0, 0
    for i, b in enumerate(batches):
        mean = as_float(means[b])
        if mean is None:
            continue
        n = (b + 1 - base_batch) * batch_size if batch_size else b + 1 - base_batch
        if i == len(batches) - 1 and seen:
            n = seen  # the last batch may be smaller
        loss = (mean * n - total0) / (n - n0) if n > n0 else mean
        out.append((b, loss))
        total0, n0 = mean * n, n
    return out
