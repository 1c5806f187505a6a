"""What recording ``internals.jsonl`` costs: Panda's end-to-end throughput with it on against off.

Trains the same configuration with ``internals`` on and off, alternated A B A B in one process,
``--repeats`` times, on two workloads: the default digits run (2 x 64 + batch norm, batch 64) and
an MLP 784-256-256 + batch norm on 60,000 x 784 synthetic data (batch 128). Throughput is end to
end: training samples over the wall time from the end of epoch 2 to the end of the last epoch,
so it includes each epoch's evaluation, checkpoint, records and the internals measurement, but not
the one-time compilation of the probe pass at the end of epoch 1 (about 0.2 s, printed apart).
Prints the median ratio on / off per workload (goal: at least 0.97, a cost of at most 3 %).

    python bench/internals_cost.py [--repeats 3] [--epochs 6]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

from bench.throughput import synthetic
from trainer.contract.config import TrainConfig
from trainer.contract.hparams import Hyperparameters
from trainer.training.loop import Trainer


def end_to_end(config: TrainConfig, folder: Path) -> tuple[float, float]:
    """Steady-state samples/s (from the end of epoch 2, after the probe pass was compiled at the end of
    epoch 1), and the seconds between the first two records (where that one-time compilation falls)."""
    trainer = Trainer.create(folder / f"run-{time.time_ns()}", config, verbose=False)
    assert trainer.run() == "finished"
    records = trainer.rundir.read_metrics()
    steady = len(trainer.data.x_train) * (len(records) - 2) / (records[-1]["time"] - records[1]["time"])
    return steady, records[1]["time"] - records[0]["time"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="panda-bench-internals-") as tmp:
        folder = Path(tmp)
        x, y, xv, yv = synthetic(60_000, 10_000, (784,))
        big = folder / "big.npz"
        np.savez(big, x_train=x, y_train=y, x_val=xv, y_val=yv)
        workloads = {
            "digits 2x64+BN, batch 64": TrainConfig(epochs=args.epochs * 20),
            "MLP 784-256-256+BN, batch 128": TrainConfig(hparams=Hyperparameters(units=256, batch_size=128),
                                                         dataset=str(big), epochs=args.epochs),
        }
        for name, config in workloads.items():
            ratios, first_extra = [], []
            for repeat in range(args.repeats):
                on, on_first = end_to_end(TrainConfig(**{**config.__dict__, "internals": True}), folder)
                off, off_first = end_to_end(TrainConfig(**{**config.__dict__, "internals": False}), folder)
                ratios.append(on / off)
                first_extra.append(on_first - off_first)
                print(f"  {name}, repeat {repeat + 1}: on {on:,.0f} samples/s, off {off:,.0f} samples/s, "
                      f"ratio {on / off:.3f}; epoch 2 took {on_first - off_first:+.3f} s more with internals", flush=True)
            print(f"{name}: internals on / off = {statistics.median(ratios):.3f} (median of {args.repeats}); "
                  f"one-time cost (compiling the probe pass) {statistics.median(first_extra):.2f} s", flush=True)


if __name__ == "__main__":
    main()
