"""The lookahead autopilot on real digits runs: it rescues a start 100× too low, recovers from a divergence by
itself, records every decision as the contract says, counts its compute, and obeys a veto."""

from __future__ import annotations

import json

import pytest

from conftest import TrainerThread, stop_leftovers, wait_for
from trainer.cli import build_parser, format_status
from trainer.contract.event_records import AUTOPILOT_ACTIONS, AUTOPILOT_TRIGGERS
from trainer.contract.file_records import ForkRecord
from trainer.contract.hparams import Hyperparameters
from trainer.contract.rundir import current_line
from trainer.steering.durability import recorded_explore_steps
from trainer.training.loop import TrainConfig, Trainer

#: The autopilot_stage event's fields (docs/run-directory.md), besides time/event/epoch/step.
STAGE_FIELDS = {"stage", "trigger", "action", "from_lr", "to_lr", "candidates", "chosen", "explore_steps", "horizon",
                "record", "command_id"}
CANDIDATE_FIELDS = {"lr", "predicted_loss", "final_loss", "val_loss", "steps"}


def train(path, lr, epochs, autopilot, optimizer="adam", **more):
    config = TrainConfig(hparams=Hyperparameters(optimizer=optimizer, lr=lr), epochs=epochs, seed=0, internals=False,
                         autopilot=autopilot, **more)
    trainer = Trainer.create(path, config, verbose=False)
    assert trainer.run() == "finished"
    return trainer.rundir


def stages_of(run) -> list[dict]:
    return [e for e in run.read_events() if e.get("event") == "autopilot_stage"]


def check_stage_records(run) -> list[dict]:
    """Every decision as the contract says: fields, candidates, its set_lr applied, its curves recorded."""
    stages = stages_of(run)
    events = run.read_events()
    forks = [json.loads(line) for line in (run.path / "forks.jsonl").read_text().splitlines()] \
        if (run.path / "forks.jsonl").exists() else []
    for number, stage in enumerate(stages, 1):
        assert STAGE_FIELDS <= set(stage) and stage["stage"] == number
        assert stage["trigger"] in AUTOPILOT_TRIGGERS and stage["action"] in AUTOPILOT_ACTIONS
        assert stage["explore_steps"] > 0 and stage["horizon"] >= 50
        if stage["command_id"] is not None:
            applied = next(e for e in events if e.get("command_id") == stage["command_id"])
            assert (applied["event"], applied["cmd"], applied["hparams"]["lr"]) == ("applied", "set_lr", stage["to_lr"])
            assert [c for c in run.read_commands() if c["id"] == stage["command_id"]][0]["source"] == "autopilot"
        else:
            assert stage["to_lr"] == stage["from_lr"]
        if stage["action"] == "find_lr":
            assert stage["candidates"] == [] and stage["chosen"] is None and stage["record"] == "lr_finder.jsonl"
            continue
        assert stage["record"] == "forks.jsonl" and stage["candidates"][0]["lr"] == stage["from_lr"]
        assert all(set(c) == CANDIDATE_FIELDS for c in stage["candidates"])
        chosen = stage["chosen"]
        assert stage["to_lr"] == stage["candidates"][chosen]["lr"]
        record = next(f for f in forks if f.get("autopilot_stage") == number)
        typed = ForkRecord.from_json(record)
        assert typed.pick == "autopilot" and typed.best == chosen
        assert [c.predicted_loss for c in typed.candidates] == [c["predicted_loss"] for c in stage["candidates"]]
        assert all(set(c["fit"]) == {"a", "b", "c"} for c in record["candidates"])
        assert sum(c.steps for c in typed.candidates) == stage["explore_steps"]
    return stages


def test_a_start_100x_too_low_reaches_90_percent_with_the_autopilot_and_not_without(tmp_path):
    epochs = 10
    plain = current_line(train(tmp_path / "plain", 1e-5, epochs, autopilot=False).read_metrics())
    run = train(tmp_path / "auto", 1e-5, epochs, autopilot=True)
    auto = current_line(run.read_metrics())
    assert max(r["val_accuracy"] for r in plain) < 0.9, "the plain run must not get there by itself"
    assert max(r["val_accuracy"] for r in auto) >= 0.9, [round(r["val_accuracy"], 3) for r in auto]

    stages = check_stage_records(run)
    assert stages[0]["trigger"] == "not learning" and stages[0]["action"] == "find_lr"
    assert stages[0]["to_lr"] > 10 * stages[0]["from_lr"]
    assert any(s["action"] == "fork" for s in stages)
    assert all(s["epoch"] < epochs for s in stages), "no side-track compute after the last epoch"
    assert not [e for e in run.read_events() if e.get("event") in ("paused", "diverged")]
    status = run.status()
    assert status.explore_steps == sum(s["explore_steps"] for s in stages) == recorded_explore_steps(run.path)
    assert 0 < status.explore_steps / (status.step + status.explore_steps) < 0.5
    share = round(100 * status.explore_steps / (status.step + status.explore_steps))
    assert f"explored {status.explore_steps} side-track steps (fork, find_lr): {share}% of all steps" \
        in format_status(run)


def test_the_flags_choose_the_method_and_lookahead_is_the_default():
    args = build_parser().parse_args(["train", "--autopilot"])
    assert (args.autopilot, args.autopilot_method) == (True, "lookahead")
    args = build_parser().parse_args(["train", "--autopilot", "--autopilot-method", "rules"])
    assert TrainConfig.from_args(args).autopilot_method == "rules"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--autopilot-method", "sometimes"])
    # a config.json written before the option ran the rules; --resume keeps them
    assert TrainConfig.from_dict({"created": 1.0, "autopilot": True}).autopilot_method == "rules"


def test_the_rules_method_is_todays_autopilot_and_runs_no_stage(tmp_path):
    run = train(tmp_path / "rules", 1e-5, 5, autopilot=True, autopilot_method="rules")
    applied = [e for e in run.read_events() if e.get("event") == "advice" and e.get("autopilot")]
    assert applied and applied[0]["kind"] == "not learning"
    assert stages_of(run) == [] and run.status().explore_steps == 0
    assert json.loads((run.path / "config.json").read_text())["autopilot_method"] == "rules"


def test_a_divergence_under_the_autopilot_lowers_alpha_and_goes_on_by_itself(tmp_path):
    run = train(tmp_path / "diverge", 10.0, 6, autopilot=True)
    events = run.read_events()
    diverged = [e for e in events if e.get("event") == "diverged"]
    assert diverged and all(e["autopilot"] is True for e in diverged)
    assert not [e for e in events if e.get("event") == "paused"], "no pause for a person"
    recovered = [s for s in check_stage_records(run) if s["trigger"] == "diverged"]
    assert recovered and all(s["action"] == "find_lr" and s["to_lr"] < s["from_lr"] for s in recovered)
    assert run.status().state == "finished" and run.status().ending == "completed"
    line = current_line(run.read_metrics())
    assert len(line) == 6 and line[-1]["lr"] < 10.0 and line[-1]["val_accuracy"] > 0.5


@pytest.fixture
def threads():
    started: list[TrainerThread] = []
    yield started
    stop_leftovers(started)


def test_a_veto_puts_back_the_latest_stages_alpha_and_a_resume_remembers_the_stages(tmp_path, threads):
    config = TrainConfig(hparams=Hyperparameters(optimizer="adam", lr=1e-5), epochs=200, seed=0, internals=False,
                         autopilot=True, pace=0.05)
    t = TrainerThread(Trainer.create(tmp_path / "veto", config, verbose=False)).start()
    threads.append(t)
    run = t.run
    wait_for(lambda: len(stages_of(run)) >= 2, run.path, timeout=120, what="two autopilot stages")
    assert t.send("pause")["event"] == "applied"
    stages = stages_of(run)
    latest = stages[-1]

    older = t.send("veto", latest["stage"] - 1)
    assert older["event"] == "rejected" and "only the latest autopilot stage" in older["reason"]
    assert t.send("veto", latest["stage"] + 5)["event"] == "rejected"
    vetoed = t.send("veto", latest["stage"])
    assert vetoed["event"] == "applied" and vetoed["hparams"]["lr"] == latest["from_lr"]
    journaled = [e for e in run.read_events() if e.get("event") == "autopilot_vetoed"]
    assert journaled == [{**journaled[0], "stage": latest["stage"], "lr": latest["from_lr"],
                          "command_id": vetoed["command_id"]}]
    again = t.send("veto", latest["stage"])
    assert again["event"] == "rejected" and "already vetoed" in again["reason"]
    undone = t.send("undo")
    assert undone["event"] == "applied" and undone["hparams"]["lr"] == latest["to_lr"], "undo still works"

    spent = run.status().explore_steps
    assert spent == sum(s["explore_steps"] for s in stages)
    t.send("stop")
    assert t.join() == "finished"

    resumed = Trainer.resume(run.path, verbose=False, epochs=run.status().epoch + 7)
    planner = resumed.autopilot.planner
    assert planner.next_stage == latest["stage"] + 1 and planner.vetoed == {latest["stage"]}
    assert resumed.steering.explore_steps == spent
    assert resumed.run() == "finished"
    after = check_stage_records(run)
    assert [s["stage"] for s in after] == list(range(1, len(after) + 1)) and len(after) > len(stages)
    assert run.status().explore_steps == sum(s["explore_steps"] for s in after)
