"""panda replay: RUN's configuration again with RUN's interventions at the same global steps."""

from __future__ import annotations

import pytest

from conftest import wait_for
from trainer.cli import main
from trainer.steering.replay import Replayer, plan_of

pytestmark = pytest.mark.timeout(300)

COMPARED = ("epoch", "branch", "step", "lr", "batch_size", "loss", "accuracy", "val_loss", "val_accuracy", "grad_norm")


def test_a_replay_plan_keeps_where_each_intervention_took_effect():
    events = [
        {"event": "applied", "cmd": "set_lr", "value": 0.01, "epoch": 1, "step": 30},
        {"event": "applied", "cmd": "pause", "epoch": 1, "step": 31},
        {"event": "rejected", "cmd": "set_lr", "value": -1, "epoch": 1, "step": 31},
        {"event": "applied", "cmd": "rewind", "value": "1", "checkpoint": "ckpt-00001", "epoch": 1, "step": 23,
         "from_epoch": 3, "from_step": 80},
        {"event": "applied", "cmd": "set_autopilot", "value": True, "epoch": 1, "step": 23},
    ]
    assert plan_of(events) == [{"epoch": 1, "step": 30, "cmd": "set_lr", "value": 0.01},
                                   {"epoch": 3, "step": 80, "cmd": "rewind", "value": "ckpt-00001"}]
    with pytest.raises(ValueError, match="rewinds do not say"):
        plan_of([{"event": "applied", "cmd": "rewind", "value": "1", "epoch": 1, "step": 23}])
    assert Replayer([]).due_step() == -1


def test_replay_matches_a_run_with_three_alpha_changes_and_a_rewind(tmp_path, start_trainer, capsys):
    t = start_trainer("orig", epochs=8, pace=0.15, checkpoint_every=1, optimizer="adam", lr=3e-3)
    run = t.run
    assert t.send("set_lr", 1e-2)["event"] == "applied"
    wait_for(lambda: len(run.read_metrics()) >= 2, run.path, what="epoch 2")
    assert t.send("scale_lr", 0.5)["event"] == "applied"
    wait_for(lambda: len(run.read_metrics()) >= 4, run.path, what="epoch 4")
    rewound = t.send("rewind", "2")
    assert rewound["event"] == "applied" and rewound["from_step"] > rewound["step"]
    assert t.send("set_lr", 1e-3)["event"] == "applied"
    assert t.join() == "finished"
    original = run.read_metrics()
    plan = plan_of(run.read_events())
    assert [e["cmd"] for e in plan] == ["set_lr", "scale_lr", "rewind", "set_lr"]
    assert {r["branch"] for r in original} == {0, 1}

    assert main(["replay", str(run.path), "--name", "again", "--quiet"]) == 0
    replay = type(run)(run.path.parent / "again")
    copy = replay.read_metrics()
    assert [[r[k] for k in COMPARED[:5]] for r in copy] == [[r[k] for k in COMPARED[:5]] for r in original]
    for a, b in zip(original, copy):
        for key in COMPARED[5:]:
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), (a["epoch"], key)
    sources = {c["source"] for c in replay.read_commands()}
    assert sources == {"replay"} and len(replay.read_commands()) == 4
    assert all(e["event"] == "applied" for e in replay.read_events() if e.get("command_id"))
    assert replay.read_config()["autopilot"] is False
