"""Helpers for the dashboard's tests: synthetic run directories written through the contract
(:class:`trainer.contract.rundir.RunDir`), waiting for a condition without sleeping blindly, and the live
parts the browser tests share (``panda app`` on a free port, a launched trainer stopped)."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from trainer.contract.rundir import RunDir, append_jsonl

HPARAMS = {"optimizer": "adam", "lr": 0.003, "beta": 0.9, "beta2": 0.999, "epsilon": 1e-7, "batch_size": 64,
           "decay": "none", "decay_rate": 0.0, "layers": 2, "units": 64, "batch_norm": True, "dropout": 0.0}


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes; returns its last answer."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return bool(value)
        pause.wait(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served_app(root: Path, token: str | None = None):
    """``panda app`` serving ``root`` on a free port (a viewer's page unless ``token``); yields its URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PANDA_TOKEN"}
    if token is not None:
        env["PANDA_TOKEN"] = token
    process = subprocess.Popen([sys.executable, "-m", "app.serving.panda_cli", "app", "--run-dir", str(root), "--port", str(port)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=root)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        interrupt(process)


def interrupt(process: subprocess.Popen) -> None:
    """Ctrl-C for a server process; killed if it has not ended within 15 s."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def stop_launched(run: RunDir, launch) -> None:
    """Ask a trainer started with :func:`app.serving.launch.start_run` to stop; kill it if it has not within 20 s."""
    if launch.process.poll() is not None:
        return
    if run.exists():
        run.send_command("stop", source="test")
    try:
        launch.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(launch.pid, signal.SIGKILL)
        launch.process.wait()


def epoch_record(epoch: int, *, steps_per_epoch: int = 20, branch: int = 0, lr: float = 0.003, t0: float | None = None) -> dict:
    loss = 2.3 * math.exp(-epoch / 8) + 0.05
    return {
        "epoch": epoch, "branch": branch, "step": epoch * steps_per_epoch, "lr": lr, "beta": 0.9, "batch_size": 64,
        "loss": loss, "accuracy": 1 - loss / 2.5, "val_loss": loss * 1.1, "val_accuracy": 1 - loss / 2.4,
        "grad_norm": 1.0 / epoch, "epoch_seconds": 0.2, "samples_per_second": 7000.0,
        "time": (t0 or time.time()) + epoch * 0.5,
    }


def batch_records(epoch: int, *, steps_per_epoch: int = 20, every: int = 4, branch: int = 0) -> list[dict]:
    start = (epoch - 1) * steps_per_epoch
    return [{"epoch": epoch, "step": s, "loss": 2.3 * math.exp(-s / (8 * steps_per_epoch)) + 0.1 * ((s * 7) % 5) / 5,
             "branch": branch} for s in range(start + 1, start + steps_per_epoch + 1, every)]


def make_run(root: Path, name: str = "demo", *, epochs_done: int = 10, epochs: int = 30, state: str = "running",
             hparams: dict | None = None, heartbeat: float | None = None, pid: int | None = None) -> RunDir:
    """A run directory as a trainer would leave it after ``epochs_done`` epochs."""
    hp = {**HPARAMS, **(hparams or {})}
    run = RunDir(Path(root) / name).create()
    run.write_config({"name": name, "created": time.time(), "hparams": hp, "epochs": epochs, "seed": 0, "pace": 0.5,
                      "checkpoint_every": 5, "argv": [], "devices": ["CPU:0"], "versions": {"tensorflow": "2.x"},
                      "dataset": {"name": "digits", "n_train": 1437, "n_val": 360, "n_features": 64, "n_classes": 10,
                                  "source": "synthetic"}})
    run.append_event("started", epoch=0, step=0, pid=pid or os.getpid(), resumed_from=None, hparams=hp)
    t0 = time.time() - epochs_done * 0.5
    for epoch in range(1, epochs_done + 1):
        append_jsonl(run.batches_path, *batch_records(epoch))
        append_jsonl(run.metrics_path, epoch_record(epoch, lr=hp["lr"], t0=t0))
    write_status(run, state=state, epoch=epochs_done, epochs=epochs, hparams=hp, heartbeat=heartbeat, pid=pid)
    return run


def write_status(run: RunDir, *, state: str, epoch: int, epochs: int = 30, hparams: dict | None = None,
                 heartbeat: float | None = None, pid: int | None = None, message: str | None = None,
                 ending: str | None = None) -> None:
    metrics = run.read_metrics()
    run.write_status({
        "name": run.name, "state": state, "epoch": epoch, "epochs": epochs, "step": epoch * 20, "branch": 0,
        "pid": pid or os.getpid(), "host": socket.gethostname(), "heartbeat": heartbeat or time.time(),
        "started": time.time() - 10, "hparams": {**HPARAMS, **(hparams or {})},
        "last": metrics[-1] if metrics else None, "message": message, "checkpoint": None, "ending": ending,
    })


def capture_spawns(monkeypatch) -> list:
    """Replace the page's process spawn with a recorder: each command line a launch would run, no process."""
    from app.serving import launch

    started: list = []

    class Process:
        pid = 4242

        def poll(self):
            return None

    monkeypatch.setattr(launch, "_spawn", lambda command, log_path: started.append(command) or Process())
    return started
