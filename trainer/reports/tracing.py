"""A measured lesson: why Panda keeps the learning rate in a ``tf.Variable``, and what ``@tf.function`` buys.

``@tf.function`` traces a Python function into a graph once per *signature*. A learning rate
passed as a Python float is part of the signature, so every new value traces (and compiles) the
step again; a ``tf.Variable`` is read by the graph when it runs, so ``.assign`` changes the next
step with no retrace. This module runs both on a real model and counts the traces TensorFlow
reports, and times the same step eagerly and compiled. Nothing here is a canned number.

``panda lesson tracing`` prints the report; the Lessons page shows it.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from trainer.training.model import build_model


@dataclass(frozen=True)
class TracingReport:
    """What the demonstration measured."""

    changes: int  # how many times the learning rate changed
    traces_python_float: int  # traces of the step when α is a Python float argument
    traces_variable: int  # traces of the step when α is a tf.Variable
    eager_ms: float  # median milliseconds of one eager step
    compiled_ms: float  # median milliseconds of one compiled step (after its trace)
    parameters: int

    @property
    def speedup(self) -> float:
        return self.eager_ms / self.compiled_ms if self.compiled_ms > 0 else float("nan")

    def lines(self) -> list[str]:
        return [
            f"model: {self.parameters:,} parameters; the learning rate changed {self.changes} times",
            f"α as a Python float: the step was traced {self.traces_python_float} times (once per new value)",
            f"α as a tf.Variable:  the step was traced {self.traces_variable} time(s); .assign needs no retrace",
            f"one step eagerly: {self.eager_ms:.2f} ms; compiled with @tf.function: {self.compiled_ms:.2f} ms "
            f"({self.speedup:.1f}x)",
        ]


def _median_ms(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def measure(*, input_shape=(64,), n_classes: int = 10, layers: int = 2, units: int = 64, batch_norm: bool = True,
            model_kind: str = "mlp", batch_size: int = 64, changes: int = 7, repeats: int = 30,
            seed: int = 0) -> TracingReport:
    """Trace and time a GradientTape step of this model (a run's own model, from its config)."""
    keras.utils.set_random_seed(seed)
    model = build_model(model_kind, input_shape, n_classes, layers, units, batch_norm, 0.0)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    rng = np.random.default_rng(seed)
    x = tf.constant(rng.normal(size=(batch_size, *input_shape)).astype("float32"))
    y = tf.constant(rng.integers(0, n_classes, size=batch_size).astype("int32"))
    model(x[:1])  # build the weights

    def sgd_step(lr):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        for w, g in zip(model.trainable_variables, grads):
            w.assign_sub(tf.cast(lr, w.dtype) * g)
        return loss

    with_float = tf.function(sgd_step)
    lr_variable = tf.Variable(0.01, trainable=False)
    with_variable = tf.function(lambda: sgd_step(lr_variable))
    values = [0.01 * 0.5**i for i in range(changes + 1)]  # the first value, then `changes` new ones
    for value in values:
        with_float(value)  # a Python float is a constant baked into the graph: a new one retraces
        lr_variable.assign(value)
        with_variable()
    eager = _median_ms(lambda: sgd_step(lr_variable), repeats)
    compiled = _median_ms(with_variable, repeats)
    return TracingReport(
        changes=changes, traces_python_float=with_float.experimental_get_tracing_count(),
        traces_variable=with_variable.experimental_get_tracing_count(), eager_ms=eager, compiled_ms=compiled,
        parameters=int(model.count_params()))


def measure_run(config: dict, **kwargs) -> TracingReport:
    """:func:`measure` on the model a run's ``config.json`` describes (digits-sized when it says nothing)."""
    hp = config.get("hparams") or {}
    data = config.get("dataset") or {}
    features = data.get("n_features") if isinstance(data, dict) else None
    return measure(
        input_shape=(int(features),) if isinstance(features, int) and features > 0 else (64,),
        n_classes=int(data.get("n_classes") or 10) if isinstance(data, dict) else 10,
        layers=int(hp.get("layers") or 2), units=int(hp.get("units") or 64),
        batch_norm=bool(hp.get("batch_norm", True)), batch_size=int(hp.get("batch_size") or 64), **kwargs)
