"""The network's insides, once per epoch, on a fixed probe of the validation set: ``internals.jsonl``.

What the tuning week teaches, measured on the run being trained so epochs are comparable:

* batch normalization, per layer: the batch mean and variance of its input z on the probe against
  the layer's moving mean and variance (averaged over units), small histograms of z before and
  after normalization, γ and β; and the probe's accuracy with the running statistics
  (``training=False``, what test time uses) against batch statistics (``training=True``);
* softmax: the class probabilities of about ten fixed examples (one per class where possible), and
  the confusion matrix on the probe;
* per layer, the weight norm and the gradient norm on the probe (vanishing or exploding
  gradients show here first);
* the compiled step's tracing count next to the hyperparameter changes it absorbed (supplied by
  the trainer).

A run stays small: every epoch up to :data:`EVERY_EPOCH_UNTIL`, then every tenth. The first line
(``kind: "probes"``) holds the probe examples themselves, so a page can draw them.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

#: Examples in the probe (a fixed slice of the validation set).
PROBE_SIZE = 512
#: Softmax examples shown (one per class where possible).
SOFTMAX_EXAMPLES = 10
#: Histogram bins; the normalized histogram spans [-NORM_RANGE, NORM_RANGE].
BINS = 20
NORM_RANGE = 4.0
#: No confusion matrix beyond this many classes (it would outgrow the record).
MAX_CONFUSION_CLASSES = 30
#: Record every epoch up to this one, then every tenth.
EVERY_EPOCH_UNTIL = 200


def due(epoch: int) -> bool:
    """Whether ``epoch`` gets a record (bounded size for long runs).

    >>> [e for e in (1, 200, 201, 210) if due(e)]
    [1, 200, 210]
    """
    return epoch <= EVERY_EPOCH_UNTIL or epoch % 10 == 0


def _r(value, digits: int = 5) -> float | None:
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


def _hist(values: np.ndarray, low: float, high: float) -> dict:
    counts, _ = np.histogram(np.clip(values, low, high), bins=BINS, range=(low, high))
    return {"edges": [_r(low), _r(high)], "counts": [int(c) for c in counts]}


class Probe:
    """A fixed slice of the validation set and the examples whose softmax the page shows."""

    def __init__(self, x_val: np.ndarray, y_val: np.ndarray, n_classes: int):
        n = min(len(x_val), PROBE_SIZE)
        self.x = tf.constant(x_val[:n])
        self.y = np.asarray(y_val[:n]).astype("int64")
        self.n_classes = n_classes
        picks: list[int] = []
        for c in range(n_classes):  # one example per class first, then the next ones in order
            hits = np.flatnonzero(self.y == c)
            if len(hits) and len(picks) < SOFTMAX_EXAMPLES:
                picks.append(int(hits[0]))
        picks += [i for i in range(n) if i not in picks][: SOFTMAX_EXAMPLES - len(picks)]
        self.softmax_index = sorted(picks)
        self._taps: dict[int, keras.Model] = {}

    def taps(self, model: keras.Model, layers: list) -> keras.Model:
        """A model that returns the inputs of ``layers``, built once per model."""
        if id(model) not in self._taps:
            self._taps[id(model)] = keras.Model(model.inputs, [layer.input for layer in layers])
        return self._taps[id(model)]

    def first_record(self) -> dict:
        """The probe examples themselves (flattened), their labels and shape, for drawing."""
        examples = np.asarray(tf.gather(self.x, self.softmax_index))
        return {"kind": "probes", "labels": [int(self.y[i]) for i in self.softmax_index],
                "shape": list(examples.shape[1:]), "examples": [[_r(v, 3) for v in e.ravel()] for e in examples]}


def _bn_layers(model: keras.Model) -> list:
    return [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


def batch_norm_stats(model: keras.Model, probe: Probe | None) -> list[dict]:
    """Per BN layer: moving statistics and γ, β; with a probe, the batch statistics and histograms too."""
    layers = _bn_layers(model)
    inputs = None
    if probe is not None and layers:
        inputs = probe.taps(model, layers)(probe.x, training=False)
        inputs = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    out = []
    for i, layer in enumerate(layers):
        moving_mean, moving_var = np.asarray(layer.moving_mean), np.asarray(layer.moving_variance)
        record = {"layer": layer.name, "moving_mean": _r(moving_mean.mean()), "moving_var": _r(moving_var.mean())}
        if layer.gamma is not None:
            gamma = np.asarray(layer.gamma)
            record.update(gamma_mean=_r(gamma.mean()), gamma_std=_r(gamma.std()))
        if layer.beta is not None:
            beta = np.asarray(layer.beta)
            record.update(beta_mean=_r(beta.mean()), beta_std=_r(beta.std()))
        if inputs is not None:
            z = np.asarray(inputs[i]).reshape(-1, moving_mean.shape[-1])
            mean, var = z.mean(axis=0), z.var(axis=0)
            normalized = (z - mean) / np.sqrt(var + layer.epsilon)
            low, high = np.percentile(z, [1, 99])
            record.update(batch_mean=_r(mean.mean()), batch_var=_r(var.mean()),
                          gap_mean=_r(np.abs(mean - moving_mean).mean()),
                          gap_var=_r(np.abs(var - moving_var).mean()),
                          hist_z=_hist(z.ravel(), float(low), float(high) if high > low else float(low) + 1.0),
                          hist_normalized=_hist(normalized.ravel(), -NORM_RANGE, NORM_RANGE))
        out.append(record)
    return out


def _accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    return float((logits.argmax(axis=-1) == y).mean()) if len(y) else float("nan")


def train_vs_test_mode(model: keras.Model, probe: Probe) -> tuple[dict, np.ndarray]:
    """The probe's accuracy with running statistics (test time) and with batch statistics, and the test-mode logits.

    ``training=True`` updates the moving statistics as a side effect, so they are put back.
    """
    layers = _bn_layers(model)
    saved = [(layer.moving_mean.numpy(), layer.moving_variance.numpy()) for layer in layers]
    test = np.asarray(model(probe.x, training=False))
    train = np.asarray(model(probe.x, training=True))
    for layer, (mean, var) in zip(layers, saved):
        layer.moving_mean.assign(mean)
        layer.moving_variance.assign(var)
    return {"test_mode": _r(_accuracy(test, probe.y)), "train_mode": _r(_accuracy(train, probe.y))}, test


def layer_norms(model: keras.Model, probe: Probe | None) -> list[dict]:
    """Per layer with weights: the weight norm, and the gradient norm of the loss on the probe."""
    grads: dict[str, float] = {}
    if probe is not None:
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        with tf.GradientTape() as tape:
            loss = loss_fn(probe.y, model(probe.x, training=False))
        variables = model.trainable_variables
        for v, g in zip(variables, tape.gradient(loss, variables)):
            if g is not None:
                grads[v.path if hasattr(v, "path") else v.name] = float(tf.reduce_sum(tf.square(g)))
    out = []
    for layer in model.layers:
        weights = layer.trainable_weights
        if not weights:
            continue
        record = {"layer": layer.name, "weight_norm": _r(math.sqrt(sum(float(tf.reduce_sum(tf.square(w))) for w in weights)))}
        if probe is not None:
            record["grad_norm"] = _r(math.sqrt(sum(grads.get(w.path if hasattr(w, "path") else w.name, 0.0)
                                                   for w in weights)), 7)
        out.append(record)
    return out


def softmax_and_confusion(logits: np.ndarray, probe: Probe) -> dict:
    probs = tf.nn.softmax(logits[probe.softmax_index]).numpy()
    record = {"softmax": [[_r(p, 4) for p in row] for row in probs]}
    if probe.n_classes <= MAX_CONFUSION_CLASSES:
        matrix = np.zeros((probe.n_classes, probe.n_classes), dtype=int)
        np.add.at(matrix, (probe.y, logits.argmax(axis=-1)), 1)
        record["confusion"] = matrix.tolist()
    return record


def measure(model: keras.Model, probe: Probe | None, *, epoch: int, step: int, branch: int,
            tracing: dict | None = None) -> dict:
    """One epoch's ``internals.jsonl`` record (``probe`` is ``None`` when no data is at hand)."""
    record = {"kind": "epoch", "epoch": epoch, "step": step, "branch": branch,
              "batch_norm": batch_norm_stats(model, probe),
              "layers": layer_norms(model, probe)}
    if probe is not None:
        modes, logits = train_vs_test_mode(model, probe)
        if _bn_layers(model):
            record["bn_accuracy"] = modes
        record.update(softmax_and_confusion(logits, probe))
    if tracing is not None:
        record["tracing"] = tracing
    return record
