"""PandaCallback: a real Keras ``model.fit`` (a small CNN) babysat through a Panda run directory."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from conftest import answer, event_of, stop_leftovers, wait_for
from trainer.contract.rundir import RunDir, RunDirError, current_line

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def digits_images():
    from sklearn.datasets import load_digits

    digits = load_digits()
    return (digits.images / 16.0).astype("float32")[..., None], digits.target.astype("int32")


def small_cnn(lr=3e-3, optimizer=None, poison=None, filters=8):
    """Conv -> BatchNorm -> ReLU -> pooling -> logits, compiled as users do."""
    import keras

    keras.utils.set_random_seed(0)
    layers = [keras.Input(shape=(8, 8, 1))]
    if poison is not None:  # multiplies the input by a variable outside the model: NaN on demand
        layers.append(keras.layers.Lambda(lambda t: t * poison))
    layers += [keras.layers.Conv2D(filters, 3, padding="same"), keras.layers.BatchNormalization(),
               keras.layers.ReLU(), keras.layers.MaxPooling2D(), keras.layers.Flatten(), keras.layers.Dense(10)]
    model = keras.Sequential(layers)
    model.compile(optimizer=optimizer or keras.optimizers.Adam(learning_rate=lr),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


class FitThread:
    """``model.fit(..., callbacks=[callback])`` in a background thread."""

    def __init__(self, model, callback, data, epochs, batch_size=64, validation_split=0.2):
        self.model, self.callback, self.run = model, callback, callback.rundir
        self.history = self.error = None
        x, y = data

        def target():
            try:
                self.history = model.fit(x, y, batch_size=batch_size, epochs=epochs, validation_split=validation_split,
                                         callbacks=[callback], verbose=0)
            except BaseException as e:  # noqa: BLE001 - reported by join()
                self.error = e

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()
        wait_for(lambda: self.run.status_path.exists() or self.error, self.run.path.parent, what="fit to start the run")

    def join(self, timeout=120.0):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "fit did not return in time"
        if self.error is not None:
            raise self.error
        return self.history

    def send(self, cmd, value=None):
        return answer(self.run, self.run.send_command(cmd, value, source="test"))


@pytest.fixture
def fits():
    started: list[FitThread] = []

    def factory(*args, **kwargs):
        t = FitThread(*args, **kwargs)
        started.append(t)
        return t

    yield factory
    stop_leftovers(started)


def test_a_cnn_fit_becomes_a_complete_panda_run(tmp_path, digits_images):
    from trainer import PandaCallback
    from trainer.cli import format_status

    model = small_cnn()
    run = RunDir(tmp_path / "cnn")
    history = model.fit(*digits_images, batch_size=64, epochs=3, validation_split=0.2, verbose=0,
                        callbacks=[PandaCallback(run.path)])

    config = run.read_config()
    assert config["trainer"] == "keras-callback" and config["model"] == "keras"
    assert config["model_signature"]["params"] == model.count_params()
    assert config["dataset"]["n_classes"] == 10 and config["dataset"]["n_features"] == 64
    records = run.read_metrics()
    assert [r["epoch"] for r in records] == [1, 2, 3]
    steps_per_epoch = math.ceil(1437 / 64)
    assert [r["step"] for r in records] == [steps_per_epoch * e for e in (1, 2, 3)]
    for record, loss, acc, val_acc in zip(records, history.history["loss"], history.history["accuracy"],
                                          history.history["val_accuracy"]):
        assert record["loss"] == pytest.approx(loss)
        assert record["accuracy"] == pytest.approx(acc)
        assert record["val_accuracy"] == pytest.approx(val_acc)
        assert record["batch_size"] == 64 and record["lr"] == pytest.approx(3e-3)
        assert record["samples_per_second"] > 0 and record["branch"] == 0
    assert records[-1]["val_accuracy"] > 0.6, "the CNN learned"

    batches = (run.path / "batches.jsonl").read_text().splitlines()
    assert len(batches) == 3 * steps_per_epoch, "every step of a short epoch is sampled"
    first_epoch = [json.loads(b)["loss"] for b in batches if json.loads(b)["epoch"] == 1]
    # the per-batch losses recovered from Keras's running mean average back to the epoch's loss
    weights = [64] * (steps_per_epoch - 1) + [1437 - 64 * (steps_per_epoch - 1)]
    assert np.average(first_epoch, weights=weights) == pytest.approx(records[0]["loss"], rel=1e-3)

    status = run.read_status()
    assert status["state"] == "finished" and status["epoch"] == 3 and status["epochs"] == 3
    assert status["hparams"]["optimizer"] == "adam" and status["hparams"]["batch_size"] == 64
    assert run.liveness() == "finished"
    assert "epoch 3/3" in format_status(run)
    assert [e["event"] for e in run.read_events()] == ["started", "finished"]
    names = [m["name"] for m in run.list_checkpoints()]
    assert names[0] == "ckpt-00001" and len(names) == 4  # initial + three epochs (all among the last 3 kept)
    assert run.list_checkpoints()[-1]["metrics"]["epoch"] == 3


def test_the_callback_steps_in_through_fits_batch_function_and_takes_itself_out_after(tmp_path, digits_images):
    # Panda steps in through a wrapper of model.train_function during fit, not through batch
    # hooks; after fit the model is as it was, and a fit without the callback leaves its run alone.
    import keras

    from trainer import PandaCallback

    model = small_cnn()
    callback = PandaCallback(tmp_path / "hooked")
    seen = {}

    class Probe(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.setdefault("wrapped", getattr(self.model.train_function, "panda_callback", None) is callback)

    for hook in ("on_train_batch_begin", "on_train_batch_end", "on_batch_end"):
        assert getattr(PandaCallback, hook) is getattr(keras.callbacks.Callback, hook), f"no {hook} of its own"
    x, y = digits_images
    model.fit(x, y, batch_size=64, epochs=2, callbacks=[callback, Probe()], verbose=0)
    assert seen["wrapped"], "during fit, batches go through Panda"
    assert not hasattr(model.train_function, "panda_callback"), "after fit, the model's own function again"
    records = callback.rundir.read_metrics()
    per_epoch = math.ceil(len(x) / 64)
    assert [r["step"] for r in records] == [per_epoch, 2 * per_epoch], "every batch counted once"
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)  # without the callback: its run is untouched
    assert callback.rundir.read_metrics() == records


def test_commands_steer_fit_at_batch_boundaries(tmp_path, digits_images, fits):
    from trainer import PandaCallback

    model = small_cnn(lr=0.01)
    t = fits(model, PandaCallback(tmp_path / "steer"), digits_images, epochs=1000)
    run = t.run
    wait_for(lambda: len(run.read_metrics()) >= 2, run.path, what="two epochs")

    lr = t.send("set_lr", 0.00123)
    assert lr["event"] == "applied" and lr["hparams"]["lr"] == pytest.approx(0.00123)
    assert lr["step"] - lr["received_step"] <= 1, "applied at the next batch boundary"
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.00123)
    later = wait_for(lambda: [r for r in run.read_metrics() if r["step"] > lr["step"]], run.path, what="an epoch after")
    assert later[0]["lr"] == pytest.approx(0.00123)
    assert t.send("scale_lr", 2)["hparams"]["lr"] == pytest.approx(0.00246)

    beta = t.send("set_beta", 0.5)
    assert beta["event"] == "rejected" and "beta" in beta["reason"]
    batch = t.send("set_batch_size", 32)
    assert batch["event"] == "rejected" and "batch size" in batch["reason"]
    assert t.send("set_lr", -1)["event"] == "rejected"

    paused = t.send("pause")
    assert paused["event"] == "applied"
    status = wait_for(lambda: (s := run.read_status())["state"] == "paused" and s, run.path, what="paused status")
    later = wait_for(lambda: (s := run.read_status())["heartbeat"] > status["heartbeat"] + 1.5 and s, run.path,
                     timeout=10, what="two heartbeats while paused")
    assert later["step"] == paused["step"] == int(model.optimizer.iterations.numpy()), "fit waits at the batch"
    assert event_of(run, "paused")["command_id"] == paused["command_id"]
    assert t.send("set_lr", 0.002)["event"] == "applied", "hyperparameters change while paused"
    assert t.send("pause")["event"] == "rejected"
    assert t.send("resume")["event"] == "applied"
    wait_for(lambda: [r for r in run.read_metrics() if r["step"] > paused["step"]], run.path, what="training after resume")

    saved = t.send("checkpoint")
    assert saved["event"] == "applied" and saved["checkpoint"] in [m["name"] for m in run.list_checkpoints()]
    stop = t.send("stop")
    assert stop["event"] == "applied"
    history = t.join()
    assert model.stop_training is True
    assert len(history.history["loss"]) < 1000
    assert run.read_status()["state"] == "finished" and run.read_status()["message"] == "stopped by the user"
    assert event_of(run, "finished")["reason"] == "stopped"
    assert event_of(run, "checkpoint_saved", 2)["reason"] == "stop"
    epochs = [r["epoch"] for r in run.read_metrics()]
    assert epochs == list(range(1, len(epochs) + 1)), "a stop mid-epoch writes no partial record"
    answers = [e for e in run.read_events() if e["event"] in ("applied", "rejected")]
    assert len({e["command_id"] for e in answers}) == len(answers) == 11


def test_a_learning_rate_schedule_is_steered_through_its_multiplier(tmp_path, digits_images, fits):
    import keras

    from trainer import PandaCallback

    schedule = keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=10, decay_rate=0.9)
    model = small_cnn(optimizer=keras.optimizers.SGD(learning_rate=schedule))
    t = fits(model, PandaCallback(tmp_path / "sched"), digits_images, epochs=1000)
    wait_for(lambda: t.run.read_metrics(), t.run.path, what="an epoch")
    assert t.send("pause")["event"] == "applied"
    steered = model.optimizer._learning_rate
    step = int(model.optimizer.iterations.numpy())

    reply = t.send("set_lr", 0.05)  # α now is 0.05, and the decay goes on from there
    assert reply["event"] == "applied" and reply["hparams"]["lr"] == pytest.approx(0.05, rel=1e-5)
    assert reply["lr_scale"] == pytest.approx(0.05 / schedule(step).numpy(), rel=1e-5)
    assert float(steered(step + 10).numpy()) == pytest.approx(0.05 * 0.9, rel=1e-5), "the schedule's shape goes on"
    halved = t.send("scale_lr", 0.5)
    assert halved["event"] == "applied" and halved["lr_scale"] == pytest.approx(reply["lr_scale"] / 2, rel=1e-5)
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.025, rel=1e-5)
    assert t.run.read_status()["hparams"]["decay"] == "ExponentialDecay"
    assert t.send("resume")["event"] == "applied"
    t.send("stop")
    t.join()
    after = [r for r in t.run.read_metrics() if r["step"] > step]
    assert all(r["lr"] == pytest.approx(0.025 * 0.9 ** ((r["step"] - 1 - step) / 10), rel=1e-4) for r in after), after


def test_a_schedule_at_zero_cannot_be_set_and_says_so(tmp_path, digits_images):
    import keras

    from trainer import PandaCallback

    held = keras.optimizers.schedules.PiecewiseConstantDecay([100], [0.0, 0.01])  # a warm-up hold at α 0
    model = small_cnn(optimizer=keras.optimizers.Adam(learning_rate=held))
    callback = PandaCallback(tmp_path / "held")
    sent = []

    class Sender(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):  # after Panda's: the run is open
            sent.append(callback.rundir.send_command("set_lr", 0.1, source="test"))
            callback.steering.inbox.poll()

    model.fit(*digits_images, batch_size=256, epochs=1, verbose=0, callbacks=[callback, Sender()])
    refused = callback.rundir.answer_to(sent[0])
    assert refused["event"] == "rejected"
    assert refused["reason"].startswith("a PiecewiseConstantDecay schedule is at α 0 at step 1"), refused["reason"]
    from trainer.keras_callback.lr import article

    assert (article("ExponentialDecay"), article("CosineDecay")) == ("an ExponentialDecay", "a CosineDecay")


def test_a_non_finite_loss_rolls_back_and_waits_then_rewind_branches(tmp_path, digits_images, fits):
    import tensorflow as tf

    from trainer import PandaCallback

    poison = tf.Variable(1.0, trainable=False)
    model = small_cnn(poison=poison)
    t = fits(model, PandaCallback(tmp_path / "nan"), digits_images, epochs=1000)
    run = t.run
    wait_for(lambda: len(run.read_metrics()) >= 2, run.path, what="two epochs")
    saved = t.send("checkpoint")
    at_epoch = saved["epoch"]

    poison.assign(float("nan"))
    status = wait_for(lambda: (s := run.read_status())["state"] == "diverged" and s, run.path, what="divergence")
    diverged = event_of(run, "diverged")
    assert "loss" in diverged["reason"] and diverged["branch"] >= 1
    assert "Lower the learning rate" in status["message"]
    assert all(np.isfinite(w).all() for w in model.get_weights()), "rolled back to finite weights"
    poison.assign(1.0)
    assert t.send("resume")["event"] == "applied"

    wait_for(lambda: [r for r in run.read_metrics() if r["branch"] == diverged["branch"]], run.path,
             what="an epoch on the new branch")
    rewound = t.send("rewind", saved["checkpoint"])
    assert rewound["event"] == "applied" and rewound["to_epoch"] == at_epoch and rewound["branch"] > diverged["branch"]
    after = wait_for(lambda: [r for r in run.read_metrics() if r["branch"] == rewound["branch"]], run.path,
                     what="an epoch after the rewind")
    assert after[0]["epoch"] == at_epoch + 1
    t.send("stop")
    t.join()
    for record in run.read_metrics():
        assert record["loss"] is not None and math.isfinite(record["loss"]), "no NaN epoch is ever recorded"
    line = current_line(run.read_metrics())
    assert [r["epoch"] for r in line] == list(range(1, len(line) + 1))
    assert line[-1]["branch"] == rewound["branch"]


def test_a_run_that_is_not_ours_is_refused_before_training(tmp_path, digits_images):
    from trainer import PandaCallback
    from trainer.contract.hparams import Hyperparameters
    from trainer.training.loop import TrainConfig, Trainer

    # someone else's files
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(RunDirError, match="not a Panda run"):
        PandaCallback(tmp_path / "notes", resume=True)
    assert (tmp_path / "notes" / "todo.txt").read_text() == "keep me"

    # a run made by `panda train`
    Trainer.create(tmp_path / "cli-run", TrainConfig(hparams=Hyperparameters(), epochs=1), verbose=False)
    with pytest.raises(RunDirError, match="already holds a run"):
        PandaCallback(tmp_path / "cli-run")
    with pytest.raises(RunDirError, match="panda train"):
        PandaCallback(tmp_path / "cli-run", resume=True)

    # a callback run of one model, then another model
    x, y = digits_images
    first = small_cnn(filters=8)
    first.fit(x, y, batch_size=128, epochs=1, verbose=0, callbacks=[PandaCallback(tmp_path / "mine")])
    run = RunDir(tmp_path / "mine")
    before = (run.events_path.read_text(), run.metrics_path.read_text())
    other = small_cnn(filters=4)
    with pytest.raises(RunDirError, match="another model"):
        other.fit(x, y, batch_size=128, epochs=1, verbose=0, callbacks=[PandaCallback(run.path, resume=True)])
    assert int(other.optimizer.iterations.numpy()) == 0, "refused before the first batch"
    assert (run.events_path.read_text(), run.metrics_path.read_text()) == before
    with pytest.raises(RunDirError, match="PandaCallback"):
        Trainer.resume(run.path, verbose=False)


def test_resume_continues_the_same_run_from_its_checkpoint(tmp_path, digits_images):
    import keras

    from trainer import PandaCallback

    x, y = digits_images
    path = tmp_path / "again"
    first = small_cnn()
    first.fit(x, y, batch_size=128, epochs=2, validation_split=0.2, verbose=0, callbacks=[PandaCallback(path)])
    run = RunDir(path)
    run.send_command("set_lr", 0.0005, source="test")  # after fit: answered by the next fit
    saved = [w.copy() for w in first.get_weights()]
    latest = run.list_checkpoints()[-1]["name"]

    second = small_cnn()  # a new process would build the same model afresh
    callback = PandaCallback(path, resume=True)

    class FirstBatch(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if not hasattr(self, "weights"):
                self.weights = [w.copy() for w in self.model.get_weights()]

    probe = FirstBatch()
    second.fit(x, y, batch_size=128, epochs=2, validation_split=0.2, verbose=0, callbacks=[callback, probe])
    for restored, original in zip(probe.weights, saved):
        np.testing.assert_allclose(restored, original, rtol=1e-6)
    records = run.read_metrics()
    assert [r["epoch"] for r in records] == [1, 2, 3, 4]
    assert records[2]["step"] == records[1]["step"] + math.ceil(1437 / 128), "steps count on"
    assert records[3]["lr"] == pytest.approx(0.0005), "the command sent between the fits was applied"
    started = [e for e in run.read_events() if e["event"] == "started"]
    assert started[1]["resumed_from"] == latest
    assert run.read_status()["epoch"] == 4 and run.read_status()["state"] == "finished"

    # fit again with the same callback object: the run goes on
    second.fit(x, y, batch_size=128, epochs=1, validation_split=0.2, verbose=0, callbacks=[callback])
    assert [r["epoch"] for r in run.read_metrics()] == [1, 2, 3, 4, 5]


def run_example(*args, timeout=240):
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def test_the_examples_run_offline(tmp_path):
    result = run_example(ROOT / "examples" / "keras_fit_callback.py", "--run", tmp_path / "kd", "--epochs", 2)
    assert result.returncode == 0, result.stderr[-3000:]
    run = RunDir(tmp_path / "kd")
    assert [r["epoch"] for r in run.read_metrics()] == [1, 2]
    assert (run.path / "tensorboard" / "train").is_dir()

    result = run_example(ROOT / "examples" / "cnn_image_folder.py", "--out", tmp_path, "--epochs", 2, "--pace", 0)
    assert result.returncode == 0, result.stderr[-3000:]
    run = RunDir(tmp_path / "shapes-cnn")
    config = run.read_config()
    assert config["model"] == "cnn" and config["dataset"]["class_names"] == ["horizontal", "square", "vertical"]
    assert config["dataset"]["input_shape"] == [16, 16, 1]
    assert [r["epoch"] for r in run.read_metrics()] == [1, 2]
