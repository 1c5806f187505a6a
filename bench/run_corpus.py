"""A lived-in run directory, made up front: N finished runs of realistic size, some of them sweep trials.

One template run is written through the trainer's own writers (:class:`~trainer.contract.rundir.RunDir`,
:class:`~trainer.search.sweepdir.SweepDir`): ``epochs`` epoch records, a mini-batch loss per step,
a checkpoint's ``meta.json`` every 5 epochs, a journal with a few applied commands, a finished
status. Every run is a copy with its own name and creation time, so 2,000 runs take seconds.
A tenth of the runs are trials of sweeps (``--sweep-size`` each) with ``sweep.json`` and ``trials.jsonl``.

    python -m bench.run_corpus /tmp/runs --runs 500
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path


from trainer.contract.rundir import RunDir, append_jsonl, atomic_write_json  # noqa: E402
from trainer.search.sweepdir import SweepDir  # noqa: E402

HPARAMS = {"optimizer": "adam", "lr": 0.003, "beta": 0.9, "beta2": 0.999, "epsilon": 1e-7, "batch_size": 64,
           "decay": "none", "decay_rate": 0.0, "layers": 2, "units": 64, "batch_norm": True, "dropout": 0.0}
STEPS_PER_EPOCH = 23  # digits' 1,437 training examples at batch size 64


def _template(path: Path, epochs: int) -> RunDir:
    run = RunDir(path).create()
    t0 = time.time() - 86_400
    run.write_config({"name": path.name, "created": t0, "hparams": HPARAMS, "epochs": epochs, "seed": 0, "pace": 0.0,
                      "checkpoint_every": 5, "argv": [], "devices": ["CPU:0"], "versions": {"tensorflow": "2.x"},
                      "dataset": {"name": "digits", "n_train": 1437, "n_val": 360, "n_features": 64,
                                  "n_classes": 10, "source": "scikit-learn"}})
    run.append_event("started", epoch=0, step=0, pid=1, resumed_from=None, hparams=HPARAMS)
    lr = HPARAMS["lr"]
    for epoch in range(1, epochs + 1):
        step0 = (epoch - 1) * STEPS_PER_EPOCH
        append_jsonl(run.batches_path, *[
            {"epoch": epoch, "step": s, "branch": 0, "loss": 2.3 * math.exp(-s / 200) + 0.05 * ((s * 7) % 5) / 5}
            for s in range(step0 + 1, step0 + STEPS_PER_EPOCH + 1)], sync=False)
        loss = 2.3 * math.exp(-epoch / 8) + 0.05
        append_jsonl(run.metrics_path, {
            "epoch": epoch, "branch": 0, "step": epoch * STEPS_PER_EPOCH, "lr": lr, "beta": 0.9, "batch_size": 64,
            "loss": loss, "accuracy": 1 - loss / 2.5, "val_loss": loss * 1.1, "val_accuracy": 1 - loss / 2.4,
            "grad_norm": 1.0 / epoch, "epoch_seconds": 0.2, "samples_per_second": 7000.0, "time": t0 + epoch}, sync=False)
        if epoch == epochs // 2:
            lr /= 2
            run.append_event("applied", epoch=epoch, step=epoch * STEPS_PER_EPOCH, command="scale_lr", value=0.5,
                             hparams={**HPARAMS, "lr": lr}, source="bench")
        if epoch % 5 == 0:
            ckpt = run.checkpoints_path / f"ckpt-{epoch // 5:05d}"
            ckpt.mkdir()
            atomic_write_json(ckpt / "meta.json", {"seq": epoch // 5, "epoch": epoch, "step": epoch * STEPS_PER_EPOCH,
                                                   "branch": 0, "hparams": HPARAMS, "reason": "periodic"})
            run.append_event("checkpoint", epoch=epoch, step=epoch * STEPS_PER_EPOCH, seq=epoch // 5)
    run.append_event("finished", epoch=epochs, step=epochs * STEPS_PER_EPOCH)
    run.write_status({"name": path.name, "state": "finished", "epoch": epochs, "epochs": epochs,
                      "step": epochs * STEPS_PER_EPOCH, "branch": 0, "pid": 1, "host": socket.gethostname(),
                      "heartbeat": t0 + epochs, "started": t0, "hparams": {**HPARAMS, "lr": lr}, "message": None,
                      "checkpoint": None})
    return run


def _copy(template: RunDir, path: Path, name: str, created: float, lr: float | None = None) -> None:
    shutil.copytree(template.path, path)
    config = json.loads((path / "config.json").read_text())
    config.update(name=name, created=created)
    if lr is not None:
        config["hparams"] = {**config["hparams"], "lr": lr}
    (path / "config.json").write_text(json.dumps(config))  # bench data: no fsync needed (2,000 runs in seconds)
    status = json.loads((path / "status.json").read_text())
    (path / "status.json").write_text(json.dumps({**status, "name": name}))


def make_sweep(root: Path, template: RunDir, name: str, trials: int, created: float) -> None:
    """A finished random-search sweep of ``trials`` copies of the template (lr spread on a log scale)."""
    sweep = SweepDir(root / name).create()
    space = {"lr": {"scale": "log", "min": 1e-4, "max": 1.0}}
    sweep.write_spec({"name": name, "seed": 0, "sampler": "random", "space": space, "param_order": ["lr"],
                      "settings": {"trials": trials, "epochs": 0}, "state": "finished",
                      "rounds": [{"round": 1, "space": space, "around": []}]})
    for i in range(1, trials + 1):
        trial = f"trial-{i:04d}"
        lr = 10 ** (-4 + 4 * i / (trials + 1))
        sweep.append_trial({"trial": trial, "round": 1, "state": "queued", "params": {"lr": lr}})
        _copy(template, sweep.path / trial, trial, created + i, lr=lr)
        sweep.append_trial({"trial": trial, "state": "finished", "best_val_accuracy": 0.9 - abs(math.log10(lr) + 2) / 10,
                            "best_epoch": 1, "epochs": 1})


def make_corpus(root: Path, runs: int, *, epochs: int = 60, sweep_size: int = 25) -> dict:
    """``runs`` finished runs under ``root`` (a tenth of them in sweeps of ``sweep_size`` trials)."""
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="panda-template-"))  # outside root: never listed
    template = _template(work / "template", epochs)
    size = sum(f.stat().st_size for f in template.path.rglob("*") if f.is_file())
    in_sweeps = (runs // 10) // sweep_size * sweep_size if runs >= 10 * sweep_size else 0
    t = time.time() - 3600
    for s in range(in_sweeps // sweep_size):
        make_sweep(root, template, f"sweep-{s:03d}", sweep_size, t + s * 100)
    for i in range(runs - in_sweeps):
        _copy(template, root / f"run-{i:04d}", f"run-{i:04d}", t + i)
    shutil.rmtree(work)
    return {"runs": runs, "sweeps": in_sweeps // sweep_size, "trials": in_sweeps, "bytes_per_run": size}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=60)
    args = parser.parse_args()
    t0 = time.time()
    made = make_corpus(args.root, args.runs, epochs=args.epochs)
    print(f"{made['runs']} runs ({made['trials']} in {made['sweeps']} sweeps, {made['bytes_per_run'] / 1024:.0f} KiB "
          f"each) in {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
