"""Data loading: the bundled digits, .npz files, and clear errors before training."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.training.datasets import DataError, load_dataset


def test_digits_is_offline_stratified_and_scaled():
    data = load_dataset("digits", val_split=0.2, seed=1)
    assert data.x_train.dtype == np.float32 and 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0
    assert len(data.x_val) == 360
    assert np.bincount(data.y_val).min() >= 30, "every class is in the validation split"
    again = load_dataset("digits", val_split=0.2, seed=1)
    assert np.array_equal(data.y_val, again.y_val), "the split is seeded"


def test_npz_images_are_flattened_and_scaled(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (50, 4, 4), dtype=np.uint8)
    y = np.arange(50) % 5
    np.savez(tmp_path / "img.npz", x_train=x, y_train=y)
    data = load_dataset(str(tmp_path / "img.npz"), val_split=0.2)
    assert data.n_features == 16 and data.n_classes == 5 and len(data.x_val) == 10
    assert data.x_train.max() <= 1.0


@pytest.mark.parametrize("arrays, message", [
    ({"x_train": np.zeros((4, 2))}, "lacks y_train"),
    ({"x_train": np.zeros((4, 2)), "y_train": np.zeros(3)}, "3 labels for 4 examples"),
    ({"x_train": np.full((4, 2), np.nan), "y_train": np.zeros(4)}, "NaN"),
    ({"x_train": np.zeros((4, 2)), "y_train": np.array([0.5, 1, 0, 1])}, "integer class"),
    ({"x_train": np.zeros((4, 2)), "y_train": np.zeros(4), "x_val": np.zeros((2, 2))}, "both x_val and y_val"),
    ({"x_train": np.zeros((4, 2)), "y_train": np.zeros(4), "x_val": np.zeros((2, 3)), "y_val": np.zeros(2)}, "features"),
    ({"x_train": np.zeros((6, 2)), "y_train": np.zeros(6)}, "single class"),
])
def test_malformed_npz_files_are_reported(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message):
        load_dataset(str(path))


def test_a_file_that_is_not_npz(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_text("hello")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_dataset(str(path))


def test_each_epoch_is_a_new_permutation_and_the_same_for_the_same_seed():
    from trainer.training.datasets import epoch_permutation

    orders = [epoch_permutation(1437, 3, epoch).numpy() for epoch in (1, 2, 3)]
    for order in orders:
        assert sorted(order.tolist()) == list(range(1437)), "every example exactly once"
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2])
    assert not np.array_equal(orders[0], np.arange(1437)), "shuffled"
    assert np.array_equal(epoch_permutation(1437, 3, 2).numpy(), orders[1]), "deterministic by seed and epoch"
    assert not np.array_equal(epoch_permutation(1437, 4, 2).numpy(), orders[1]), "another seed, another order"
