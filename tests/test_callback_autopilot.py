"""PandaCallback(autopilot=True) in a real Keras model.fit: the advisor's advice applied, a divergence recovered
without a pause, and the lookahead method refused with the reason (a callback holds no data to fork on)."""

from __future__ import annotations

import json

import pytest

from trainer.contract.rundir import RunDir, current_line


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.data / 16.0).astype("float32"), d.target.astype("int32")


def mlp(lr):
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(shape=(64,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(10)])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


def fit(path, lr, epochs, data, **options):
    from trainer import PandaCallback

    model = mlp(lr)
    x, y = data
    model.fit(x, y, batch_size=64, epochs=epochs, validation_split=0.2, verbose=0,
              callbacks=[PandaCallback(path, **options)])
    return RunDir(path)


def test_the_lookahead_method_is_refused_with_the_reason(tmp_path):
    from trainer import PandaCallback

    with pytest.raises(ValueError, match="never holds fit's data"):
        PandaCallback(tmp_path / "r", autopilot=True, autopilot_method="lookahead")
    with pytest.raises(ValueError, match="must be 'rules'"):
        PandaCallback(tmp_path / "r", autopilot=True, autopilot_method="bogus")
    assert not (tmp_path / "r").exists()


def test_the_callbacks_autopilot_applies_not_learning_advice(tmp_path, digits):
    run = fit(tmp_path / "stuck", 1e-5, 5, digits, autopilot=True)
    config = json.loads((run.path / "config.json").read_text())
    assert (config["autopilot"], config["autopilot_method"]) == (True, "rules")
    advice = [e for e in run.read_events() if e["event"] == "advice"]
    assert advice and advice[0]["kind"] == "not learning" and advice[0]["autopilot"] is True
    command = next(c for c in run.read_commands() if c["id"] == advice[0]["autopilot_command"])
    assert (command["cmd"], command["source"]) == ("scale_lr", "autopilot")
    assert run.answer_to(command["id"])["event"] == "applied"
    lrs = [r["lr"] for r in current_line(run.read_metrics())]
    assert lrs[-1] == pytest.approx(1e-4) and lrs[0] == pytest.approx(1e-5)


def test_without_the_autopilot_the_callback_gives_no_advice(tmp_path, digits):
    run = fit(tmp_path / "plain", 1e-5, 4, digits)
    assert [e for e in run.read_events() if e["event"] == "advice"] == []
    assert json.loads((run.path / "config.json").read_text())["autopilot"] is False


class PoisonFirstEpoch:
    """A Keras callback: the logits times NaN during epoch 1 only (a divergence on demand), then times 1."""

    def __new__(cls, poison):
        import keras

        class Poison(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                poison.assign(float("nan") if epoch == 0 else 1.0)

        return Poison()


def test_a_divergence_under_the_callbacks_autopilot_lowers_alpha_and_fit_goes_on(tmp_path, digits):
    import keras
    import tensorflow as tf

    from trainer import PandaCallback

    poison = tf.Variable(1.0, trainable=False)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(shape=(64,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(10), keras.layers.Lambda(lambda t: t * poison)])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    x, y = digits
    model.fit(x, y, batch_size=64, epochs=8, validation_split=0.2, verbose=0,
              callbacks=[PoisonFirstEpoch(poison), PandaCallback(tmp_path / "nan", autopilot=True)])
    run = RunDir(tmp_path / "nan")
    events = run.read_events()
    diverged = [e for e in events if e["event"] == "diverged"]
    assert len(diverged) == 1 and diverged[0]["autopilot"] is True
    assert not [e for e in events if e["event"] == "paused"], "no pause for a person"
    lowered = [c for c in run.read_commands() if c["source"] == "autopilot" and c["cmd"] == "set_lr"]
    assert [c["value"] for c in lowered] == [pytest.approx(1e-3)]
    assert run.answer_to(lowered[0]["id"])["event"] == "applied"
    line = current_line(run.read_metrics())
    assert run.status().state == "finished" and line[-1]["lr"] == pytest.approx(1e-3)
    assert line[-1]["val_accuracy"] > 0.8, "fit went on, and learned"
