"""Data sets for the trainer, loaded and checked before any training starts.

``spec`` (``--dataset``) picks the loader:

* ``digits``: scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes), shipped
  with the package, so Panda trains offline. Flat features of 64 pixels.
* ``PATH.npz``: ``x_train``, ``y_train`` and optionally ``x_val``, ``y_val``.
* ``PATH.csv``: a table with a header; ``label`` (``--label``) names the class column, every other
  column must be numeric. String labels become class indices in sorted order.
* ``PATH/`` (a folder): images in one sub-folder per class
  (``keras.utils.image_dataset_from_directory``).
* ``tfds:NAME``: a TensorFlow Datasets set (``mnist``, ``fashion_mnist``, ``cifar10``, ...) that is
  already on disk (``data_dir``, ``--data-dir``); nothing is downloaded.

Examples keep their natural shape: ``(N, F)`` for tables, ``(N, H, W, C)`` for images (pixels
scaled to [0, 1]). :attr:`Dataset.input_shape` is what the model takes; the MLP flattens it.

Each loader is short and all share the same checks (features, labels, class count, split), so the data
sets stay one module.

>>> data = load_dataset("digits", seed=0)
>>> data.n_features, data.n_classes, len(data.x_train) + len(data.x_val), data.input_shape
(64, 10, 1797, (64,))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Image files ``image_dataset_from_directory`` reads.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
#: Images from a folder are resized to the first image's size, at most this many pixels a side.
MAX_IMAGE_SIDE = 64


#: The most classes a data set may have (labels are indices 0 .. MAX_CLASSES-1).
MAX_CLASSES = 10_000


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
    class_names: list[str] | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one example: ``(F,)`` for features, ``(H, W, C)`` for images."""
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def n_features(self) -> int:
        return int(math.prod(self.input_shape))

    @property
    def is_image(self) -> bool:
        return len(self.input_shape) == 3

    def describe(self) -> dict:
        out = {
            "name": self.name,
            "n_train": int(len(self.x_train)),
            "n_val": int(len(self.x_val)),
            "n_features": self.n_features,
            "n_classes": self.n_classes,
            "source": self.source,
            "input_shape": list(self.input_shape),
        }
        if self.class_names is not None:
            out["class_names"] = list(self.class_names)
        return out


def _as_features(x: np.ndarray, what: str) -> np.ndarray:
    """Float32 examples in their natural shape; ``(N, H, W)`` becomes grayscale ``(N, H, W, 1)``."""
    x = np.asarray(x)
    if x.ndim < 2:
        raise DataError(f"{what} must have one row per example, got shape {x.shape}")
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / 255.0  # images: scale pixels to [0, 1]
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise DataError(f"{what} must be numeric, got dtype {x.dtype}")
    x = x.astype(np.float32, copy=False)
    if x.ndim == 3:
        x = x[..., np.newaxis]
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
    _check_class_count(int(y.max()) + 1 if len(y) else 0, what)
    return y.astype(np.int32)


def _check_class_count(n_classes: int, what: str) -> None:
    """Refuse labels that would need an absurd output layer (``2**31-2`` would exhaust memory)."""
    if n_classes > MAX_CLASSES:
        raise DataError(f"{what}: class indices must be below {MAX_CLASSES} (at most {MAX_CLASSES} classes), "
                        f"got a largest index of {n_classes - 1}")


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


def _n_classes(y_train: np.ndarray, y_val: np.ndarray, where: str) -> int:
    n_classes = int(max(y_train.max(), y_val.max() if len(y_val) else 0)) + 1
    if n_classes < 2:
        raise DataError(f"{where} has a single class; a classifier needs at least two")
    return n_classes


def load_digits(val_split: float = 0.2, seed: int = 0) -> Dataset:
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    x = (bunch.data / 16.0).astype(np.float32)  # pixel intensities 0..16 -> [0, 1]
    y = bunch.target.astype(np.int32)
    x_train, x_val, y_train, y_val = split(x, y, val_split, seed)
    return Dataset("digits", x_train, y_train, x_val, y_val, 10, "sklearn.datasets.load_digits")


def load_npz(path: Path, val_split: float = 0.2, seed: int = 0) -> Dataset:
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
        if x_val.shape[1:] != x.shape[1:]:
            raise DataError(f"x_val has {math.prod(x_val.shape[1:])} features of shape {x_val.shape[1:]}, "
                            f"x_train has {math.prod(x.shape[1:])} of shape {x.shape[1:]}")
        x_train, y_train = x, y
    else:
        x_train, x_val, y_train, y_val = split(x, y, val_split, seed)
    n_classes = _n_classes(y_train, y_val, str(path))
    return Dataset(path.stem, x_train, y_train, x_val, y_val, n_classes, str(path.resolve()))


def load_csv(path: Path, label: str | None, val_split: float = 0.2, seed: int = 0) -> Dataset:
    """A CSV table with a header: ``label`` is the class column, the rest numeric features."""
    import pandas as pd

    try:
        table = pd.read_csv(path)
    except Exception as e:  # ParserError, EmptyDataError, UnicodeDecodeError
        raise DataError(f"{path} is not a readable CSV file: {e}") from None
    label = label or "label"
    if label not in table.columns:
        columns = ", ".join(map(str, table.columns)) or "none"
        raise DataError(f"{path} has no label column {label!r} (its columns: {columns}); name it with --label")
    if len(table) == 0:
        raise DataError(f"{path} has no rows")
    features = table.drop(columns=[label])
    if features.shape[1] == 0:
        raise DataError(f"{path} has no feature columns besides {label!r}")
    text = [str(c) for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if text:
        raise DataError(f"{path}: feature columns must be numeric; not numeric: {', '.join(text)}")
    labels = table[label]
    if labels.isna().any():
        raise DataError(f"{path}: the label column {label!r} has empty cells")
    if pd.api.types.is_numeric_dtype(labels) and np.all(np.equal(np.mod(labels.to_numpy(), 1), 0)) and labels.min() >= 0:
        _check_class_count(int(labels.max()) + 1, f"{path}: the label column {label!r}")
        y = labels.to_numpy().astype(np.int32)
        class_names = None
    else:  # names (or odd numbers): classes in sorted order
        class_names = sorted(labels.astype(str).unique())
        _check_class_count(len(class_names), f"{path}: the label column {label!r}")
        index = {name: i for i, name in enumerate(class_names)}
        y = labels.astype(str).map(index).to_numpy().astype(np.int32)
    x = _as_features(features.to_numpy(dtype=np.float64), f"{path} features")
    x_train, x_val, y_train, y_val = split(x, y, val_split, seed)
    n_classes = len(class_names) if class_names else _n_classes(y_train, y_val, str(path))
    if n_classes < 2:
        raise DataError(f"{path} has a single class; a classifier needs at least two")
    return Dataset(path.stem, x_train, y_train, x_val, y_val, n_classes, str(path.resolve()), class_names)


def _image_size(path: Path) -> tuple[tuple[int, int], str]:
    """(height, width) and keras's ``color_mode`` from the first image, at most MAX_IMAGE_SIDE a side."""
    from PIL import Image

    for file in sorted(path.rglob("*")):
        if file.suffix.lower() in IMAGE_SUFFIXES:
            try:
                with Image.open(file) as image:
                    width, height = image.size
                    mode = image.mode
            except OSError as e:
                raise DataError(f"cannot read image {file}: {e}") from None
            scale = min(1.0, MAX_IMAGE_SIDE / max(width, height))
            size = (max(1, round(height * scale)), max(1, round(width * scale)))
            return size, ("grayscale" if mode in ("L", "1", "I;16", "I") else "rgb")
    raise DataError(f"{path} holds no images ({', '.join(IMAGE_SUFFIXES)})")


def load_image_folder(path: Path, val_split: float = 0.2, seed: int = 0) -> Dataset:
    """Images in one sub-folder per class: ``PATH/cat/1.png``, ``PATH/dog/7.jpg``, ..."""
    if not path.is_dir():
        raise DataError(f"image folder {path} does not exist")
    classes = sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{path} has no class folders: put each class's images in its own sub-folder "
                        f"({path}/CLASS_NAME/image.png)")
    empty = [c for c in classes if not any(f.suffix.lower() in IMAGE_SUFFIXES for f in (path / c).rglob("*"))]
    if empty:
        raise DataError(f"{path}: class folders without images: {', '.join(empty)}")
    if len(classes) < 2:
        raise DataError(f"{path} has a single class folder ({classes[0]}); a classifier needs at least two")
    size, color_mode = _image_size(path)

    import keras

    try:
        ds = keras.utils.image_dataset_from_directory(
            str(path), labels="inferred", label_mode="int", class_names=classes, color_mode=color_mode,
            image_size=size, batch_size=256, shuffle=False, verbose=False)
    except (ValueError, OSError) as e:
        raise DataError(f"cannot read the images in {path}: {e}") from None
    xs, ys = [], []
    for x, y in ds.as_numpy_iterator():
        xs.append(x)
        ys.append(y)
    x = np.concatenate(xs).astype(np.float32) / 255.0
    y = np.concatenate(ys).astype(np.int32)
    x_train, x_val, y_train, y_val = split(x, y, val_split, seed)
    return Dataset(path.name, x_train, y_train, x_val, y_val, len(classes), str(path.resolve()), classes)


def load_tfds(name: str, data_dir: str | None, val_split: float = 0.2, seed: int = 0) -> Dataset:
    """A TensorFlow Datasets set already on disk, materialized to numpy. Never downloads.

    The ``train`` split is split again for validation (``val_split``) unless the set has a
    ``validation`` split; the ``test`` split stays untouched.
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise DataError("tfds: data sets need tensorflow-datasets: pip install 'panda-babysitter[tfds]'") from None
    if not name:
        raise DataError("name the TensorFlow Datasets set: --dataset tfds:mnist")
    where = data_dir or "the default TFDS folder (~/tensorflow_datasets)"
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as e:  # DatasetNotFoundError, or a bad config/version in the name
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"no TensorFlow Datasets set {name!r}: {first}") from None
    info = builder.info
    keys = info.supervised_keys
    if not keys or len(keys) != 2 or not isinstance(keys[0], str):
        raise DataError(f"tfds:{name} has no (input, label) pair to train a classifier on")
    label_feature = info.features[keys[1]]
    n_classes = getattr(label_feature, "num_classes", None)
    if not n_classes:
        raise DataError(f"tfds:{name}'s label {keys[1]!r} is not a class label")

    def materialize(split_name: str):
        try:
            ds = tfds.load(name, split=split_name, data_dir=data_dir, as_supervised=True, download=False)
        except AssertionError:  # tfds's way of saying "not prepared"
            raise DataError(f"tfds:{name} is not on disk in {where}; download it first, e.g. "
                            f"`tfds build {name}` on a machine with internet, then pass --data-dir") from None
        except Exception as e:
            raise DataError(f"cannot read tfds:{name} split {split_name!r} from {where}: {e}") from None
        xs, ys = [], []
        for x, y in tfds.as_numpy(ds.batch(4096)):
            xs.append(x)
            ys.append(y)
        if not xs:
            raise DataError(f"tfds:{name} split {split_name!r} is empty")
        return np.concatenate(xs), np.concatenate(ys)

    x, y = materialize("train")
    x = _as_features(x, f"tfds:{name}")
    y = _as_labels(y, len(x), f"tfds:{name} labels")
    if "validation" in info.splits:
        x_val, y_val = materialize("validation")
        x_val, y_val = _as_features(x_val, f"tfds:{name}"), _as_labels(y_val, len(x_val), f"tfds:{name} labels")
        x_train, y_train = x, y
    else:
        x_train, x_val, y_train, y_val = split(x, y, val_split, seed)
    return Dataset(name, x_train, y_train, x_val, y_val, int(n_classes), f"tfds:{name}",
                   list(getattr(label_feature, "names", None) or []) or None)


def check_spec(spec: str, *, data_dir: str | None = None, label: str | None = None) -> str:
    """The data-set kind ``spec`` names (``digits``, ``tfds``, ``csv``, ``npz``, ``folder``), checked
    without loading anything: what ``panda train`` and ``panda sweep`` both refuse up front."""
    spec = str(spec)
    is_tfds = spec.startswith("tfds:")
    if data_dir is not None and not is_tfds:
        raise DataError("--data-dir only applies to tfds: data sets")
    path = Path(spec)
    is_csv = not is_tfds and path.suffix.lower() == ".csv"
    if label is not None and not is_csv:
        raise DataError("--label only applies to .csv data sets")
    if spec == "digits":
        return "digits"
    if is_tfds:
        if not spec[len("tfds:"):].strip():
            raise DataError("tfds: needs a data set name, e.g. tfds:mnist")
        return "tfds"
    if is_csv or path.suffix == ".npz":
        if not path.is_file():
            raise DataError(f"no data file at {path}: it does not exist")
        return "csv" if is_csv else "npz"
    if path.is_dir() or spec.endswith(("/", "\\")):
        return "folder"
    raise DataError(f"unknown data set {spec!r}: use 'digits', tfds:NAME, an image folder, "
                    f"or a path to a .csv or .npz file")


def load_dataset(spec: str, val_split: float = 0.2, seed: int = 0, *, data_dir: str | None = None,
                 label: str | None = None) -> Dataset:
    """``digits``, ``tfds:NAME``, an image folder, a ``.csv`` or an ``.npz`` file (see the module)."""
    spec = str(spec)
    kind = check_spec(spec, data_dir=data_dir, label=label)
    if kind == "digits":
        return load_digits(val_split, seed)
    if kind == "tfds":
        return load_tfds(spec[len("tfds:"):], data_dir, val_split, seed)
    loaders = {"csv": lambda p: load_csv(p, label, val_split, seed), "npz": lambda p: load_npz(p, val_split, seed),
               "folder": lambda p: load_image_folder(p, val_split, seed)}
    return loaders[kind](Path(spec))


def epoch_permutation(n: int, seed: int | None, epoch: int):
    """The order of the ``n`` training examples in ``epoch``: a new permutation every epoch,
    always the same for the same seed and epoch (so a resumed epoch sees the order it would have)."""
    import tensorflow as tf

    return tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int32),
                                                    seed=[int(seed or 0), int(epoch)])
