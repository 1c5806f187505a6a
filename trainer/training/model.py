"""The networks Panda trains: a softmax classifier, as an MLP or a small CNN.

MLP (``--model mlp``): each hidden layer is Dense -> ReLU, or Dense -> BatchNorm -> ReLU with
``batch_norm`` (the Dense layer then has no bias: batch norm's beta replaces it). Inputs of any
shape are flattened first.

CNN (``--model cnn``, for images ``(H, W, C)``): :data:`CNN_FILTERS` blocks of 3x3 convolution ->
BatchNorm -> ReLU -> 2x2 max pooling, global average pooling, then the same dense head as the MLP
(``layers`` hidden layers of ``units``).

Both return logits; the softmax lives in the loss (``from_logits=True``), which is numerically safer.

>>> model = build_mlp(n_features=64, n_classes=10, layers=2, units=8, batch_norm=True)
>>> [layer.__class__.__name__ for layer in model.layers][:3]
['Dense', 'BatchNormalization', 'ReLU']
>>> cnn = build_cnn((8, 8, 1), n_classes=10, layers=1, units=8)
>>> [layer.__class__.__name__ for layer in cnn.layers][:4]
['Conv2D', 'BatchNormalization', 'ReLU', 'MaxPooling2D']
"""

from __future__ import annotations

from typing import Sequence

import keras

from trainer.contract.config import MODELS  # noqa: F401  (the one list of --model names)
#: Filters of the CNN's convolution blocks (one block each).
CNN_FILTERS = (16, 32)


def _shape(input_shape: int | Sequence[int]) -> tuple[int, ...]:
    return (int(input_shape),) if isinstance(input_shape, int) else tuple(int(d) for d in input_shape)


def _dense_head(model: keras.Sequential, n_classes: int, layers: int, units: int, batch_norm: bool,
                dropout: float) -> keras.Sequential:
    for i in range(layers):
        model.add(keras.layers.Dense(units, use_bias=not batch_norm, name=f"dense_{i + 1}"))
        if batch_norm:
            model.add(keras.layers.BatchNormalization(name=f"batch_norm_{i + 1}"))
        model.add(keras.layers.ReLU(name=f"relu_{i + 1}"))
        if dropout:
            model.add(keras.layers.Dropout(dropout, name=f"dropout_{i + 1}"))
    model.add(keras.layers.Dense(n_classes, name="logits"))
    return model


def build_mlp(n_features: int | Sequence[int], n_classes: int, layers: int = 2, units: int = 64,
              batch_norm: bool = True, dropout: float = 0.0) -> keras.Model:
    """``n_features``: a count, or the shape of one example (flattened first)."""
    shape = _shape(n_features)
    model = keras.Sequential(name="softmax_mlp")
    model.add(keras.Input(shape=shape))
    if len(shape) > 1:
        model.add(keras.layers.Flatten(name="flatten"))
    return _dense_head(model, n_classes, layers, units, batch_norm, dropout)


def build_cnn(input_shape: Sequence[int], n_classes: int, layers: int = 1, units: int = 64,
              batch_norm: bool = True, dropout: float = 0.0) -> keras.Model:
    shape = _shape(input_shape)
    check_model("cnn", shape)
    model = keras.Sequential(name="softmax_cnn")
    model.add(keras.Input(shape=shape))
    for i, filters in enumerate(CNN_FILTERS):
        model.add(keras.layers.Conv2D(filters, 3, padding="same", use_bias=not batch_norm, name=f"conv_{i + 1}"))
        if batch_norm:
            model.add(keras.layers.BatchNormalization(name=f"conv_batch_norm_{i + 1}"))
        model.add(keras.layers.ReLU(name=f"conv_relu_{i + 1}"))
        model.add(keras.layers.MaxPooling2D(2, padding="same", name=f"pool_{i + 1}"))
    model.add(keras.layers.GlobalAveragePooling2D(name="global_pool"))
    return _dense_head(model, n_classes, layers, units, batch_norm, dropout)


def check_model(kind: str, input_shape: Sequence[int]) -> None:
    """Raise ``ValueError`` when ``kind`` cannot take examples of ``input_shape``."""
    if kind not in MODELS:
        raise ValueError(f"unknown model {kind!r} (choose from {', '.join(MODELS)})")
    shape = tuple(input_shape)
    if kind == "cnn" and len(shape) != 3:
        raise ValueError(f"--model cnn needs images (height, width, channels); this data set's examples "
                         f"have shape {shape}: use --model mlp")


def build_model(kind: str, input_shape: Sequence[int], n_classes: int, layers: int, units: int,
                batch_norm: bool, dropout: float) -> keras.Model:
    """The network ``--model`` names."""
    check_model(kind, input_shape)
    build = build_cnn if kind == "cnn" else build_mlp
    return build(tuple(input_shape), n_classes, layers, units, batch_norm, dropout)
