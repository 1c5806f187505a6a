"""Small real Keras programs in the shapes of Keras's own guides, for PandaCallback's corpus tests.

Each :class:`Program` builds a fresh, compiled model from a fixed seed and says how ``fit`` is
called (its data, batch size, epochs, the user's own callbacks), so the same program can be run
with and without ``PandaCallback`` and compared. Tiny data (scikit-learn digits, or arrays made
from a seeded generator) and 2-3 epochs each, so the whole corpus runs in a couple of minutes on 2 cores.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass
class Program:
    """``build()`` -> compiled model; ``fit_kwargs(tmp)`` -> what ``model.fit`` gets besides callbacks."""

    name: str
    build: Callable
    fit_kwargs: Callable
    batch_size: int
    beta: Callable = lambda opt: float(getattr(opt, "beta_1"))  # noqa: E731 - the β Panda must record
    user_callbacks: Callable = lambda tmp: []  # noqa: E731
    scope: Callable = contextlib.nullcontext  # the policy/strategy the program builds and fits under
    notes: dict = field(default_factory=dict)


def digits(n: int | None = None, flat: bool = True):
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype("float32")
    x = x.reshape(len(x), -1) if flat else x[..., None]
    y = d.target.astype("int32")
    return (x[:n], y[:n]) if n else (x, y)


def sparse_ce():
    import keras

    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


# ---------------------------------------------------------------- subclassed model with call()

def build_subclassed():
    import keras

    class MLP(keras.Model):  # "Making new layers and models via subclassing": never built before fit
        def __init__(self):
            super().__init__()
            self.hidden = keras.layers.Dense(32, activation="relu")
            self.dropout = keras.layers.Dropout(0.1)
            self.out = keras.layers.Dense(10)

        def call(self, x, training=False):
            return self.out(self.dropout(self.hidden(x), training=training))

    model = MLP()
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=sparse_ce(), metrics=["accuracy"])
    return model


def fit_digits(tmp, batch_size=64, epochs=3, **extra):
    x, y = digits(1024)
    return {"x": x, "y": y, "batch_size": batch_size, "epochs": epochs, "validation_split": 0.2, **extra}


# ---------------------------------------------------------------- VAE: train_step override, fit(x)

def build_vae():
    import keras
    import tensorflow as tf
    from keras import layers, ops

    class Sampling(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.seed_generator = keras.random.SeedGenerator(1337)

        def call(self, inputs):
            z_mean, z_log_var = inputs
            eps = keras.random.normal(shape=ops.shape(z_mean), seed=self.seed_generator)
            return z_mean + ops.exp(0.5 * z_log_var) * eps

    latent = 2
    enc_in = keras.Input(shape=(64,))
    h = layers.Dense(32, activation="relu")(enc_in)
    z_mean, z_log_var = layers.Dense(latent)(h), layers.Dense(latent)(h)
    encoder = keras.Model(enc_in, [z_mean, z_log_var, Sampling()([z_mean, z_log_var])], name="encoder")
    dec_in = keras.Input(shape=(latent,))
    decoder = keras.Model(dec_in, layers.Dense(64, activation="sigmoid")(layers.Dense(32, activation="relu")(dec_in)),
                          name="decoder")

    class VAE(keras.Model):  # "Variational AutoEncoder" (keras.io/examples): only train_step, no call()
        def __init__(self, encoder, decoder, **kwargs):
            super().__init__(**kwargs)
            self.encoder, self.decoder = encoder, decoder
            self.total_loss_tracker = keras.metrics.Mean(name="total_loss")
            self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
            self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")

        @property
        def metrics(self):
            return [self.total_loss_tracker, self.reconstruction_loss_tracker, self.kl_loss_tracker]

        def train_step(self, data):
            with tf.GradientTape() as tape:
                z_mean, z_log_var, z = self.encoder(data)
                reconstruction = self.decoder(z)
                reconstruction_loss = ops.mean(ops.sum(keras.losses.binary_crossentropy(
                    ops.expand_dims(data, -1), ops.expand_dims(reconstruction, -1)), axis=1))
                kl_loss = ops.mean(ops.sum(-0.5 * (1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var)), axis=1))
                total_loss = reconstruction_loss + kl_loss
            grads = tape.gradient(total_loss, self.trainable_weights)
            self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
            self.total_loss_tracker.update_state(total_loss)
            self.reconstruction_loss_tracker.update_state(reconstruction_loss)
            self.kl_loss_tracker.update_state(kl_loss)
            return {"loss": self.total_loss_tracker.result(),  # keys other than its metrics' names
                    "reconstruction_loss": self.reconstruction_loss_tracker.result(),
                    "kl_loss": self.kl_loss_tracker.result()}

    model = VAE(encoder, decoder)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model


def fit_vae(tmp):
    x, _ = digits(1024)
    return {"x": x, "batch_size": 64, "epochs": 3}


# ---------------------------------------------------------------- functional, multi-input multi-output

def build_functional():
    import keras
    from keras import layers

    image, meta = keras.Input(shape=(64,), name="image"), keras.Input(shape=(4,), name="meta")
    h = layers.concatenate([layers.Dense(32, activation="relu")(image), layers.Dense(8, activation="relu")(meta)])
    digit = layers.Dense(10, name="digit")(h)
    ink = layers.Dense(1, name="ink")(h)
    model = keras.Model([image, meta], {"digit": digit, "ink": ink})
    model.compile(optimizer=keras.optimizers.RMSprop(2e-3),
                  loss={"digit": sparse_ce(), "ink": keras.losses.MeanSquaredError()},
                  loss_weights={"digit": 1.0, "ink": 0.5}, metrics={"digit": ["accuracy"]})
    return model


def fit_functional(tmp):
    x, y = digits(1024)
    meta = np.stack([x.mean(1), x.std(1), x[:, :32].mean(1), x[:, 32:].mean(1)], axis=1).astype("float32")
    weights = np.where(y % 2 == 0, 1.0, 0.5).astype("float32")  # a sample_weight per example
    return {"x": {"image": x, "meta": meta}, "y": {"digit": y, "ink": x.mean(1, keepdims=True)},
            "sample_weight": {"digit": weights, "ink": weights},
            "batch_size": 64, "epochs": 2, "validation_split": 0.2}


# ---------------------------------------------------------------- tf.data with preprocessing layers

def build_pipeline():
    import keras
    from keras import layers

    x, _ = digits(1024, flat=False)
    norm = layers.Normalization(axis=None)
    norm.adapt(x)
    model = keras.Sequential([keras.Input(shape=(8, 8, 1)), norm, layers.RandomTranslation(0.1, 0.1, seed=3),
                              layers.Conv2D(8, 3, padding="same", activation="relu"), layers.BatchNormalization(),
                              layers.GlobalAveragePooling2D(), layers.Dense(10)])
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss=sparse_ce(), metrics=["accuracy"])
    return model


def fit_pipeline(tmp):
    import tensorflow as tf

    x, y = digits(1024, flat=False)
    train = tf.data.Dataset.from_tensor_slices((x[:800], y[:800])).shuffle(800, seed=5).batch(50).prefetch(2)
    val = tf.data.Dataset.from_tensor_slices((x[800:], y[800:])).batch(50)
    return {"x": train, "validation_data": val, "epochs": 2, "class_weight": {k: 1.0 + (k == 8) for k in range(10)}}


# ---------------------------------------------------------------- a tiny Transformer for text, with a schedule

def build_transformer():
    import keras
    from keras import layers

    vocab, length = 50, 16
    tokens = keras.Input(shape=(length,), dtype="int32")
    h = layers.Embedding(vocab, 16)(tokens)
    attn = layers.MultiHeadAttention(num_heads=2, key_dim=8)(h, h)
    h = layers.LayerNormalization()(h + attn)
    h = layers.LayerNormalization()(h + layers.Dense(16)(layers.Dense(32, activation="relu")(h)))
    out = layers.Dense(2)(layers.GlobalAveragePooling1D()(h))
    model = keras.Model(tokens, out)
    schedule = keras.optimizers.schedules.CosineDecay(1e-4, decay_steps=60, warmup_target=2e-3, warmup_steps=10)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=sparse_ce(), metrics=["accuracy"])
    return model


def fit_transformer(tmp):
    rng = np.random.default_rng(7)
    x = rng.integers(1, 50, size=(640, 16)).astype("int32")
    y = ((x == 7).sum(1) > 0).astype("int32")  # "does the text hold word 7?"
    return {"x": x, "y": y, "batch_size": 32, "epochs": 2, "validation_split": 0.25}


# ---------------------------------------------------------------- time-series convnet with the usual callbacks

def build_timeseries():
    import keras
    from keras import layers

    model = keras.Sequential([keras.Input(shape=(32, 1)), layers.Conv1D(8, 3, padding="same", activation="relu"),
                              layers.BatchNormalization(), layers.Conv1D(8, 3, padding="same", activation="relu"),
                              layers.GlobalAveragePooling1D(), layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=sparse_ce(), metrics=["sparse_categorical_accuracy"])
    return model


def series():
    rng = np.random.default_rng(11)
    t = np.linspace(0, 4 * np.pi, 32, dtype="float32")
    y = rng.integers(0, 2, size=512).astype("int32")
    freq = np.where(y == 1, 2.0, 1.0)[:, None]
    x = np.sin(freq * t[None, :]) + 0.3 * rng.standard_normal((512, 32))
    return x[..., None].astype("float32"), y


def fit_timeseries(tmp):
    x, y = series()
    return {"x": x, "y": y, "batch_size": 32, "epochs": 3, "validation_split": 0.25}


def timeseries_callbacks(tmp):
    import keras

    return [keras.callbacks.ModelCheckpoint(str(tmp / "best.keras"), save_best_only=True, monitor="val_loss"),
            keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0, min_delta=10.0, min_lr=1e-5),
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=5, restore_best_weights=True)]


# ---------------------------------------------------------------- steps_per_execution, BackupAndRestore

def build_spe():
    import keras

    model = keras.Sequential([keras.Input(shape=(64,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(10)])
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.5), loss=sparse_ce(), metrics=["accuracy"],
                  steps_per_execution=4)
    return model


def spe_callbacks(tmp):
    import keras

    return [keras.callbacks.BackupAndRestore(str(tmp / "backup"))]


# ---------------------------------------------------------------- mixed precision (LossScaleOptimizer)

@contextlib.contextmanager
def mixed_precision():
    import keras

    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)


def build_mixed():
    import keras

    model = keras.Sequential([keras.Input(shape=(64,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(10), keras.layers.Activation("linear", dtype="float32")])
    model.compile(optimizer=keras.optimizers.RMSprop(1e-3), loss=sparse_ce(), metrics=["accuracy"])
    return model


# ---------------------------------------------------------------- MirroredStrategy on one device

@contextlib.contextmanager
def one_device_mirrored():
    import tensorflow as tf

    with tf.distribute.MirroredStrategy(["/cpu:0"]).scope():
        yield


def build_mirrored():
    import keras

    model = keras.Sequential([keras.Input(shape=(64,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(10)])
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss=sparse_ce(), metrics=["accuracy"])
    return model


PROGRAMS = {p.name: p for p in [
    Program("subclassed", build_subclassed, fit_digits, 64),
    Program("vae", build_vae, fit_vae, 64),
    Program("functional", build_functional, fit_functional, 64, beta=lambda opt: float(opt.rho)),
    Program("pipeline", build_pipeline, fit_pipeline, 50, beta=lambda opt: float(opt.momentum)),
    Program("transformer", build_transformer, fit_transformer, 32),
    Program("timeseries", build_timeseries, fit_timeseries, 32, user_callbacks=timeseries_callbacks),
    Program("steps_per_execution", build_spe, lambda tmp: fit_digits(tmp, batch_size=32, epochs=2), 32,
            beta=lambda opt: float(opt.momentum), user_callbacks=spe_callbacks),
    Program("mixed_float16", build_mixed, lambda tmp: fit_digits(tmp, epochs=2), 64,
            beta=lambda opt: float(opt.inner_optimizer.rho), scope=mixed_precision),
    Program("mirrored", build_mirrored, lambda tmp: fit_digits(tmp, epochs=2), 64, scope=one_device_mirrored),
]}
