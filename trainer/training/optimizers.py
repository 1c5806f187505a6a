"""Keras optimizers whose learning rate and beta are ``tf.Variable``s, steerable mid-run.

A compiled ``tf.function`` reads a variable's value on every call, so ``.assign`` changes the
next step without retracing. A Python float would be baked into the graph as a constant.

>>> import tensorflow as tf
>>> opt, knobs = make_optimizer("momentum", lr=0.1, beta=0.9)
>>> float(knobs.beta.assign(0.5)), type(knobs.lr).__name__
(0.5, 'Variable')
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import tensorflow as tf


@dataclass
class Knobs:
    """The variables a user turns while training: ``lr`` (the optimizer's own) and ``beta``."""

    lr: "keras.Variable"
    beta: tf.Variable | None


class SteerableMomentum(keras.optimizers.SGD):
    """SGD with momentum where beta is a ``tf.Variable``.

    Keras's SGD branches in Python on ``momentum != 0``, which a variable cannot answer while
    tracing; this keeps the same update, v <- beta * v - lr * g; w <- w + v, unconditionally.
    """

    def __init__(self, learning_rate, momentum: tf.Variable, **kwargs):
        super().__init__(learning_rate=learning_rate, momentum=0.5, **kwargs)  # 0.5: build slots
        self.momentum = momentum

    def update_step(self, gradient, variable, learning_rate):
        lr = tf.cast(learning_rate, variable.dtype)
        beta = tf.cast(self.momentum, variable.dtype)
        velocity = self.momentums[self._get_variable_index(variable)]
        self.assign(velocity, velocity * beta - tf.cast(gradient, variable.dtype) * lr)
        self.assign_add(variable, velocity)


def make_optimizer(name: str, lr: float, beta: float | None = None, beta2: float = 0.999,
                   epsilon: float = 1e-7) -> tuple[keras.optimizers.Optimizer, Knobs]:
    """One of ``sgd``, ``momentum``, ``rmsprop``, ``adam``, with its steerable knobs."""
    beta_var = None if beta is None or name == "sgd" else tf.Variable(
        beta, dtype=tf.float32, trainable=False, name="beta")
    if name == "sgd":
        opt = keras.optimizers.SGD(learning_rate=lr)
    elif name == "momentum":
        opt = SteerableMomentum(learning_rate=lr, momentum=beta_var)
    elif name == "rmsprop":
        opt = keras.optimizers.RMSprop(learning_rate=lr, epsilon=epsilon)
        opt.rho = beta_var
    elif name == "adam":
        opt = keras.optimizers.Adam(learning_rate=lr, beta_2=beta2, epsilon=epsilon)
        opt.beta_1 = beta_var
    else:
        raise ValueError(f"unknown optimizer {name!r}")
    return opt, Knobs(lr=opt.learning_rate, beta=beta_var)
