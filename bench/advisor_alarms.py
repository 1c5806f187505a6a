"""The advisor's false alarms: how often it speaks on healthy runs, and that it still speaks on sick ones.

Trains the demo scenarios (``app/serving/scenarios.py``: healthy, bouncing, plateau) and the issue's healthy
Adam run (α = 0.003) on digits, unpaced, with no autopilot, then counts the ``advice`` events the
trainer journaled. A *false alarm* is advice on a converged epoch of a healthy run (validation
accuracy ≥ 95 %); the sick scenarios must still get their advice. Trains in subprocess-free
trainers in this process, CPU, one run at a time.

    python -m bench.advisor_alarms [--epochs 60] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from app.serving.scenarios import SCENARIOS  # noqa: E402
from trainer.contract.hparams import Hyperparameters  # noqa: E402
from trainer.training.loop import TrainConfig, Trainer  # noqa: E402
from trainer.contract.rundir import current_line  # noqa: E402

#: name -> (hyperparameters, healthy?)
RUNS = {
    "healthy": (SCENARIOS["healthy"].hparams, True),
    "adam-0.003": ({"optimizer": "adam", "lr": 0.003}, True),
    "bouncing": (SCENARIOS["bouncing"].hparams, False),
    "plateau": (SCENARIOS["plateau"].hparams, False),
}
CONVERGED = 0.95


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="panda-bench-alarms-"))
    for name, (hparams, healthy) in RUNS.items():
        config = TrainConfig(hparams=Hyperparameters(**hparams), epochs=args.epochs, seed=args.seed, internals=False)
        trainer = Trainer.create(folder / name, config, verbose=False)
        trainer.run()
        line = current_line(trainer.rundir.read_metrics())
        accuracy = {r["epoch"]: r.get("val_accuracy") or 0 for r in line}
        converged = [e for e, a in accuracy.items() if a >= CONVERGED]
        advice = [e for e in trainer.rundir.read_events() if e.get("event") == "advice"]
        on_converged = [e for e in advice if accuracy.get(e.get("epoch"), 0) >= CONVERGED]
        kinds = Counter(e.get("kind") for e in advice)
        rate = f"{len(on_converged) / len(converged):.1%}" if converged else "—"
        print(f"{name:11s} {'healthy' if healthy else 'sick':7s} final val acc {line[-1]['val_accuracy']:.1%}; "
              f"{len(advice)} advice events ({dict(kinds)}); on converged epochs {len(on_converged)}/{len(converged)}"
              f" = {rate}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
