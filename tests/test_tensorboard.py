"""``--tensorboard``: the same run read back by TensorBoard's own reader (EventAccumulator)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import TrainerThread, wait_for


def read(folder):
    """``{tag: [(step, value), ...]}`` of one TensorBoard run folder, as TensorBoard reads it."""
    accumulator = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    accumulator.Reload()
    out = {}
    for tag in accumulator.Tags()["tensors"]:
        out[tag] = [(e.step, tf.make_ndarray(e.tensor_proto)) for e in accumulator.Tensors(tag)]
    return out


def scalars(series):
    return [(step, float(value)) for step, value in series]


def same(series, expected, rel=1e-6):
    """TensorBoard's (step, value) pairs equal ``expected``: steps exactly, values up to float32."""
    got = scalars(series)
    assert [step for step, _ in got] == [step for step, _ in expected]
    assert [value for _, value in got] == pytest.approx([value for _, value in expected], rel=rel)
    return True


def test_panda_train_writes_event_files_tensorboard_reads(tmp_path):
    from trainer.contract.hparams import Hyperparameters
    from trainer.training.loop import TrainConfig, Trainer

    config = TrainConfig(hparams=Hyperparameters(lr=0.01), epochs=4, pace=0.3, tensorboard=True)
    t = TrainerThread(Trainer.create(tmp_path / "tb", config, verbose=False)).start()
    run = t.run
    wait_for(lambda: run.read_metrics(), run.path, what="a first epoch")
    applied = t.send("set_lr", 0.002)
    assert applied["event"] == "applied"
    assert t.send("set_lr", -3)["event"] == "rejected"
    assert t.join() == "finished"

    records = run.read_metrics()
    train = read(run.path / "tensorboard" / "train")
    validation = read(run.path / "tensorboard" / "validation")
    assert same(train["epoch_loss"], [(r["epoch"], r["loss"]) for r in records])
    assert same(train["epoch_accuracy"], [(r["epoch"], r["accuracy"]) for r in records])
    assert same(train["epoch_learning_rate"], [(r["epoch"], r["lr"]) for r in records])
    assert same(train["epoch_grad_norm"], [(r["epoch"], r["grad_norm"]) for r in records])
    assert same(validation["epoch_loss"], [(r["epoch"], r["val_loss"]) for r in records])
    assert same(validation["epoch_accuracy"], [(r["epoch"], r["val_accuracy"]) for r in records])
    batches = [json.loads(line) for line in run.batches_path.read_text().splitlines()]
    assert same(train["batch_loss"], [(b["step"], b["loss"]) for b in batches], rel=1e-5)

    texts = [(step, value.item().decode()) for step, value in train["interventions"]]
    assert any(step == applied["step"] and text.startswith("applied set_lr 0.002") for step, text in texts), texts
    assert any(text.startswith("rejected set_lr -3") and "> 0" in text for _, text in texts), texts


def test_the_callback_writes_event_files_too(tmp_path):
    import keras
    from sklearn.datasets import load_digits

    from trainer import PandaCallback

    digits = load_digits()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(10)])
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy()])
    history = model.fit(digits.data / 16.0, digits.target, batch_size=128, epochs=3, validation_split=0.2, verbose=0,
                        callbacks=[PandaCallback(tmp_path / "cb", tensorboard=True)])

    train = read(tmp_path / "cb" / "tensorboard" / "train")
    validation = read(tmp_path / "cb" / "tensorboard" / "validation")
    assert same(train["epoch_loss"], list(enumerate(history.history["loss"], 1)))
    assert same(train["epoch_accuracy"], list(enumerate(history.history["sparse_categorical_accuracy"], 1)))
    assert same(validation["epoch_loss"], list(enumerate(history.history["val_loss"], 1)))
    assert "epoch_grad_norm" not in train, "a Keras fit has no gradient norm to report"
    assert np.isfinite([v for _, v in scalars(train["batch_loss"])]).all()


def test_the_cli_flag_turns_it_on(tmp_path):
    result = subprocess.run([sys.executable, "-m", "trainer", "train", "--run-dir", str(tmp_path), "--name", "cli",
                             "--epochs", "2", "--tensorboard", "--quiet"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert [step for step, _ in scalars(read(tmp_path / "cli" / "tensorboard" / "train")["epoch_loss"])] == [1, 2]
    assert json.loads((tmp_path / "cli" / "config.json").read_text())["tensorboard"] is True
