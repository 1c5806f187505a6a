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

A run stays small: every epoch up to :data:`EVERY_EPOCH_UNTIL`, then every tenth; and cheap: an epoch
is skipped while measuring has cost more than 3 % of the run's time (:class:`Cadence`). The first line
(``kind: "probes"``) holds the probe examples themselves, so a page can draw them.
"""

from __future__ import annotations

import math
import time

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


class Cadence:
    """Which epochs get measured: :func:`due` ones, as long as measuring has cost at most ``share`` of the
    run's wall time so far (so a tiny, fast model is measured every few epochs rather than slowed down)."""

    def __init__(self, share: float = 0.03):
        self.share = share
        self.started: float | None = None  # the first measurement: the budget grows with training time from there
        self.spent = 0.0
        self.measured = 0

    def due(self, epoch: int) -> bool:
        if not due(epoch):
            return False
        if self.started is None:
            self.started = time.perf_counter()
            return True
        return self.spent <= self.share * (time.perf_counter() - self.started)

    def timed(self, work):
        """Run ``work()`` and count its time against the budget (not the first: it builds the compiled pass)."""
        start = time.perf_counter()
        try:
            return work()
        finally:
            if self.measured:
                self.spent += time.perf_counter() - start
            self.measured += 1


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
        self._passes: dict[int, object] = {}

    def first_record(self) -> dict:
        """The probe examples themselves (flattened), their labels and shape, for drawing."""
        examples = np.asarray(tf.gather(self.x, self.softmax_index))
        return {"kind": "probes", "labels": [int(self.y[i]) for i in self.softmax_index],
                "shape": list(examples.shape[1:]), "examples": [[_r(v, 3) for v in e.ravel()] for e in examples]}

    def forward(self, model: keras.Model) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, dict[str, float]]:
        """One compiled pass over the probe: the BN layers' inputs, test-mode and train-mode logits, and the
        squared gradient norm of each variable (test mode). Built once per model, so an epoch pays one call."""
        if id(model) not in self._passes:
            self._passes[id(model)] = _compiled_pass(model)
        taps, test, train, grads = self._passes[id(model)](self.x, tf.constant(self.y))
        names = [_name(v) for v in model.trainable_variables]
        return [np.asarray(t) for t in taps], np.asarray(test), np.asarray(train), dict(zip(names, map(float, grads)))


def _name(variable) -> str:
    return variable.path if hasattr(variable, "path") else variable.name


def _compiled_pass(model: keras.Model):
    layers = _bn_layers(model)
    taps = keras.Model(model.inputs, [layer.input for layer in layers]) if layers else None
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def run(x, y):
        inputs = taps(x, training=False) if taps is not None else []
        inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        with tf.GradientTape() as tape:
            test = model(x, training=False)
            loss = loss_fn(y, test)
        grads = tape.gradient(loss, model.trainable_variables)
        norms = [tf.reduce_sum(tf.square(g)) if g is not None else tf.constant(0.0) for g in grads]
        train = model(x, training=True)  # batch statistics; moves the moving statistics (put back by the caller)
        return inputs, test, train, norms

    return run

def _bn_layers(model: keras.Model) -> list:
    return [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


def batch_norm_stats(model: keras.Model, inputs: list[np.ndarray] | None) -> list[dict]:
    """Per BN layer: moving statistics and γ, β; with the probe's inputs to each layer, the batch
    statistics and histograms too."""
    layers = _bn_layers(model)
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
        if inputs:
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


def layer_norms(model: keras.Model, grads: dict[str, float] | None) -> list[dict]:
    """Per layer with weights: the weight norm, and (with a probe) the gradient norm of the loss on it."""
    out = []
    for layer in model.layers:
        weights = layer.trainable_weights
        if not weights:
            continue
        record = {"layer": layer.name,
                  "weight_norm": _r(math.sqrt(sum(float(np.sum(np.square(w.numpy()))) for w in weights)))}
        if grads is not None:
            record["grad_norm"] = _r(math.sqrt(sum(grads.get(_name(w), 0.0) for w in weights)), 7)
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
    inputs = grads = None
    if probe is not None:
        layers = _bn_layers(model)
        saved = [(layer.moving_mean.numpy(), layer.moving_variance.numpy()) for layer in layers]
        inputs, test, train, grads = probe.forward(model)
        for layer, (mean, var) in zip(layers, saved):  # the train-mode pass moved them: put them back
            layer.moving_mean.assign(mean)
            layer.moving_variance.assign(var)
    record = {"kind": "epoch", "epoch": epoch, "step": step, "branch": branch,
              "batch_norm": batch_norm_stats(model, inputs), "layers": layer_norms(model, grads)}
    if probe is not None:
        if _bn_layers(model):
            record["bn_accuracy"] = {"test_mode": _r(_accuracy(test, probe.y)),
                                     "train_mode": _r(_accuracy(train, probe.y))}
        record.update(softmax_and_confusion(test, probe))
    if tracing is not None:
        record["tracing"] = tracing
    return record
