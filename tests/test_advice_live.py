"""Advice from a real trainer's epoch ends, and on the page with its one-click action."""

from __future__ import annotations

import pytest

from conftest_app import make_run, write_status
from test_app_page import open_app  # noqa: F401  (the fixture)
from trainer.steering.advice import latest_advice
from trainer.contract.hparams import Hyperparameters
from trainer.training.loop import TrainConfig, Trainer
from trainer.contract.rundir import RunDir

pytestmark = pytest.mark.timeout(180)


def stuck_run(path, **options) -> RunDir:
    """Adam at α = 1e-5 on digits: the loss stays above ln 10 and the accuracy at chance."""
    config = TrainConfig(hparams=Hyperparameters(optimizer="adam", lr=1e-5), internals=False, **options)
    trainer = Trainer.create(path, config, verbose=False)
    assert trainer.run() == "finished"
    return trainer.rundir


def test_a_run_stuck_at_chance_journals_not_learning_once(tmp_path):
    run = stuck_run(tmp_path / "stuck", epochs=5)
    advice = [e for e in run.read_events() if e["event"] == "advice"]
    assert len(advice) == 1, advice  # epochs 3, 4 and 5 are all stuck: journaled once, until it clears
    event = advice[0]
    assert (event["kind"], event["cmd"], event["value"], event["epoch"]) == ("not learning", "scale_lr", 10.0, 3)
    assert event["autopilot"] is False and event["autopilot_command"] is None
    assert "ln(10)" in event["reason"] and "find_lr" in event["reason"]  # the finder exists: it is named
    assert all(r["lr"] == 1e-5 for r in run.read_metrics())  # advice alone changes nothing
    assert latest_advice(run.read_events())["kind"] == "not learning"


def test_latest_advice_goes_stale_once_the_run_is_steered():
    advice = {"event": "advice", "kind": "plateau", "cmd": "scale_lr", "value": 0.1}
    assert latest_advice([advice]) is advice
    assert latest_advice([advice, {"event": "applied", "cmd": "pause"}]) is advice
    assert latest_advice([advice, {"event": "applied", "cmd": "scale_lr", "value": 0.5}]) is None
    assert latest_advice([advice, {"event": "rewound"}]) is None
    assert latest_advice([]) is None


def test_the_page_shows_the_advice_and_its_action_goes_through_the_steerer(tmp_path, open_app):
    run = make_run(tmp_path, "demo", epochs_done=6, hparams={"lr": 0.004})
    run.append_event("advice", epoch=6, step=120, kind="bouncing", reason="bouncing: the training loss went up 2 "
                     "times in the last 5 epochs; halve α", cmd="scale_lr", value=0.5, autopilot=False,
                     autopilot_command=None)
    write_status(run, state="running", epoch=6, hparams={"lr": 0.004})
    at = open_app(query={"run": "demo"})
    assert any("Advice at epoch 6" in w.value and "went up 2 times" in w.value for w in at.warning)
    button = next(b for b in at.button if b.label.startswith("Apply:"))
    assert button.label == "Apply: learning rate ×0.5 → 0.002"
    button.click().run()
    assert not at.exception, at.exception
    command = run.read_commands()[-1]
    assert (command["cmd"], command["value"], command["source"]) == ("scale_lr", 0.5, "dashboard")


def test_a_viewer_cannot_apply_advice(tmp_path, open_app):
    run = make_run(tmp_path, "demo", epochs_done=6)
    run.append_event("advice", epoch=6, step=120, kind="plateau", reason="plateau: flat", cmd="scale_lr", value=0.1,
                     autopilot=False, autopilot_command=None)
    write_status(run, state="running", epoch=6)
    at = open_app(token="s3cret", query={"run": "demo", "presenter": "1"})  # the full page, not the projector
    button = next(b for b in at.button if b.label.startswith("Apply:"))
    assert button.disabled
    assert run.read_commands() == []


def test_the_autopilot_applies_advice_as_a_command_from_autopilot(tmp_path):
    run = stuck_run(tmp_path / "auto", epochs=4, autopilot=True, autopilot_method="rules")
    events = run.read_events()
    advice = next(e for e in events if e["event"] == "advice")
    assert advice["autopilot"] is True and advice["kind"] == "not learning"
    command = next(c for c in run.read_commands() if c["id"] == advice["autopilot_command"])
    assert (command["cmd"], command["value"], command["source"]) == ("scale_lr", 10.0, "autopilot")
    applied = run.answer_to(command["id"])
    assert applied["event"] == "applied" and applied["hparams"]["lr"] == pytest.approx(1e-4)
    assert applied["step"] == advice["step"]  # before the next training step
    assert [r["lr"] for r in run.read_metrics()] == pytest.approx([1e-5] * 3 + [1e-4])


def test_set_autopilot_turns_it_on_mid_run_and_the_flag_parses(tmp_path, start_trainer):
    from trainer.cli import build_parser

    t = start_trainer("live", epochs=200, pace=0.05, optimizer="adam", lr=1e-5)
    answer = t.send("set_autopilot", "on")
    assert answer["event"] == "applied" and answer["autopilot"] is True
    assert t.send("set_autopilot", "maybe")["reason"].startswith("expected true or false")
    assert t.trainer.advising.autopilot is True
    assert t.send("stop")["event"] == "applied"
    t.join()
    args = build_parser().parse_args(["train", "--autopilot"])
    assert args.autopilot is True


def test_the_page_toggle_sends_set_autopilot(tmp_path, open_app):
    run = make_run(tmp_path, "demo", epochs_done=6)
    write_status(run, state="running", epoch=6)
    at = open_app(query={"run": "demo"})
    button = at.sidebar.button(key="autopilot")
    assert button.label == "Autopilot is off: turn it on"
    button.click().run()
    command = run.read_commands()[-1]
    assert (command["cmd"], command["value"]) == ("set_autopilot", True)
    run.append_event("applied", epoch=6, step=120, command_id=command["id"], cmd="set_autopilot", value=True,
                     autopilot=True)
    at.run()
    assert at.sidebar.button(key="autopilot").label == "Autopilot is on: turn it off"
