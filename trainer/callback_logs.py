"""What ``PandaCallback`` makes of ``fit``'s numbers: floats, accuracy, per-batch losses, the model's signature.

Pure helpers, tested without a ``fit``.

>>> batch_losses({0: 2.0, 1: 1.5, 2: 1.25}, base_batch=0, batch_size=10, seen=28)
[(0, 2.0), (1, 1.0), (2, 0.625)]
"""

from __future__ import annotations

import hashlib
import json

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
    built in another process has the same signature.
    """
    layers = [[type(layer).__name__, [list(map(int, w.shape)) for w in layer.weights]] for layer in model.layers]
    optimizer = type(model.optimizer).__name__ if getattr(model, "optimizer", None) is not None else None
    digest = hashlib.sha256(json.dumps([layers, optimizer]).encode()).hexdigest()[:16]
    return {"sha": digest, "class": type(model).__name__, "name": model.name, "optimizer": optimizer,
            "layers": len(model.layers), "params": int(model.count_params())}


def accuracy_of(logs: dict, prefix: str = "") -> float | None:
    """The accuracy in Keras ``logs``, whatever the compiled metric was called."""
    for key in ACCURACY_KEYS:
        value = logs.get(prefix + key)
        if isinstance(value, (int, float)):
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
