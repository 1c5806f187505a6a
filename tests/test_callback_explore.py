"""PandaCallback runs: undo works; find_lr and fork are refused with a clear reason."""

from __future__ import annotations

import pytest

from conftest import answer, event_of, wait_for
from test_callback import digits_images, fits, small_cnn  # noqa: F401  (fixtures)
from trainer.undo import NOTHING_TO_UNDO


def test_undo_works_and_exploration_is_refused_in_a_keras_fit(tmp_path, digits_images, fits):  # noqa: F811
    from trainer import PandaCallback

    model = small_cnn(lr=0.003)
    t = fits(model, PandaCallback(tmp_path / "fit"), digits_images, epochs=1000)
    run = t.run
    wait_for(lambda: run.read_metrics(), run.path, what="a first epoch")
    assert t.send("pause")["event"] == "applied"

    found = t.send("find_lr", {"steps": 10})
    assert found["event"] == "rejected" and "not supported in a Keras model.fit" in found["reason"]
    forked = t.send("fork", {"candidates": [{"lr": 0.01}], "steps": 5})
    assert forked["event"] == "rejected" and "not supported in a Keras model.fit" in forked["reason"]
    assert t.send("undo")["reason"] == NOTHING_TO_UNDO

    changed = answer(run, run.send_command("set_lr", 0.03, source="dashboard"))
    assert changed["event"] == "applied" and changed["undo_point"]["checkpoint"]
    assert t.send("resume")["event"] == "applied"
    wait_for(lambda: [r for r in run.read_metrics() if r["step"] > changed["step"]], run.path, what="an epoch after")
    undone = t.send("undo")
    assert undone["event"] == "applied" and undone["undid"] == changed["command_id"]
    assert undone["hparams"]["lr"] == pytest.approx(0.003)
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.003)
    assert event_of(run, "rewound")["checkpoint"] == changed["undo_point"]["checkpoint"]
    meta = next(m for m in run.list_checkpoints() if m["name"] == undone["checkpoint"])
    assert undone["step"] == meta["step"], "fit goes on from the step of the page change"
    t.send("stop")
    t.join()
    assert run.read_status()["state"] == "finished"
