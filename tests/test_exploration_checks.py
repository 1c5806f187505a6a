"""Bad find_lr, fork and undo commands: each refused with a reason, training undisturbed."""

from __future__ import annotations

import pytest

from conftest import wait_for
from trainer.contract import commands as cmds
from trainer.steering.undo import NOTHING_TO_UNDO

BAD = [
    ("fork", {"candidates": [], "steps": 10}, "at least one candidate"),
    ("fork", {"steps": 10}, "at least one candidate"),
    ("fork", {"candidates": [{"lr": 0.01}] * 9, "steps": 10}, "at most 8"),
    ("fork", {"candidates": [{"lr": 0.01}], "steps": 0}, "at least 1"),
    ("fork", {"candidates": [{"lr": 0.01}]}, "needs steps"),
    ("fork", {"candidates": [{"lr": 0.01}, {"lr": -1}], "steps": 5}, "candidate 2: learning rate must be > 0"),
    ("fork", {"candidates": [{"lr": "nan"}], "steps": 5}, "finite"),
    ("fork", {"candidates": [{"lr": 0.01}], "steps": 5, "pick": "worst"}, "'ask' or 'best'"),
    ("fork", {"candidates": [{}], "steps": 5}, "sets nothing"),
    ("fork", {"candidates": [{"momentum": 0.9}], "steps": 5}, "unknown field"),
    ("fork", [0.01, 0.003], "needs an object"),
    ("find_lr", {"min": 1, "max": 1e-3}, "min must be below max"),
    ("find_lr", {"min": 0.1, "max": 0.1}, "min must be below max"),
    ("find_lr", {"min": 0, "max": 1}, "> 0"),
    ("find_lr", {"min": -1e-6, "max": 1}, "> 0"),
    ("find_lr", {"max": 1e9}, "find_lr range"),
    ("find_lr", {"steps": 1}, "at least 2"),
    ("find_lr", {"steps": 10**9}, "steps"),
    ("find_lr", "fast", "needs an object"),
    ("undo", 3, "no value"),
]


@pytest.mark.parametrize("cmd, value, reason", BAD)
def test_a_bad_exploration_command_is_refused_with_a_reason(cmd, value, reason):
    with pytest.raises(cmds.CommandError, match=None) as e:
        cmds.validate({"id": "x", "cmd": cmd, "value": value})
    assert reason in str(e.value), str(e.value)


def test_good_values_are_normalized():
    assert cmds.validate({"id": "x", "cmd": "find_lr", "value": {}}).value == {"steps": 100, "min": 1e-6, "max": 1.0}
    fork = cmds.validate({"id": "x", "cmd": "fork", "value": {"candidates": [{"lr": "0.01", "batch_size": 32}],
                                                               "steps": "200"}}).value
    assert fork == {"candidates": [{"lr": 0.01, "batch_size": 32}], "steps": 200, "pick": "ask"}
    assert cmds.validate({"id": "x", "cmd": "undo"}).value is None


def test_bad_exploration_commands_leave_training_undisturbed(start_trainer):
    t = start_trainer(epochs=40, pace=0.05, optimizer="sgd", lr=0.01)
    run = t.run
    wait_for(lambda: run.read_metrics(), run.path, what="a first epoch")
    step = t.trainer.steering.step
    for cmd, value, reason in BAD[:1] + BAD[5:6] + BAD[11:12]:
        answer = t.send(cmd, value)
        assert answer["event"] == "rejected" and reason in answer["reason"]
    assert NOTHING_TO_UNDO == t.send("undo")["reason"]
    no_beta = t.send("fork", {"candidates": [{"beta": 0.9}], "steps": 3})
    assert no_beta["event"] == "rejected" and "has no beta" in no_beta["reason"]
    assert run.read_status()["state"] == "running" and t.trainer.hp.lr == pytest.approx(0.01)
    wait_for(lambda: [r for r in run.read_metrics() if r["step"] > step + 50], run.path, what="training goes on")
    assert not (run.path / "forks.jsonl").exists() and not (run.path / "lr_finder.jsonl").exists()
    t.send("stop")
    assert t.join() == "finished"
