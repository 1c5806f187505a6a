"""Data sets for the trainer, loaded and checked before any training starts.

``digits`` is scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes): it ships
with the package, so Panda trains offline. ``path.npz`` holds ``x_train``, ``y_train`` and
optionally ``x_val``, ``y_val``.

>>> data = load_dataset("digits", seed=0)
>>> data.n_features, data.n_classes, len(data.x_train) + len(data.x_val)
(64, 10, 1797)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


class DataError(ValueError):
    """A data set that is missing or malformed; reported before training starts."""


@dataclass
class Dataset:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    n_classes: int
    source: str

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])

    def describe(self) -> dict:
        return {
            "name": self.name,
            "n_train": int(len(self.x_train)),
            "n_val": int(len(self.x_val)),
            "n_features": self.n_features,
            "n_classes": self.n_classes,
            "source": self.source,
        }


def _as_features(x: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim < 2:
        raise DataError(f"{what} must have one row per example, got shape {x.shape}")
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / 255.0  # images: scale pixels to [0, 1]
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{what} must be numeric, got dtype {x.dtype}")
    x = x.reshape(len(x), -1).astype(np.float32)
    if not np.isfinite(x).all():
        raise DataError(f"{what} contains NaN or infinite values")
    return x


def _as_labels(y: np.ndarray, n: int, what: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{what} must be a vector of class indices, got shape {y.shape}")
    if len(y) != n:
        raise DataError(f"{what} has {len(y)} labels for {n} examples")
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.equal(np.mod(y, 1), 0)):
            y = y.astype(np.int64)
        else:
            raise DataError(f"{what} must hold integer class indices, got dtype {y.dtype}")
    if len(y) and y.min() < 0:
        raise DataError(f"{what} has negative class indices")
    return y.astype(np.int32)


def split(x: np.ndarray, y: np.ndarray, val_split: float, seed: int):
    """A stratified train/validation split (stratified when every class has two examples)."""
    from sklearn.model_selection import train_test_split

    if not 0 < val_split < 1:
        raise DataError(f"--val-split must be in (0, 1), got {val_split}")
    counts = np.bincount(y)
    stratify = y if counts[counts > 0].min() >= 2 else None
    try:
        return train_test_split(x, y, test_size=val_split, random_state=seed, stratify=stratify)
    except ValueError as e:
        raise DataError(f"cannot split {len(x)} examples for validation: {e}") from None


def load_digits(val_split: float = 0.2, seed: int = 0) -> Dataset:
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    x = (bunch.data / 16.0).astype(np.float32)  # pixel intensities 0..16 -> [0, 1]
    y = bunch.target.astype(np.int32)
    x_train, x_val, y_train, y_val = split(x, y, val_split, seed)
    return Dataset("digits", x_train, y_train, x_val, y_val, 10, "sklearn.datasets.load_digits")


def load_npz(path: Path, val_split: float = 0.2, seed: int = 0) -> Dataset:
    if not path.exists():
        raise DataError(f"data file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as e:  # zipfile.BadZipFile, ValueError, OSError: all mean "not a usable npz"
        raise DataError(f"{path} is not a readable .npz file: {e}") from None
    missing = [k for k in ("x_train", "y_train") if k not in arrays]
    if missing:
        raise DataError(f"{path} lacks {', '.join(missing)} (it has: {', '.join(sorted(arrays)) or 'nothing'})")
    if ("x_val" in arrays) != ("y_val" in arrays):
        raise DataError(f"{path} must have both x_val and y_val, or neither")
    x = _as_features(arrays["x_train"], "x_train")
    y = _as_labels(arrays["y_train"], len(x), "y_train")
    if len(x) == 0:
        raise DataError(f"{path} has no training examples")
    if "x_val" in arrays:
        x_val = _as_features(arrays["x_val"], "x_val")
        y_val = _as_labels(arrays["y_val"], len(x_val), "y_val")
        if x_val.shape[1] != x.shape[1]:
            raise DataError(f"x_val has {x_val.shape[1]} features, x_train has {x.shape[1]}")
        x_train, y_train = x, y
    else:
        x_train, x_val, y_train, y_val = split(x, y, val_split, seed)
    n_classes = int(max(y_train.max(), y_val.max() if len(y_val) else 0)) + 1
    if n_classes < 2:
        raise DataError(f"{path} has a single class; a classifier needs at least two")
    return Dataset(path.stem, x_train, y_train, x_val, y_val, n_classes, str(path.resolve()))


def load_dataset(spec: str, val_split: float = 0.2, seed: int = 0) -> Dataset:
    """``digits`` or a path to an ``.npz`` file."""
    if spec == "digits":
        return load_digits(val_split, seed)
    path = Path(spec)
    if path.suffix == ".npz":
        return load_npz(path, val_split, seed)
    raise DataError(f"unknown data set {spec!r}: use 'digits' or a path to a .npz file")


def pipeline(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int | None, shuffle: bool):
    """A ``tf.data`` pipeline: shuffle each epoch, batch, prefetch."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
