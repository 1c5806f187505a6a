"""PandaCallback on the Keras programs people write (tests/keras_corpus.py): History unchanged, every record true.

Each program runs twice from the same seed, without and with ``PandaCallback``: Keras's History
must be the same, number for number (to float32's last digits: on CPU two runs of the same seeded
program without Panda differ there, oneDNN sums in a thread-dependent order), and every epoch record must hold what the fit really used
(α of the epoch's last step, β or ρ, the batch size, the optimizer's step, positive times).
Then the steering commands are sent from inside the fit (a callback writes them and has the
inbox read the file at once): each is applied or refused with its reason.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from keras_corpus import PROGRAMS, Program

#: Run whole, with and without Panda.
NAMES = list(PROGRAMS)


class Probe:
    """A Keras callback that notes what fit really used: α before each batch, the step at each epoch's end."""

    def __new__(cls):
        import keras

        class _Probe(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.alphas, self.epoch_alpha, self.steps, self.batch_logs = [], [], [], []

            def on_train_batch_begin(self, batch, logs=None):
                self.alphas.append(float(np.asarray(self.model.optimizer.learning_rate)))

            def on_train_batch_end(self, batch, logs=None):
                self.batch_logs.append(dict(logs or {}))

            def on_epoch_end(self, epoch, logs=None):
                self.epoch_alpha.append(self.alphas[-1])
                self.steps.append(int(self.model.optimizer.iterations.numpy()))

        return _Probe()


class Sender:
    """A Keras callback that sends ``commands[(epoch, batch)]`` after that batch (or the first after it, when
    ``steps_per_execution`` > 1 skips it) and has Panda's inbox read them."""

    def __new__(cls, panda, commands: dict, source: str = "test"):
        import keras

        class _Sender(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.ids: dict[tuple, list[str]] = {}
                self.epoch = 0

            def on_epoch_begin(self, epoch, logs=None):
                self.epoch = epoch

            def on_train_batch_end(self, batch, logs=None):
                due = [key for key in commands if key[0] == self.epoch and key[1] <= batch and key not in self.ids]
                for key in due:
                    self.ids[key] = [panda.rundir.send_command(cmd, value, source=source) for cmd, value in commands[key]]
                if due:
                    panda.steering.inbox.poll()  # applied at the next batch boundary

        return _Sender()


def run_program(program: Program, tmp_path, panda=None, extra=()):
    """Build and fit ``program`` from seed 0; returns (model, history, probe)."""
    import keras

    keras.utils.set_random_seed(0)
    with program.scope():
        model = program.build()
    probe = Probe()
    # Panda after the user's callbacks: a ReduceLROnPlateau has changed α before Panda records the epoch
    callbacks = [*program.user_callbacks(tmp_path / ("with" if panda else "without")), probe, *extra]
    if panda is not None:
        callbacks.insert(len(callbacks) - 1 - len(extra), panda)
    (tmp_path / ("with" if panda else "without")).mkdir(exist_ok=True)
    history = model.fit(**program.fit_kwargs(tmp_path), callbacks=callbacks, verbose=0)
    return model, history, probe


def assert_records_true(program, model, history, probe, run):
    """Every epoch record holds what fit really used (History, α, β, batch size, step, times)."""
    records = run.read_metrics()
    assert [r["epoch"] for r in records] == list(range(1, len(history.history["loss"]) + 1))
    for i, record in enumerate(records):
        # every loss (one per output), metric and val_ value; ReduceLROnPlateau adds learning_rate after Panda's turn
        assert set(history.history) - set(record["logs"]) <= {"learning_rate"}
        for key, value in record["logs"].items():
            assert value == pytest.approx(history.history[key][i], rel=1e-6), key
        assert record["loss"] == pytest.approx(history.history["loss"][i], rel=1e-6)
        assert record["lr"] == pytest.approx(probe.epoch_alpha[i], rel=1e-5), "α of the epoch's last step"
        assert record["beta"] == pytest.approx(program.beta(model.optimizer), rel=1e-6)
        assert record["batch_size"] == program.batch_size
        assert record["step"] == probe.steps[i]
        assert record["epoch_seconds"] > 0 and record["wall_seconds"] > 0
        assert record["samples_per_second"] > 0 and record["wall_samples_per_second"] > 0
    return records


@pytest.mark.parametrize("name", NAMES)
def test_history_is_unchanged_and_every_record_is_true(name, tmp_path):
    from trainer import PandaCallback

    program = PROGRAMS[name]
    _, plain, plain_probe = run_program(program, tmp_path)
    panda = PandaCallback(tmp_path / "run")
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        model, steered, probe = run_program(program, tmp_path, panda)
    assert steered.history.keys() == plain.history.keys()
    for key, values in plain.history.items():
        assert steered.history[key] == pytest.approx(values, rel=2e-6, abs=1e-7), f"History's {key} as without Panda"
    assert probe.alphas == pytest.approx(plain_probe.alphas, rel=1e-6)
    records = assert_records_true(program, model, steered, probe, panda.rundir)
    assert panda.rundir.read_status()["state"] == "finished"
    assert panda.rundir.read_status()["hparams"]["batch_size"] == program.batch_size
    panda_lines = [str(w.message) for w in said if "PandaCallback" in str(w.message)]
    assert len(panda_lines) <= 1, panda_lines
    if name == "subclassed":
        assert panda_lines and "not built yet" in panda_lines[0], "one line says the run opens after the first batch"
        assert panda.rundir.read_config()["model_signature"]["params"] == sum(int(np.prod(w.shape)) for w in model.weights)
    else:
        assert not panda_lines, panda_lines
    if name == "timeseries":  # ReduceLROnPlateau changed α: journaled with its source, recorded as used
        observed = [e for e in panda.rundir.read_events() if e["event"] == "lr_observed"]
        assert observed and all(e["source"] == "ReduceLROnPlateau" for e in observed)
        assert [(e["previous"], e["lr"], e["step"]) for e in observed] == [(0.003, 0.0015, 24), (0.0015, 0.00075, 36)]
        assert [r["lr"] for r in records] == [0.003, 0.003, 0.0015], "α used, not the next epoch's"
        assert records[-1]["logs"]["learning_rate"] == pytest.approx(0.0015), "what ReduceLROnPlateau logged"
    if name == "functional":  # a loss per output, each recorded; the accuracy is the output's that has one
        assert {"digit_loss", "ink_loss", "val_digit_loss", "val_ink_loss"} <= set(records[0]["logs"])
        assert [r["accuracy"] for r in records] == pytest.approx(steered.history["digit_accuracy"])
        assert [r["val_accuracy"] for r in records] == pytest.approx(steered.history["val_digit_accuracy"])
    if program.fit_kwargs(tmp_path).get("validation_data") is not None:
        assert all(r["val_loss"] is not None for r in records)


#: (epoch, batch after which it is sent) -> commands; every program gets the same, the answers depend on it.
STEER = {(0, 2): [("set_lr", 0.002), ("set_beta", 0.5), ("set_batch_size", 16)],
         (1, 1): [("find_lr", {"steps": 3, "min": 1e-4, "max": 1e-2})],
         (1, 6): [("scale_lr", 0.5), ("checkpoint", None)]}


@pytest.mark.parametrize("name", ["subclassed", "vae", "transformer", "steps_per_execution", "mixed_float16",
                                  "mirrored", "pipeline"])
def test_commands_apply_or_are_refused_with_a_reason(name, tmp_path):
    from trainer import PandaCallback

    program = PROGRAMS[name]
    panda = PandaCallback(tmp_path / "run")
    sender = Sender(panda, STEER)
    model, history, probe = run_program(program, tmp_path, panda, extra=[sender])
    run = panda.rundir
    events = run.read_events()
    answers = {e["command_id"]: e for e in events if e["event"] in ("applied", "rejected")}
    (set_lr, beta, batch), (find_lr,), (scale, checkpoint) = (
        [answers[i] for i in sender.ids[key]] for key in sorted(STEER))

    assert set_lr["event"] == "applied" and set_lr["hparams"]["lr"] == pytest.approx(0.002, rel=1e-5)
    assert beta["event"] == "rejected" and "beta" in beta["reason"]
    assert batch["event"] == "rejected" and "batch size" in batch["reason"]
    assert find_lr["event"] == "applied" and 1 <= find_lr["points"] <= 3
    assert find_lr["steps_used"] == find_lr["points"] * getattr(model, "steps_per_execution", 1)
    assert find_lr["suggestion"]["lr"] is None and "too short" in find_lr["suggestion"]["reason"]
    assert scale["event"] == "applied" and checkpoint["event"] == "applied"
    spe = getattr(model, "steps_per_execution", 1)
    if name != "transformer":
        assert probe.epoch_alpha[0] == pytest.approx(0.002, rel=1e-5), "set_lr applied within the epoch"
        assert probe.epoch_alpha[1] == pytest.approx(0.001, rel=1e-5), "scale_lr x0.5 of 0.002"
    else:  # a schedule: α is the schedule times Panda's multiplier from then on
        assert scale["lr_scale"] == pytest.approx(set_lr["lr_scale"] / 2, rel=1e-5)
    records = assert_records_true(program, model, history, probe, run)
    assert records[1].get("explored_batches") == find_lr["points"] * spe, "the explored epoch is marked"
    assert "explored_batches" not in records[0]
    assert len(answers) == 6 and run.read_status()["state"] == "finished"
    assert not [e for e in events if e["event"] == "lr_observed"], "Panda's own changes are not 'observed'"
