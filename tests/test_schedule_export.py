"""panda export --format schedule: the α(step) a run used, and a Keras schedule that a plain model.fit trains with."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import wait_for
from trainer.cli import main
from trainer.reports.schedule import lr_at, schedule_from

pytestmark = pytest.mark.timeout(300)


def test_rewinds_drop_the_steps_gone_over_and_decay_steps_at_epoch_ends():
    events = [
        {"event": "started", "step": 0, "time": 1, "hparams": {"lr": 0.01}},
        {"event": "applied", "cmd": "set_lr", "step": 25, "time": 3, "hparams": {"lr": 0.1}},
        {"event": "rewound", "step": 20, "time": 4},
        {"event": "applied", "cmd": "rewind", "step": 20, "time": 4.1, "hparams": {"lr": 0.1}},
        {"event": "applied", "cmd": "set_lr", "step": 30, "time": 5, "hparams": {"lr": 0.05}},
    ]
    assert schedule_from(events, [], {"lr": 0.01}) == {"steps": [0, 20, 30], "values": [0.01, 0.1, 0.05]}
    records = [{"epoch": e, "step": 10 * e, "time": 1 + e / 10} for e in (1, 2, 3)]
    decayed = schedule_from(events[:1], records, {"lr": 0.01, "decay": "inverse", "decay_rate": 1.0})
    assert decayed == {"steps": [0, 10, 20, 30], "values": [0.01, 0.005, 0.01 / 3, 0.0025]}
    assert [lr_at(decayed, s) for s in (0, 9, 10, 29, 30, 10**6)] == [0.01, 0.01, 0.005, 0.01 / 3, 0.0025, 0.0025]


def test_export_gives_the_alpha_a_live_run_used_and_keras_trains_with_it(tmp_path, start_trainer):
    import keras

    from trainer.reports.keras_schedule import PandaSchedule

    t = start_trainer("orig", epochs=4, pace=0.1, optimizer="sgd", lr=0.05)
    changes = [t.send("set_lr", 0.02)]
    wait_for(lambda: len(t.run.read_metrics()) >= 2, t.run.path, what="epoch 2")
    changes.append(t.send("scale_lr", 0.5))
    assert t.join() == "finished"
    assert main(["export", str(t.run.path), "--format", "schedule", "--out", str(tmp_path / "out")]) == 0
    schedule = json.loads((tmp_path / "out" / "schedule.json").read_text())
    assert schedule["run"] == "orig" and schedule["steps"][0] == 0
    for applied in changes:  # α from the step each command took effect
        assert lr_at(schedule, applied["step"]) == pytest.approx(applied["hparams"]["lr"])
    assert schedule["values"][-1] == pytest.approx(0.01) and len(schedule["values"]) <= 3
    for record in t.run.read_metrics():  # every epoch's last step ran at the α its record shows
        assert lr_at(schedule, record["step"] - 1) == pytest.approx(record["lr"])

    keras_schedule = PandaSchedule.from_json(tmp_path / "out" / "schedule.json")
    for step in (0, 1, schedule["steps"][-1] - 1, schedule["steps"][-1], 10**6):
        assert float(keras_schedule(step)) == pytest.approx(lr_at(schedule, step), rel=1e-6)

    # a plain model.fit trains with it: after k steps the optimizer's α is the schedule's at k
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    optimizer = keras.optimizers.SGD(learning_rate=keras_schedule)
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    steps = schedule["steps"][-1] + 3
    model.fit(x, y, batch_size=1, epochs=1, steps_per_epoch=steps, verbose=0) if steps <= 64 else \
        model.fit(np.repeat(x, steps // 64 + 1, axis=0), np.repeat(y, steps // 64 + 1), batch_size=1, epochs=1,
                  steps_per_epoch=steps, verbose=0)
    assert int(optimizer.iterations.numpy()) == steps
    assert float(optimizer.learning_rate) == pytest.approx(schedule["values"][-1], rel=1e-6)
    restored = PandaSchedule.from_config(keras_schedule.get_config())
    assert restored.steps == keras_schedule.steps and restored.values == keras_schedule.values
