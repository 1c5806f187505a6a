"""A long fork or find_lr never holds a run hostage: a stop or a stop signal abandons it within a second.

Each test starts the biggest exploration a client may ask for (8 candidates x 5,000 steps, or a
5,000-step finder) on a real run, and measures on the journal's own timestamps: the exploration is
rejected ``interrupted`` less than a second after the stop was written (or the signal sent), the
exact state is put back, commands sent meanwhile are answered after it in order, and
``status.json`` shows what ran and how far it got while it ran.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import streamlit as st
import tensorflow as tf
from streamlit.testing.v1 import AppTest

from conftest import answer, wait_for
from conftest_app import make_run
from test_callback import digits_images, fits, small_cnn  # noqa: F401  (fixtures)
from trainer.training.exploration import FORKS, LR_FINDER, Explorer
from trainer.contract.records import Status
from trainer.contract.rundir import RunDir

PANDA = [sys.executable, "-m", "trainer"]
#: A client's largest fork: about a minute of steps on digits, far longer than any assertion waits.
BIG_FORK = {"candidates": [{"lr": 0.01}, {"lr": 0.003}, {"lr": 0.001}, {"beta": 0.5},
                           {"lr": 0.02}, {"lr": 0.005}, {"batch_size": 32}, {"lr": 0.0005}], "steps": 5000}
#: The documented bound on how long a stop may wait for an exploration.
WITHIN_SECONDS = 1.0


def state_of(trainer, leave_out=()) -> list[tuple[str, bytes]]:
    """Every variable an exploration touches (weights, slots, data order and position), by name, as bytes."""
    return [(getattr(v, "path", None) or v.name, np.array(v.numpy(), copy=True).tobytes())
            for v in Explorer(trainer).variables() if v is not None and all(v is not x for x in leave_out)]


def exploring(run: RunDir, command_id: str, beyond: int = 0) -> dict:
    """The status once it shows exploration ``command_id`` past ``beyond`` steps (checked through the typed reader)."""
    def shown():
        activity = Status.from_json(run.read_status()).activity or {}
        return activity if activity.get("command_id") == command_id and activity.get("done", 0) > beyond else None
    return wait_for(shown, run.path, what=f"status.json showing {command_id} past step {beyond}")


def command_time(run: RunDir, command_id: str) -> float:
    """When the client wrote ``command_id`` (its line's ``time``)."""
    lines = [json.loads(line) for line in run.commands_path.read_text().splitlines()]
    return next(c["time"] for c in lines if c.get("id") == command_id)


def position(run: RunDir, command_id: str) -> int:
    return next(i for i, e in enumerate(run.read_events()) if e.get("command_id") == command_id
                and e["event"] in ("applied", "rejected"))


def test_a_stop_abandons_a_big_fork_within_a_second_and_puts_the_state_back(start_trainer):
    t = start_trainer(epochs=1000, pace=0.05, lr=0.003, batch_size=64)
    run, trainer = t.run, t.trainer
    wait_for(lambda: run.read_metrics(), run.path, what="a first epoch")
    assert t.send("pause")["event"] == "applied"
    before, step = state_of(trainer, leave_out=[trainer.knobs.lr]), trainer.steering.step

    fork = run.send_command("fork", BIG_FORK, source="test")
    first = exploring(run, fork)
    assert first["kind"] == "fork" and first["total"] == 8 * 5000 and first["candidates"] == 8
    later = exploring(run, fork, beyond=first["done"])
    assert later["done"] > first["done"], "status.json follows the fork's progress"
    assert run.read_status()["state"] == "paused" and run.read_status()["step"] == step, "the run's own step, not the fork's"

    set_lr = run.send_command("set_lr", 0.0123, source="test")  # waits for the fork
    stop = run.send_command("stop", source="test")
    rejected = answer(run, fork)
    assert rejected["event"] == "rejected" and rejected["reason"].startswith("interrupted by a stop command"), rejected
    waited = rejected["time"] - command_time(run, stop)
    assert 0 <= waited < WITHIN_SECONDS, f"the stop waited {waited:.2f}s for the fork"
    assert t.join() == "finished"

    assert answer(run, set_lr)["event"] == "applied" and answer(run, stop)["event"] == "applied"
    assert position(run, fork) < position(run, set_lr) < position(run, stop), "answered in order, the fork first"
    assert answer(run, set_lr)["received_time"] < rejected["time"], "the set_lr arrived during the fork"
    assert run.read_events()[-1]["reason"] == "stopped"
    assert state_of(trainer, leave_out=[trainer.knobs.lr]) == before, "every variable is bit for bit as before the fork"
    saved = [e for e in run.read_events() if e["event"] == "checkpoint_saved" and e["reason"] == "stop"]
    assert len(saved) == 1 and saved[0]["step"] == step
    assert not (run.path / FORKS).exists() and not any(e["event"] == "fork_result" for e in run.read_events())
    assert run.read_status()["activity"] is None


def test_a_fork_that_completes_answers_what_arrived_meanwhile_after_it(start_trainer):
    t = start_trainer(epochs=1000, pace=0.05, lr=0.003, batch_size=64)
    run = t.run
    wait_for(lambda: run.read_metrics(), run.path, what="a first epoch")
    fork = run.send_command("fork", {"candidates": [{"lr": 0.001}, {"lr": 0.01}], "steps": 1500, "pick": "best"},
                            source="test")
    exploring(run, fork)
    set_lr = run.send_command("set_lr", 0.0042, source="test")
    applied = answer(run, set_lr)
    assert answer(run, fork)["event"] == "applied"
    assert applied["event"] == "applied" and position(run, fork) < position(run, set_lr)
    result = next(e for e in run.read_events() if e["event"] == "fork_result")
    assert applied["received_time"] < result["time"], "the set_lr arrived during the fork"
    assert applied["hparams"]["lr"] == 0.0042, "applied after the fork's pick, so it is the one in force"
    assert t.send("stop")["event"] == "applied"
    assert t.join() == "finished"


def test_a_stop_abandons_a_long_find_lr(start_trainer):
    t = start_trainer(epochs=1000, pace=0.05, lr=0.003)
    run, trainer = t.run, t.trainer
    wait_for(lambda: run.read_metrics(), run.path, what="a first epoch")
    assert t.send("pause")["event"] == "applied"
    before = state_of(trainer)
    # a ramp too low to blow the loss up: it would run all 5,000 steps
    found = run.send_command("find_lr", {"steps": 5000, "min": 1e-7, "max": 1e-6}, source="test")
    shown = exploring(run, found, beyond=10)
    assert shown["kind"] == "find_lr" and shown["total"] == 5000
    stop = run.send_command("stop", source="test")
    rejected = answer(run, found)
    assert rejected["event"] == "rejected" and rejected["reason"].startswith("interrupted"), rejected
    assert rejected["time"] - command_time(run, stop) < WITHIN_SECONDS
    assert t.join() == "finished"
    assert state_of(trainer) == before
    assert float(trainer.optimizer.learning_rate.numpy()) == np.float32(0.003), "the ramp's α is not left in force"
    assert not (run.path / LR_FINDER).exists()


def test_a_stop_abandons_a_find_lr_in_a_keras_fit(tmp_path, digits_images, fits):  # noqa: F811
    from trainer import PandaCallback

    model = small_cnn(lr=0.003)
    x, y = digits_images
    # batches of one example: an epoch of ~2,900 batches, so the 5,000-step test would run to its end
    t = fits(model, PandaCallback(tmp_path / "fit"), (np.concatenate([x, x]), np.concatenate([y, y])),
             epochs=1000, batch_size=1)
    run = t.run
    assert t.send("pause")["event"] == "applied"
    before = [np.array(v.numpy(), copy=True).tobytes() for v in [*model.variables, *model.optimizer.variables]]
    found = run.send_command("find_lr", {"steps": 5000, "min": 1e-7, "max": 1e-6}, source="test")
    shown = exploring(run, found, beyond=10)
    assert shown["kind"] == "find_lr" and shown["total"] == 5000
    note = run.send_command("note", "sent during the test", source="test")
    stop = run.send_command("stop", source="test")
    rejected = answer(run, found)
    assert rejected["event"] == "rejected" and rejected["reason"].startswith("interrupted by a stop command"), rejected
    assert rejected["time"] - command_time(run, stop) < WITHIN_SECONDS
    t.join()
    assert position(run, found) < position(run, note) < position(run, stop)
    assert [np.array(v.numpy(), copy=True).tobytes() for v in [*model.variables, *model.optimizer.variables]] == before
    assert not (run.path / LR_FINDER).exists()
    assert run.read_events()[-1]["reason"] == "stopped" and run.read_status()["activity"] is None


def tensors(run: RunDir, checkpoint: str) -> dict[str, bytes]:
    reader = tf.train.load_checkpoint(str(run.checkpoints_path / checkpoint / "ckpt"))
    return {name: reader.get_tensor(name).tobytes() for name in reader.get_variable_to_shape_map()
            if name.startswith(("model/", "optimizer/"))}


def test_sigterm_during_a_fork_of_panda_train_stops_it_within_a_second(tmp_path):
    run = RunDir(tmp_path / "f")
    proc = subprocess.Popen([*PANDA, "train", "--run-dir", str(tmp_path), "--name", "f", "--epochs", "1000",
                             "--pace", "0.05", "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(run.metrics_path.exists, tmp_path, what="the run directory")
        wait_for(lambda: run.read_metrics() or proc.poll() is not None, run.path, what="a first epoch")
        assert answer(run, run.send_command("pause", source="test"))["event"] == "applied"
        before = answer(run, run.send_command("checkpoint", source="test"))["checkpoint"]
        fork = run.send_command("fork", BIG_FORK, source="test")
        exploring(run, fork, beyond=100)
        sent = time.time()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(30)
    rejected = answer(run, fork)
    assert rejected["event"] == "rejected" and rejected["reason"].startswith("interrupted by Ctrl-C or SIGTERM")
    assert rejected["time"] - sent < WITHIN_SECONDS, f"SIGTERM waited {rejected['time'] - sent:.2f}s for the fork"
    events = run.read_events()
    assert events[-1]["event"] == "finished" and events[-1]["reason"] == "interrupted"
    stopped = next(e["checkpoint"] for e in events if e["event"] == "checkpoint_saved" and e["reason"] == "stop")
    assert tensors(run, stopped) == tensors(run, before), "weights and optimizer slots as before the fork"
    assert not (run.path / FORKS).exists()


def test_the_run_page_says_what_a_live_exploration_does(tmp_path, monkeypatch):
    run = make_run(tmp_path, "demo")
    status = run.read_status()
    run.write_status({**status, "heartbeat": time.time(), "activity": {
        "kind": "fork", "command_id": "c-1", "done": 1234, "total": 40000, "candidates": 8, "candidate": 1}})
    monkeypatch.delenv("PANDA_TOKEN", raising=False)
    monkeypatch.setenv("PANDA_RUN_DIR", str(tmp_path))
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app" / "dashboard.py"), default_timeout=30)
    try:
        at.run()
        assert not at.exception, at.exception
        assert any("Running a fork: step 1,234 of 40,000" in c.value for c in at.caption)

        run.write_status({**status, "heartbeat": time.time(), "activity": ["not", "a", "table"]})
        at.run()
        assert not at.exception and not any("Running a" in c.value for c in at.caption), "a wrong type shows nothing"
    finally:
        st.cache_resource.clear()  # closes the store's file watchers
