"""Samples per second of Panda's trainer against a bare Keras ``model.fit``, same model and data.

Both train the same MLP (Panda's ``build_mlp``), the same optimizer and batch size, on the same
60,000 x 784 synthetic 10-class data with a 10,000-example validation set, one after the other in
one process, alternating, ``--repeats`` times. Throughput is measured in steady state: training
samples over the wall time from the end of epoch 1 to the end of the last epoch, so it includes
everything each does per epoch (Panda: evaluation, checkpoint, records, status; Keras: its
validation pass and callbacks). Prints both and their ratio (goal >= 1.00).

    python bench/throughput.py [--epochs 4] [--batch-size 128] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np

from trainer.hparams import Hyperparameters
from trainer.loop import TrainConfig, Trainer
from trainer.model import build_mlp
from trainer.optimizers import make_optimizer


def synthetic(n_train=60_000, n_val=10_000, features=784, classes=10, seed=0):
    """Linearly separable-ish blobs: learnable, so both runs do real work."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(classes, features)).astype(np.float32)
    y = rng.integers(0, classes, n_train + n_val).astype(np.int32)
    x = centers[y] + rng.normal(scale=3.0, size=(len(y), features)).astype(np.float32)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def keras_fit(data, hp: Hyperparameters, epochs: int) -> float:
    x, y, xv, yv = data
    keras.utils.set_random_seed(0)
    model = build_mlp(x.shape[1], 10, hp.layers, hp.units, hp.batch_norm, hp.dropout)
    optimizer, _ = make_optimizer(hp.optimizer, hp.lr, hp.beta, hp.beta2, hp.epsilon)
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    ends = []
    clock = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: ends.append(time.perf_counter()))
    model.fit(x, y, batch_size=hp.batch_size, epochs=epochs, validation_data=(xv, yv), verbose=0,
              callbacks=[clock], shuffle=True)
    return len(x) * (epochs - 1) / (ends[-1] - ends[0])


def panda(data, hp: Hyperparameters, epochs: int, folder: Path) -> float:
    x, y, xv, yv = data
    path = folder / f"data-{os.getpid()}.npz"
    if not path.exists():
        np.savez(path, x_train=x, y_train=y, x_val=xv, y_val=yv)
    config = TrainConfig(hparams=hp, dataset=str(path), epochs=epochs, checkpoint_every=epochs)
    trainer = Trainer.create(folder / f"run-{time.time_ns()}", config, verbose=False)
    assert trainer.run() == "finished"
    records = trainer.rundir.read_metrics()
    return len(x) * (epochs - 1) / (records[-1]["time"] - records[0]["time"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    hp = Hyperparameters(optimizer="adam", lr=1e-3, batch_size=args.batch_size, layers=2, units=256, batch_norm=True)
    data = synthetic()
    print(f"60,000 x 784 synthetic, 10 classes; MLP 2 x 256 + batch norm, Adam, batch {args.batch_size}, "
          f"{args.epochs} epochs; devices: {', '.join(d.name for d in __import__('tensorflow').config.list_physical_devices())}")
    ours, theirs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            theirs.append(keras_fit(data, hp, args.epochs))
            ours.append(panda(data, hp, args.epochs, Path(tmp)))
            print(f"  repeat {i + 1}: keras.fit {theirs[-1]:,.0f} samples/s, panda {ours[-1]:,.0f} samples/s")
    k, p = statistics.median(theirs), statistics.median(ours)
    print(f"keras model.fit: {k:,.0f} samples/s (median of {args.repeats})")
    print(f"panda trainer:   {p:,.0f} samples/s (median of {args.repeats})")
    print(f"ratio panda / keras: {p / k:.3f}")


if __name__ == "__main__":
    main()
