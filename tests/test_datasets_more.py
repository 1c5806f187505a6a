"""More data for ``panda train``: TFDS sets (TFDS's mock data), image folders, CSV files, ``--model cnn``."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from trainer.training.datasets import DataError, load_dataset
from trainer.contract.rundir import RunDir

PANDA = [sys.executable, "-m", "trainer"]


def panda(*args) -> subprocess.CompletedProcess:
    return subprocess.run([*PANDA, *map(str, args)], capture_output=True, text=True, timeout=300)


def train(run_path, dataset, epochs=2, model="mlp", **config):
    from trainer.contract.hparams import Hyperparameters
    from trainer.training.loop import TrainConfig, Trainer

    hp = config.pop("hparams", {})
    trainer = Trainer.create(run_path, TrainConfig(hparams=Hyperparameters(**hp), dataset=str(dataset), epochs=epochs,
                                                   model=model, **config), verbose=False)
    assert trainer.run() == "finished"
    return trainer


def bars(folder, per_class=24, size=12, mode="L", seed=0):
    """Horizontal vs vertical bars, noisy, as PNGs in folder/CLASS/."""
    rng = np.random.default_rng(seed)
    for label in ("horizontal", "vertical"):
        (folder / label).mkdir(parents=True)
        for i in range(per_class):
            image = rng.normal(30, 15, (size, size))
            at = rng.integers(1, size - 3)
            if label == "horizontal":
                image[at:at + 2, 2:size - 2] = 230
            else:
                image[2:size - 2, at:at + 2] = 230
            pixels = np.clip(image, 0, 255).astype(np.uint8)
            if mode == "RGB":
                pixels = np.stack([pixels] * 3, axis=-1)
            Image.fromarray(pixels, mode=mode).save(folder / label / f"{i}.png")
    return folder


# --------------------------------------------------------------------------- TensorFlow Datasets


def test_tfds_sets_load_by_name_and_train_the_cnn(tmp_path):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=64):
        data = load_dataset("tfds:mnist", 0.25, 0)
        assert data.input_shape == (28, 28, 1) and data.is_image
        assert data.n_classes == 10 and len(data.x_train) == 48 and len(data.x_val) == 16
        assert data.x_train.dtype == np.float32 and 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0
        assert data.class_names is None or len(data.class_names) == 10
        cifar = load_dataset("tfds:cifar10", 0.25, 0)
        assert cifar.input_shape == (32, 32, 3)
        trainer = train(tmp_path / "mnist", "tfds:mnist", epochs=2, model="cnn",
                        hparams={"batch_size": 16, "layers": 1, "units": 16})
    config = trainer.rundir.read_config()
    assert config["model"] == "cnn" and config["dataset_spec"] == "tfds:mnist"
    assert config["dataset"]["source"] == "tfds:mnist" and config["dataset"]["input_shape"] == [28, 28, 1]
    assert [r["epoch"] for r in trainer.rundir.read_metrics()] == [1, 2]
    assert [type(layer).__name__ for layer in trainer.model.layers][:4] == ["Conv2D", "BatchNormalization", "ReLU",
                                                                            "MaxPooling2D"]


def test_tfds_names_that_do_not_exist_or_are_not_on_disk_fail_clearly(tmp_path):
    with pytest.raises(DataError, match="no TensorFlow Datasets set 'no_such_set'"):
        load_dataset("tfds:no_such_set")
    with pytest.raises(DataError, match="not on disk in .*empty"):
        load_dataset("tfds:mnist", data_dir=str(tmp_path / "empty"))
    with pytest.raises(DataError, match="--data-dir only applies to tfds"):
        load_dataset("digits", data_dir=str(tmp_path))

    result = panda("train", "--run-dir", tmp_path, "--name", "x", "--dataset", "tfds:mnist",
                   "--data-dir", tmp_path / "empty", "--epochs", 1)
    assert result.returncode == 2 and "not on disk" in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "x").exists()


# --------------------------------------------------------------------------- image folders


def test_an_image_folder_trains_the_cnn_and_the_mlp(tmp_path):
    folder = bars(tmp_path / "bars")
    data = load_dataset(str(folder), 0.25, 0)
    assert data.input_shape == (12, 12, 1) and data.class_names == ["horizontal", "vertical"]
    assert len(data.x_train) == 36 and data.x_train.max() <= 1.0

    cnn = train(tmp_path / "cnn", folder, epochs=12, model="cnn",
                hparams={"batch_size": 8, "layers": 1, "units": 16, "lr": 0.01})
    records = cnn.rundir.read_metrics()
    assert records[-1]["accuracy"] > 0.9, "the CNN learns bars"
    assert records[-1]["loss"] < records[0]["loss"]
    assert cnn.rundir.read_config()["dataset"]["class_names"] == ["horizontal", "vertical"]

    mlp = train(tmp_path / "mlp", folder, epochs=1, model="mlp", hparams={"batch_size": 8, "units": 8})
    assert [type(layer).__name__ for layer in mlp.model.layers][0] == "Flatten"
    assert mlp.model.input_shape == (None, 12, 12, 1)

    rgb = load_dataset(str(bars(tmp_path / "rgb", per_class=4, size=80, mode="RGB")), 0.5, 0)
    assert rgb.input_shape == (64, 64, 3), "large images shrink to 64 pixels a side, colour kept"


def test_bad_image_folders_fail_before_training(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class folders"):
        load_dataset(str(tmp_path / "empty"))
    (tmp_path / "one" / "cats").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "one" / "cats" / "a.png")
    with pytest.raises(DataError, match="single class folder"):
        load_dataset(str(tmp_path / "one"))
    (tmp_path / "one" / "dogs").mkdir()
    with pytest.raises(DataError, match="class folders without images: dogs"):
        load_dataset(str(tmp_path / "one"))
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(str(tmp_path / "missing") + "/")

    result = panda("train", "--run-dir", tmp_path, "--name", "x", "--dataset", f"{tmp_path / 'empty'}/", "--epochs", 1)
    assert result.returncode == 2 and "no class folders" in result.stderr
    assert not (tmp_path / "x").exists()


# --------------------------------------------------------------------------- CSV


def write_csv(path, n=240, seed=0):
    rng = np.random.default_rng(seed)
    centers = {"setosa": (0, 0, 3), "versicolor": (3, 0, 0), "virginica": (0, 3, 0)}
    names = rng.choice(sorted(centers), n)
    x = np.array([centers[name] for name in names]) + rng.normal(size=(n, 3))
    lines = ["petal,sepal,stem,species"] + [f"{a:.4f},{b:.4f},{c:.4f},{s}" for (a, b, c), s in zip(x, names)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_csv_with_a_label_column_trains(tmp_path):
    csv = write_csv(tmp_path / "flowers.csv")
    data = load_dataset(str(csv), 0.25, 0, label="species")
    assert data.input_shape == (3,) and data.n_classes == 3
    assert data.class_names == ["setosa", "versicolor", "virginica"]

    result = panda("train", "--run-dir", tmp_path, "--name", "f", "--dataset", csv, "--label", "species",
                   "--epochs", 10, "--batch-size", 16, "--quiet")
    assert result.returncode == 0, result.stderr[-2000:]
    run = RunDir(tmp_path / "f")
    assert run.read_config()["label"] == "species"
    assert run.read_metrics()[-1]["val_accuracy"] > 0.85


def test_bad_csv_files_and_model_choices_fail_before_training(tmp_path):
    csv = write_csv(tmp_path / "flowers.csv")
    with pytest.raises(DataError, match=r"no label column 'kind' \(its columns: petal, sepal, stem, species\)"):
        load_dataset(str(csv), label="kind")
    with pytest.raises(DataError, match="no label column 'label'"):
        load_dataset(str(csv))
    (tmp_path / "text.csv").write_text("colour,size,label\nred,1,0\nblue,2,1\nred,3,0\nblue,4,1\n")
    with pytest.raises(DataError, match="not numeric: colour"):
        load_dataset(str(tmp_path / "text.csv"))
    with pytest.raises(DataError, match="--label only applies to .csv"):
        load_dataset("digits", label="species")

    for args, message in ((["--dataset", csv, "--label", "kind"], "no label column 'kind'"),
                          (["--model", "cnn"], "--model cnn needs images")):
        result = panda("train", "--run-dir", tmp_path, "--name", "x", "--epochs", 1, *args)
        assert result.returncode == 2 and message in result.stderr, result.stderr[-2000:]
        assert not (tmp_path / "x").exists()


def test_npz_images_keep_their_shape_for_the_cnn(tmp_path):
    from sklearn.datasets import load_digits

    digits = load_digits()
    np.savez(tmp_path / "d.npz", x_train=(digits.images * 16).astype(np.uint8), y_train=digits.target)
    data = load_dataset(str(tmp_path / "d.npz"), 0.2, 0)
    assert data.input_shape == (8, 8, 1) and data.n_features == 64
    trainer = train(tmp_path / "npz-cnn", tmp_path / "d.npz", epochs=3, model="cnn",
                    hparams={"batch_size": 32, "layers": 1, "units": 32, "lr": 0.01})
    assert trainer.rundir.read_metrics()[-1]["accuracy"] > 0.8
