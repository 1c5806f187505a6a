"""Epochs to 95 % validation accuracy: no intervention, the autopilot, and the best fixed α of a sweep.

Three scenarios on digits (fixed seed), each an Adam run started at a learning rate that shows
the pathology: *bouncing* (α = 0.2: the loss oscillates), *plateau* (α = 0.1: the validation
accuracy hovers around 90–94 %), *not learning* (α = 1e-5: loss above ln 10, accuracy at
chance). Each scenario runs ``--epochs`` epochs with no intervention and with ``--autopilot``.
The sweep spends the same compute: ``len(--grid)`` fixed α's of ``epochs / len(grid)`` epochs
each (3 × 10 = 30 epochs by default), the same for every scenario since its start does not
matter to a fixed α. A cell is the first epoch whose validation accuracy is ≥ 95 % ("—": never
within the budget). Trains in this process, CPU, one run at a time.

    python -m bench.advisor [--epochs 30] [--grid 1e-4,1e-3,1e-2] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from trainer.contract.hparams import Hyperparameters  # noqa: E402
from trainer.training.loop import TrainConfig, Trainer  # noqa: E402
from trainer.contract.rundir import current_line  # noqa: E402

SCENARIOS = {"bouncing": 0.2, "plateau": 0.1, "not learning": 1e-5}
TARGET = 0.95


def train(folder: Path, name: str, lr: float, epochs: int, seed: int, autopilot: bool = False):
    config = TrainConfig(hparams=Hyperparameters(optimizer="adam", lr=lr), epochs=epochs, seed=seed,
                         internals=False, autopilot=autopilot)
    trainer = Trainer.create(folder / name, config, verbose=False)
    trainer.run()
    run = trainer.rundir
    line = current_line(run.read_metrics())
    reached = next((r["epoch"] for r in line if (r.get("val_accuracy") or 0) >= TARGET), None)
    actions = [f"e{e['epoch']}:{e['kind']}→{e['cmd']} {e['value'] if e['value'] is not None else ''}".strip()
               for e in run.read_events() if e.get("event") == "advice" and e.get("autopilot")]
    return reached, actions, line[-1]["val_accuracy"] if line else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--grid", default="1e-4,1e-3,1e-2", help="the sweep's fixed learning rates")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    grid = [float(x) for x in args.grid.split(",")]
    per = max(1, args.epochs // len(grid))
    folder = Path(tempfile.mkdtemp(prefix="panda-bench-advisor-"))
    sweep = {lr: train(folder, f"fixed-{lr:g}", lr, per, args.seed)[0] for lr in grid}
    best_lr = min(sweep, key=lambda lr: (sweep[lr] is None, sweep[lr] or 0))
    show = lambda e: "—" if e is None else str(e)  # noqa: E731
    print(f"digits, adam, seed {args.seed}, budget {args.epochs} epochs; sweep: "
          + ", ".join(f"α={lr:g}: {show(e)}" for lr, e in sweep.items()) + f" ({per} epochs each)")
    print()
    print("| scenario (start α) | no intervention | autopilot | best fixed α (sweep) | autopilot's actions |")
    print("|---|---|---|---|---|")
    for name, lr in SCENARIOS.items():
        plain, _, _ = train(folder, f"{name.replace(' ', '-')}-plain", lr, args.epochs, args.seed)
        auto, actions, _ = train(folder, f"{name.replace(' ', '-')}-auto", lr, args.epochs, args.seed, autopilot=True)
        print(f"| {name} ({lr:g}) | {show(plain)} | {show(auto)} | {show(sweep[best_lr])} (α={best_lr:g}) | "
              f"{'; '.join(actions) or 'none'} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
