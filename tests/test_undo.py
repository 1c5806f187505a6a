"""undo: page changes checkpoint first; undo rewinds there and restores the hyperparameters, across restarts."""

from __future__ import annotations

import pytest

from conftest import answer, event_of, wait_for
from trainer.training.loop import Trainer
from trainer.steering.undo import NOTHING_TO_UNDO, undo_points


def test_undo_rewinds_a_page_change_and_restores_its_hyperparameters(start_trainer):
    t = start_trainer(epochs=60, pace=0.05, lr=0.003, beta=0.9)
    run = t.run
    wait_for(lambda: run.read_metrics(), run.path, what="a first epoch")
    assert t.send("undo")["reason"] == NOTHING_TO_UNDO

    changed = answer(run, run.send_command("set_lr", 0.02, source="dashboard"))
    assert changed["event"] == "applied" and changed["hparams"]["lr"] == pytest.approx(0.02)
    point = changed["undo_point"]
    assert point["hparams"]["lr"] == pytest.approx(0.003) and point["checkpoint"]
    saved = [e for e in run.read_events() if e["event"] == "checkpoint_saved" and e["reason"] == "undo"]
    assert [e["checkpoint"] for e in saved] == [point["checkpoint"]]
    assert saved[0]["step"] == changed["received_step"] or saved[0]["step"] <= changed["step"]

    beta = t.send("set_beta", 0.5)  # from the command line: no checkpoint, the hyperparameters only
    assert beta["undo_point"]["checkpoint"] is None and beta["undo_point"]["hparams"]["beta"] == pytest.approx(0.9)
    wait_for(lambda: [r for r in run.read_metrics() if r["step"] > beta["step"]], run.path, what="an epoch after")

    first = t.send("undo")
    assert first["event"] == "applied" and first["undid"] == beta["command_id"]
    assert first["hparams"]["beta"] == pytest.approx(0.9) and first["hparams"]["lr"] == pytest.approx(0.02)
    assert float(t.trainer.knobs.beta.numpy()) == pytest.approx(0.9)

    second = t.send("undo")
    assert second["event"] == "applied" and second["undid"] == changed["command_id"]
    assert second["checkpoint"] == point["checkpoint"] and second["hparams"]["lr"] == pytest.approx(0.003)
    assert float(t.trainer.optimizer.learning_rate.numpy()) == pytest.approx(0.003)
    rewound = event_of(run, "rewound")
    assert rewound["checkpoint"] == point["checkpoint"]
    meta = next(m for m in run.list_checkpoints() if m["name"] == point["checkpoint"])
    assert second["step"] == meta["step"], "the run is back at the step of the page change"

    assert t.send("undo")["reason"] == NOTHING_TO_UNDO
    again = answer(run, run.send_command("scale_lr", 0.5, source="autopilot"))
    assert again["undo_point"]["checkpoint"]
    t.send("stop")
    assert t.join() == "finished"

    stack = undo_points(run.read_events())  # the journal keeps the stack: a restart can still undo
    assert [p["command_id"] for p in stack] == [again["command_id"]]
    resumed = Trainer.resume(run.path, verbose=False)
    try:
        assert [p["command_id"] for p in resumed.steering.undo_points] == [again["command_id"]]
    finally:
        resumed.close()


def test_an_unchanged_value_leaves_nothing_to_undo_and_a_bad_rewind_saves_nothing(start_trainer):
    t = start_trainer(epochs=60, pace=0.05, lr=0.003)
    run = t.run
    wait_for(lambda: run.read_metrics(), run.path, what="a first epoch")
    bad = answer(run, run.send_command("rewind", "ckpt-09999", source="dashboard"))
    assert bad["event"] == "rejected" and "no checkpoint" in bad["reason"]
    assert not [e for e in run.read_events() if e.get("reason") == "undo"], "no checkpoint for a rejected rewind"
    fork = t.send("fork", {"candidates": [{"lr": 0.01}], "steps": 3, "pick": "ask"})
    assert fork["event"] == "applied" and "undo_point" not in fork, "a fork that asks changes nothing"
    assert t.send("resume")["event"] == "applied"
    assert t.send("undo")["reason"] == NOTHING_TO_UNDO
    t.send("stop")
    assert t.join() == "finished"
