"""The network Panda trains: a softmax classifier on flat features.

Each hidden layer is Dense -> ReLU, or Dense -> BatchNorm -> ReLU with ``batch_norm`` (the Dense
layer then has no bias: batch norm's beta replaces it). The output layer returns logits; the
softmax lives in the loss (``from_logits=True``), which is numerically safer.

>>> model = build_mlp(n_features=64, n_classes=10, layers=2, units=8, batch_norm=True)
>>> [layer.__class__.__name__ for layer in model.layers][:3]
['Dense', 'BatchNormalization', 'ReLU']
"""

from __future__ import annotations

import keras


def build_mlp(n_features: int, n_classes: int, layers: int = 2, units: int = 64,
              batch_norm: bool = True, dropout: float = 0.0) -> keras.Model:
    model = keras.Sequential(name="softmax_mlp")
    model.add(keras.Input(shape=(n_features,)))
    for i in range(layers):
        model.add(keras.layers.Dense(units, use_bias=not batch_norm, name=f"dense_{i + 1}"))
        if batch_norm:
            model.add(keras.layers.BatchNormalization(name=f"batch_norm_{i + 1}"))
        model.add(keras.layers.ReLU(name=f"relu_{i + 1}"))
        if dropout:
            model.add(keras.layers.Dropout(dropout, name=f"dropout_{i + 1}"))
    model.add(keras.layers.Dense(n_classes, name="logits"))
    return model
