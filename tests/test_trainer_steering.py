"""Real TensorFlow training on digits, steered through the run directory while it runs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from conftest import event_of, wait_for
from trainer.contract.rundir import append_jsonl, current_line, read_jsonl


def metrics_after(run, step):
    return [r for r in run.read_metrics() if r["step"] > step]


def test_lr_change_reaches_the_optimizer_and_the_records_without_retracing(start_trainer):
    t = start_trainer(epochs=40, pace=0.15, lr=0.01)
    run = t.run
    wait_for(lambda: len(run.read_metrics()) >= 2, run.path, what="two epochs")
    traces = t.trainer.steps.train_steps.experimental_get_tracing_count()

    answer = t.send("set_lr", 0.00123)
    assert answer["event"] == "applied"
    assert answer["step"] - answer["received_step"] <= 1, "applied at the next training step"
    assert answer["hparams"]["lr"] == pytest.approx(0.00123)
    assert float(t.trainer.optimizer.learning_rate.numpy()) == pytest.approx(0.00123)

    beta = t.send("set_beta", 0.8)
    assert beta["event"] == "applied"
    assert float(t.trainer.knobs.beta.numpy()) == pytest.approx(0.8)

    later = wait_for(lambda: metrics_after(run, answer["step"]), run.path, what="an epoch after the change")
    assert later[0]["lr"] == pytest.approx(0.00123)
    assert later[0]["beta"] == pytest.approx(0.8)
    assert t.trainer.steps.train_steps.experimental_get_tracing_count() == traces == 1

    batch = t.send("set_batch_size", 128)
    assert batch["event"] == "applied"
    bigger = wait_for(lambda: [r for r in metrics_after(run, batch["step"]) if r["batch_size"] == 128], run.path,
                      what="an epoch with the new batch size")
    steps = [r["step"] for r in run.read_metrics()]
    assert bigger[-1]["step"] - steps[steps.index(bigger[-1]["step"]) - 1] == math.ceil(1437 / 128)
    assert t.trainer.steps.train_steps.experimental_get_tracing_count() == 1, "a new batch size must not retrace"
    assert t.trainer.steps.step_on_batch.experimental_get_tracing_count() == 1

    assert t.send("scale_lr", 0.5)["hparams"]["lr"] == pytest.approx(0.000615)
    t.send("stop")
    assert t.join() == "finished"


def test_pause_holds_the_step_and_still_obeys_commands(start_trainer):
    t = start_trainer(epochs=200, pace=0.05)
    run = t.run
    wait_for(lambda: run.read_metrics(), run.path, what="a first epoch")
    paused = t.send("pause")
    assert paused["event"] == "applied"
    assert run.read_status()["state"] == "paused", "the status is written before the answer"
    status = wait_for(lambda: (s := run.read_status())["state"] == "paused" and s, run.path, what="paused status")
    beat = status["heartbeat"]
    # two heartbeats later the step has not moved
    later = wait_for(lambda: (s := run.read_status())["heartbeat"] > beat + 1.5 and s, run.path, timeout=10, what="heartbeats")
    assert later["step"] == paused["step"] and later["state"] == "paused"
    assert event_of(run, "paused")["command_id"] == paused["command_id"]

    assert t.send("set_lr", 0.002)["event"] == "applied", "hyperparameters change while paused"
    assert t.send("pause")["event"] == "rejected"
    assert t.send("resume")["event"] == "applied"
    wait_for(lambda: metrics_after(run, paused["step"]), run.path, what="training after resume")
    assert t.send("resume")["event"] == "rejected", "resuming a running run is an error"
    t.send("stop")
    assert t.join() == "finished"


BAD_COMMANDS = [
    ({"cmd": "set_lr", "value": "NaN"}, "finite"),
    ({"cmd": "set_lr", "value": "inf"}, "finite"),
    ({"cmd": "set_lr", "value": 0}, "> 0"),
    ({"cmd": "set_lr", "value": -0.1}, "> 0"),
    ({"cmd": "set_lr", "value": 1e6}, "absurd"),
    ({"cmd": "set_lr", "value": "fast"}, "number"),
    ({"cmd": "set_lr"}, "needs a value"),
    ({"cmd": "scale_lr", "value": 1e9}, "absurd"),
    ({"cmd": "set_beta", "value": 1.0}, "[0, 1)"),
    ({"cmd": "set_beta", "value": -0.5}, "[0, 1)"),
    ({"cmd": "set_batch_size", "value": 0}, "at least 1"),
    ({"cmd": "set_batch_size", "value": 2.5}, "whole number"),
    ({"cmd": "rewind", "value": "ckpt-99999"}, "no checkpoint"),
    ({"cmd": "explode"}, "unknown command"),
    ({"cmd": "pause", "value": 3}, "no value"),
]


def test_every_bad_command_is_rejected_with_a_reason_and_training_goes_on(start_trainer):
    t = start_trainer(epochs=6, pace=0.3)
    run = t.run
    wait_for(lambda: run.read_metrics(), run.path, what="a first epoch")
    ids = []
    with open(run.commands_path, "a") as f:
        f.write("this is not json\n")
        f.write('["a list, not an object"]\n')
        f.write('{"cmd": "pause"}\n')  # no id
    for i, (command, _) in enumerate(BAD_COMMANDS):
        ids.append(f"bad-{i}")
        append_jsonl(run.commands_path, {"id": f"bad-{i}", **command})
    append_jsonl(run.commands_path, {"id": "good", "cmd": "set_lr", "value": 0.001})
    append_jsonl(run.commands_path, {"id": "good", "cmd": "set_lr", "value": 0.002})  # duplicate id

    wait_for(lambda: len([e for e in run.read_events() if e["event"] in ("applied", "rejected")]) >= len(ids) + 5,
             run.path, what="every answer")
    answers = [e for e in run.read_events() if e["event"] in ("applied", "rejected")]
    anonymous = [e for e in answers if e["command_id"] is None]
    assert len(anonymous) == 4 and all(e["event"] == "rejected" and e["reason"] for e in anonymous)
    assert sorted(e["line"] for e in anonymous) == [1, 2, 3, len(ids) + 5]
    for command_id, (command, reason) in zip(ids, BAD_COMMANDS):
        mine = [e for e in answers if e["command_id"] == command_id]
        assert len(mine) == 1, f"{command} answered exactly once"
        assert mine[0]["event"] == "rejected" and reason in mine[0]["reason"], (command, mine[0]["reason"])
    good = [e for e in answers if e["command_id"] == "good"]
    assert [e["event"] for e in good] == ["applied"], "an id is answered exactly once"
    duplicate = anonymous[-1]
    assert duplicate["duplicate_id"] == "good" and "duplicate" in duplicate["reason"]
    assert t.join() == "finished"
    assert [r["epoch"] for r in run.read_metrics()] == [1, 2, 3, 4, 5, 6]


def test_set_beta_is_rejected_for_plain_sgd(start_trainer):
    t = start_trainer(epochs=3, pace=0.2, optimizer="sgd", lr=0.1)
    answer = t.send("set_beta", 0.9)
    assert answer["event"] == "rejected" and "no beta" in answer["reason"]
    assert t.join() == "finished"


def test_divergence_rolls_back_pauses_and_never_reaches_a_checkpoint(start_trainer):
    t = start_trainer(epochs=8, pace=0.1, optimizer="momentum", lr=0.05, beta=0.9)
    run = t.run
    wait_for(lambda: len(run.read_metrics()) >= 2, run.path, what="two good epochs")
    assert t.send("set_lr", 10.0)["event"] == "applied"
    status = wait_for(lambda: (s := run.read_status())["state"] == "diverged" and s, run.path, what="divergence")
    diverged = event_of(run, "diverged")
    assert diverged["reason"] and "loss" in diverged["reason"]
    assert status["message"] and "Lower the learning rate" in status["message"]
    weights = [w.numpy() for w in t.trainer.model.weights]
    assert all(np.isfinite(w).all() for w in weights), "rolled back to finite weights"

    assert t.send("set_lr", 0.02)["event"] == "applied"
    assert t.send("resume")["event"] == "applied"
    assert t.join() == "finished"
    for meta in run.list_checkpoints():
        metrics = meta.get("metrics") or {}
        for key in ("loss", "val_loss"):
            if key in metrics:
                assert metrics[key] is not None and math.isfinite(metrics[key]), meta["name"]
    line = current_line(run.read_metrics())
    assert [r["epoch"] for r in line] == list(range(1, 9))
    assert line[-1]["val_accuracy"] > 0.9, "the run recovered"
    assert line[-1]["branch"] == diverged["branch"] >= 1


def test_checkpoint_and_rewind_branch_the_history(start_trainer):
    t = start_trainer(epochs=8, pace=0.1)
    run = t.run
    wait_for(lambda: len(run.read_metrics()) >= 2, run.path, what="two epochs")
    saved = t.send("checkpoint")
    assert saved["event"] == "applied" and saved["checkpoint"].startswith("ckpt-")
    at_epoch = saved["epoch"]
    wait_for(lambda: len(run.read_metrics()) >= at_epoch + 2, run.path, what="two more epochs")
    rewound = t.send("rewind", saved["checkpoint"])
    assert rewound["event"] == "applied" and rewound["to_epoch"] == at_epoch
    assert t.join() == "finished"
    records = run.read_metrics()
    epochs = [r["epoch"] for r in records]
    assert epochs != sorted(epochs), "the old branch stays in the file"
    after = [r for r in records if r["branch"] == rewound["branch"]]
    assert after[0]["epoch"] == at_epoch + 1
    assert [r["epoch"] for r in current_line(records)] == list(range(1, 9))
    assert event_of(run, "rewound")["checkpoint"] == saved["checkpoint"]


def test_status_json_is_always_whole(start_trainer):
    t = start_trainer(epochs=4, pace=0.2)
    seen = set()

    def read():
        text = t.run.status_path.read_text()
        seen.add(json.loads(text)["state"])  # a torn file would raise here
        return "finished" in seen

    wait_for(read, t.run.path, what="the finished state")
    assert {"running", "finished"} <= seen
    assert t.join() == "finished"


def test_the_xla_step_used_on_gpus_is_steerable_too(start_trainer):
    t = start_trainer(epochs=30, pace=0.1, jit=True)
    run = t.run
    wait_for(lambda: run.read_metrics(), run.path, what="a first epoch")
    answer = t.send("set_lr", 0.0005)
    later = wait_for(lambda: metrics_after(run, answer["step"]), run.path, what="an epoch after the change")
    assert later[0]["lr"] == pytest.approx(0.0005)
    assert float(t.trainer.optimizer.learning_rate.numpy()) == pytest.approx(0.0005)
    assert t.trainer.steps.train_steps.experimental_get_tracing_count() == 1
    t.send("stop")
    assert t.join() == "finished"


def test_a_command_stops_the_epoch_graph_between_two_steps_and_the_epoch_loses_no_step(start_trainer):
    # Batch 1: 1,437 steps an epoch, all inside graph calls of about a quarter of a second. A
    # command must not wait for the call to end: the inbox sets the variable the graph checks
    # between steps. Commands applied mid-epoch (not at an epoch's end) show the graph was cut.
    t = start_trainer(epochs=400, batch_size=1, lr=0.001)
    run = t.run
    per_epoch = 1437
    steering = t.trainer.steering
    answers = []
    for k in range(3):  # each sent while a graph call is well inside an epoch (the live step tells)
        wait_for(lambda: per_epoch < steering.current_step() and 200 < steering.current_step() % per_epoch < 800,
                 run.path, what="a step in the middle of an epoch")
        answers.append(t.send("set_lr", 0.001 * (k + 2)))
    for answer in answers:
        assert answer["event"] == "applied"
        assert answer["step"] - answer["received_step"] <= 1, "applied at the next step"
        assert answer["step"] % per_epoch, "applied in the middle of the epoch: the graph call was cut short"
    t.send("stop")
    assert t.join() == "finished"
    records = [r for r in run.read_metrics() if r.get("epoch", 0) >= 1]
    assert [r["step"] for r in records] == [per_epoch * r["epoch"] for r in records], "every step of every epoch ran"
    first = [b for b in read_jsonl(run.batches_path) if b["epoch"] == 1]  # sampled: the last of every 29 steps
    every = math.ceil(per_epoch / 50)
    assert [b["step"] for b in first] == [min(k + every, per_epoch) for k in range(0, per_epoch, every)]
    assert all(math.isfinite(b["loss"]) for b in first)


def test_a_crash_inside_training_is_journaled_as_failed(start_trainer):
    t = start_trainer(epochs=50, pace=0.1)
    run = t.run
    wait_for(lambda: run.read_metrics(), run.path, what="a first epoch")

    def broken_steps(stop_at, every):  # stands in for an out-of-memory or a data error mid-run
        raise RuntimeError("device lost")

    t.trainer.steps.train_steps = broken_steps
    assert t.join() == "failed"
    failed = wait_for(lambda: [e for e in run.read_events() if e["event"] == "failed"], run.path, what="failed event")
    assert failed[0]["error"] == "RuntimeError: device lost" and "Traceback" in failed[0]["traceback"]
    status = run.read_status()
    assert status["state"] == "failed" and "device lost" in status["message"]
    assert run.liveness() == "failed"


def test_old_epoch_checkpoints_are_pruned_and_the_store_agrees_with_the_disk(start_trainer):
    t = start_trainer(epochs=12, checkpoint_every=4)
    assert t.join() == "finished"
    on_disk = t.run.list_checkpoints()
    kept = [(m["reason"], m["epoch"]) for m in on_disk]
    assert kept == [("initial", 0), ("epoch", 4), ("epoch", 8), ("epoch", 10), ("epoch", 11), ("epoch", 12)]
    assert [m["name"] for m in t.trainer.steering.store.checkpoints] == [m["name"] for m in on_disk]
    assert not [p for p in t.run.checkpoints_path.iterdir() if p.name.startswith(".")], "no half-written leftovers"


def test_records_carry_end_to_end_wall_time_next_to_the_step_rate(start_trainer):
    t = start_trainer(epochs=6)
    assert t.join() == "finished"
    records = t.run.read_metrics()
    assert [r["epoch"] for r in records] == list(range(1, 7))
    for before, record in zip(records, records[1:]):
        # the step rate leaves evaluation and the checkpoint out; the wall time takes them in
        assert record["wall_seconds"] > record["epoch_seconds"] > 0
        assert record["wall_samples_per_second"] == pytest.approx(1437 / record["wall_seconds"])
        assert record["samples_per_second"] > record["wall_samples_per_second"]
        # without pace or pauses, epoch record to epoch record is the wall time (the tiling is exact)
        assert record["wall_seconds"] == pytest.approx(record["time"] - before["time"], abs=0.02)


def test_commands_are_applied_between_evaluation_batches(tmp_path, monkeypatch):
    import trainer.training.loop as loop
    from conftest import TrainerThread
    from trainer.training import steps
    from trainer.contract.hparams import Hyperparameters

    monkeypatch.setattr(steps, "EVAL_BATCH_SIZE", 100)  # digits' 360 validation examples: 4 batches
    trainer = loop.Trainer.create(tmp_path / "r", loop.TrainConfig(hparams=Hyperparameters(), epochs=3), verbose=False)
    original, seen = trainer.steps.eval_step, []

    def eval_step(start):  # during the second epoch's evaluation, a client sends a command
        if trainer.steering.epoch == 1 and int(start) == 0:
            trainer.rundir.send_command("set_lr", 0.0042, command_id="during-eval", source="test")
            assert trainer.steering.inbox.ready.wait(30), "the watcher delivers the line"
        elif trainer.steering.epoch == 1:
            seen.append(float(trainer.knobs.lr.numpy()))
        return original(start)

    trainer.steps.eval_step = eval_step
    t = TrainerThread(trainer).start()
    assert t.join() == "finished"
    assert seen[0] == pytest.approx(0.0042), "applied before the next evaluation batch"
    applied = t.run.answer_to("during-eval")
    assert applied["event"] == "applied" and applied["epoch"] == 1
    assert [r["lr"] for r in t.run.read_metrics()][1:] == [pytest.approx(0.0042)] * 2
