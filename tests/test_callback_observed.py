"""PandaCallback sees what others do to a fit: α changed by other callbacks or user code, a pause in validation,
a find_lr that runs to the epoch's end of a ``train_step`` model, an unbuilt model resumed."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest

from conftest import wait_for
from keras_corpus import PROGRAMS, digits
from test_callback_corpus import Probe, Sender
from trainer.contract.rundir import RunDir
from trainer.reports.schedule import lr_at, lr_schedule


def mlp(lr=3e-3):
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(shape=(64,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(10)])
    model.compile(optimizer=keras.optimizers.Adam(lr),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


def test_learning_rate_changes_by_others_are_journaled_recorded_and_exported(tmp_path):
    import keras

    from trainer import PandaCallback

    x, y = digits(640)
    model, panda, probe = mlp(), PandaCallback(tmp_path / "seen"), Probe()
    halve = keras.callbacks.LearningRateScheduler(lambda epoch, lr: lr if epoch == 0 else lr * 0.5)
    model.fit(x, y, batch_size=64, epochs=2, verbose=0, callbacks=[halve, panda, probe])
    model.optimizer.learning_rate = 0.0007  # user code between two fits
    line = _line_above()
    model.fit(x, y, batch_size=64, epochs=1, verbose=0, callbacks=[panda, probe])

    observed = [e for e in panda.rundir.read_events() if e["event"] == "lr_observed"]
    assert [(e["source"], e["previous"], e["lr"]) for e in observed] == [
        ("LearningRateScheduler", 0.003, 0.0015), (f"test_callback_observed.py:{line}", 0.0015, 0.0007)]
    assert observed[0]["step"] == 10 and observed[0]["hparams"]["lr"] == pytest.approx(0.0015)
    records = panda.rundir.read_metrics()
    assert [r["lr"] for r in records] == pytest.approx(probe.epoch_alpha) == [0.003, 0.0015, 0.0007]
    schedule = lr_schedule(panda.rundir.path)
    assert [lr_at(schedule, step) for step in range(len(probe.alphas))] == pytest.approx(probe.alphas, rel=1e-6), \
        "the exported schedule is the α each step used"
    from app.figures import run_charts as charts
    from app.data import RunData

    view = RunData(panda.rundir.path, watch=False).view()
    marks = [i for i in charts.interventions(view) if i.kind == "lr"]
    assert [m.text for m in marks] == ["learning rate 0.003 → 0.0015", "learning rate 0.0015 → 0.0007"]
    assert "by LearningRateScheduler" in marks[0].detail
    assert sorted(set(charts.learning_rate_series(view)[1])) == [0.0007, 0.0015, 0.003]


def _line_above() -> int:
    import inspect

    return inspect.currentframe().f_back.f_lineno - 1


def test_a_pause_during_validation_leaves_the_training_time_positive(tmp_path):
    import keras

    from trainer import PandaCallback

    x, y = digits(640)
    panda = PandaCallback(tmp_path / "paused")
    run = panda.rundir
    resumed = []

    def resume_after_two_heartbeats():
        status = wait_for(lambda: (s := run.read_status())["state"] == "paused" and s, run.path, what="paused")
        wait_for(lambda: run.read_status()["heartbeat"] > status["heartbeat"] + 1.5, run.path, what="2 heartbeats")
        resumed.append(run.send_command("resume", source="test"))

    class PauseInValidation(keras.callbacks.Callback):
        window: list[float] = []  # perf_counter at the first epoch's start and at its validation's start

        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 0:
                self.window.append(time.perf_counter())

        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                self.window.append(time.perf_counter())

        def on_test_begin(self, logs=None):
            if not hasattr(self, "thread"):
                self.window.append(time.perf_counter())
                run.send_command("pause", source="test")
                panda.steering.inbox.poll()
                self.thread = threading.Thread(target=resume_after_two_heartbeats, daemon=True)
                self.thread.start()

    model = mlp()
    probe = PauseInValidation()
    model.fit(x, y, batch_size=64, epochs=2, validation_split=0.25, verbose=0, callbacks=[panda, probe])
    first = run.read_metrics()[0]
    events = run.read_events()
    paused, resumed_at = (next(e for e in events if e["event"] == kind) for kind in ("paused", "resumed"))
    assert paused["epoch"] == 0 and resumed_at["time"] - paused["time"] > 1.4, "1.5 s paused in epoch 1's validation"
    training = probe.window[1] - probe.window[0]
    assert first["epoch_seconds"] == pytest.approx(training, abs=0.05, rel=0.05), "the training window, pause left out"
    assert first["samples_per_second"] > 0
    whole = probe.window[2] - probe.window[0]
    assert 0 < first["wall_seconds"] < whole - 1.4, "the end-to-end time leaves the pause out too"


def test_find_lr_to_the_epochs_end_leaves_a_train_step_models_loss_alone(tmp_path):
    # The VAE's train_step returns "loss" while its metrics are "total_loss"...: Keras takes the
    # epoch's numbers from the last logs it saw. A find_lr that runs into the epoch's end must not
    # hand Keras its own batches' losses (it did: that epoch's loss was the finder's last batch).
    import json

    import keras

    from trainer import PandaCallback
    from trainer.training.exploration import LR_FINDER

    program = PROGRAMS["vae"]
    panda = PandaCallback(tmp_path / "vae")
    sender = Sender(panda, {(1, 3): [("find_lr", {"steps": 500, "min": 1e-4, "max": 2e-3})]})
    keras.utils.set_random_seed(0)
    model = program.build()
    probe = Probe()
    history = model.fit(**program.fit_kwargs(tmp_path), callbacks=[panda, sender, probe], verbose=0)
    found = panda.rundir.answer_to(sender.ids[(1, 3)][0])
    per_epoch = math.ceil(1024 / 64)
    assert found["event"] == "applied" and found["stopped"] == "epoch end"
    assert found["points"] == per_epoch - 5, "the finder took the epoch's batches after the 5th"
    curve = json.loads((panda.rundir.path / LR_FINDER).read_text().splitlines()[0])["points"]
    last_real = probe.batch_logs[per_epoch + 4]["loss"]  # epoch 2's 5th batch: the newest before the finder
    losses = history.history["loss"]
    assert losses[1] == pytest.approx(last_real, rel=1e-6), "History holds the training batches' mean"
    assert losses[1] != pytest.approx(curve[-1]["loss"], rel=1e-3), "not the finder's last batch"
    records = panda.rundir.read_metrics()
    assert [r["loss"] for r in records] == pytest.approx(losses)
    assert records[1]["explored_batches"] == found["points"] and "explored_batches" not in records[2]
    assert records[0]["batch_size"] == 64 and all(r["samples_per_second"] > 0 for r in records)
    assert records[1]["samples_per_second"] < records[0]["samples_per_second"] * 10


def test_an_unbuilt_subclassed_model_resumes_its_run(tmp_path):
    from trainer import PandaCallback

    program = PROGRAMS["subclassed"]
    x, y = digits(1024)
    first = program.build()
    first.fit(x, y, batch_size=64, epochs=1, verbose=0, callbacks=[PandaCallback(tmp_path / "sub")])
    saved = [w.copy() for w in first.get_weights()]
    again = program.build()  # a new process builds the same class afresh: unbuilt again
    panda = PandaCallback(tmp_path / "sub", resume=True)
    probe = Probe()
    with pytest.warns(RuntimeWarning, match="opens after fit's first batch"):
        again.fit(x, y, batch_size=64, epochs=1, verbose=0, callbacks=[panda, probe])
    run = RunDir(tmp_path / "sub")
    records = run.read_metrics()
    assert [r["epoch"] for r in records] == [1, 2]
    assert records[1]["step"] == probe.steps[-1] == records[0]["step"] + 16 - 1, \
        "the checkpoint replaced the first batch's weights: its step is not counted"
    assert [e["resumed_from"] for e in run.read_events() if e["event"] == "started"][1] is not None
    assert not all(np.array_equal(a, b) for a, b in zip(saved, again.get_weights())), "it trained on"


def test_a_steered_schedule_is_exported_as_the_alpha_each_step_used(tmp_path):
    import json

    import keras

    from trainer import PandaCallback
    from trainer.reports.keras_schedule import PandaSchedule

    x, y = digits(640)
    keras.utils.set_random_seed(0)
    decay = keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=5, decay_rate=0.8)
    model = keras.Sequential([keras.Input(shape=(64,)), keras.layers.Dense(10)])
    model.compile(optimizer=keras.optimizers.SGD(decay), metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    panda, probe = PandaCallback(tmp_path / "decay"), Probe()
    sender = Sender(panda, {(0, 3): [("set_lr", 0.05)], (1, 2): [("scale_lr", 0.5)]})
    model.fit(x, y, batch_size=64, epochs=2, verbose=0, callbacks=[panda, sender, probe])
    (set_lr,), (scaled,) = ([panda.rundir.answer_to(i) for i in ids] for ids in sender.ids.values())
    assert set_lr["event"] == scaled["event"] == "applied"
    assert probe.alphas[set_lr["step"]] == pytest.approx(0.05, rel=1e-5), "α is the one asked for at the next step"
    assert probe.alphas[set_lr["step"] + 5] == pytest.approx(0.05 * 0.8, rel=1e-5), "and the decay goes on from it"
    exported = lr_schedule(panda.rundir.path)
    assert exported["steps"] == [0, set_lr["step"], scaled["step"]]
    (tmp_path / "schedule.json").write_text(json.dumps(exported))
    rebuilt = PandaSchedule.from_json(tmp_path / "schedule.json")
    used = [float(rebuilt(step)) for step in range(len(probe.alphas))]
    assert used == pytest.approx(probe.alphas, rel=1e-5), "the export is the α every step used"
    assert [r["lr"] for r in panda.rundir.read_metrics()] == pytest.approx(probe.epoch_alpha, rel=1e-5)


def test_a_fit_panda_cannot_follow_trains_without_it_and_says_so_once(tmp_path, monkeypatch):
    # Only Keras's TensorFlow backend can be followed; this process has no other backend to run,
    # so the backend's name is what is replaced (keras.backend.backend), nothing else.
    import keras

    from trainer import PandaCallback

    x, y = digits(256)
    model = mlp()
    panda = PandaCallback(tmp_path / "other")
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.warns(RuntimeWarning, match="TensorFlow backend, not 'jax'") as said:
        history = model.fit(x, y, batch_size=64, epochs=2, verbose=0, callbacks=[panda])
    assert len([w for w in said if "PandaCallback" in str(w.message)]) == 1
    assert len(history.history["loss"]) == 2 and history.history["loss"][1] < history.history["loss"][0]
    assert not (tmp_path / "other").exists()


def test_find_lr_into_the_end_of_a_data_set_of_unknown_length_puts_the_epochs_metrics_back(tmp_path):
    # fit cannot say how many batches a filtered tf.data.Dataset has: the test learns the epoch
    # ended when the data runs out inside its batch, and puts the metrics' sums back before Keras
    # reads the epoch's results from them
    import json

    import tensorflow as tf

    from trainer import PandaCallback
    from trainer.training.exploration import LR_FINDER

    x, y = digits(640)
    data = tf.data.Dataset.from_tensor_slices((x, y)).filter(lambda a, b: True).batch(64)
    assert int(data.cardinality()) == tf.data.UNKNOWN_CARDINALITY
    model, panda, probe = mlp(), PandaCallback(tmp_path / "unknown"), Probe()
    sender = Sender(panda, {(0, 2): [("find_lr", {"steps": 500, "min": 1e-4, "max": 1e-2})]})
    history = model.fit(data, epochs=2, verbose=0, callbacks=[panda, sender, probe])
    found = panda.rundir.answer_to(sender.ids[(0, 2)][0])
    assert found["event"] == "applied" and found["stopped"] == "epoch end" and found["points"] == 10 - 4
    curve = json.loads((panda.rundir.path / LR_FINDER).read_text())["points"]
    assert history.history["loss"][0] == pytest.approx(probe.batch_logs[3]["loss"], rel=1e-6), \
        "the mean of the epoch's 4 training batches"
    assert history.history["loss"][0] != pytest.approx(curve[-1]["loss"], rel=1e-3)
    records = panda.rundir.read_metrics()
    assert records[0]["explored_batches"] == 6 and records[0]["batch_size"] == 64
    assert records[0]["loss"] == pytest.approx(history.history["loss"][0])


def test_undo_of_a_schedule_change_puts_its_multiplier_back(tmp_path):
    import keras

    from trainer import PandaCallback

    x, y = digits(640)
    keras.utils.set_random_seed(0)
    decay = keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=5, decay_rate=0.8)
    model = keras.Sequential([keras.Input(shape=(64,)), keras.layers.Dense(10)])
    model.compile(optimizer=keras.optimizers.SGD(decay), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    panda = PandaCallback(tmp_path / "undo")
    sender = Sender(panda, {(0, 2): [("set_lr", 0.05)], (1, 2): [("undo", None)]}, source="dashboard")
    model.fit(x, y, batch_size=64, epochs=2, verbose=0, callbacks=[panda, sender])
    changed, undone = (panda.rundir.answer_to(ids[0]) for ids in sender.ids.values())
    assert changed["event"] == "applied" and changed["hparams"]["lr_scale"] != 1.0
    assert undone["event"] == "applied" and undone["undid"] == changed["command_id"], undone
    assert undone["hparams"]["lr_scale"] == 1.0 and float(model.optimizer._learning_rate.scale.numpy()) == 1.0
    assert lr_schedule(panda.rundir.path)["scales"][-1] == 1.0, "the export follows the undo"
