"""Compute to a target with and without the autopilot, against a sweep's best fixed α (issue #22).

Every workload × optimizer × start is trained for the workload's budget of epochs by (a) no
intervention, (b) the rule autopilot (``autopilot_method="rules"``: apply the advisor's advice), (c)
the new autopilot (``autopilot_method="lookahead"``). Per workload × optimizer (a fixed α does not
depend on the start), a random sweep draws ``--trials`` K α's log-uniform over the optimizer's range
(numpy ``default_rng(seed)``) and trains each for budget/K epochs (the sweep's total is one budget);
the α that reached the target with the least compute (else the best final accuracy) is (d), trained at
the full budget, and (e) is a cosine decay from it over the budget. A cell is the compute at the
first epoch whose validation accuracy reaches the workload's target (:mod:`bench.autopilot_table`:
trained steps, plus every fork and finder step; "—": never within the budget), with the final
validation accuracy at the budget. A run that diverges and waits for a person is stopped there (the
new autopilot gets :data:`GRACE` seconds to go on by itself). Trains in this process, one run at a
time, on the CPU; a progress line per run on stderr.

    python -m bench.autopilot [--workloads digits-mlp,digits-cnn,synth-mlp] [--optimizers adam,momentum]
        [--starts low,default,high] [--seed 0] [--trials 4] [--quick] [--out FILE]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from bench.autopilot_table import METHODS, Outcome, Row, compute_to_target, steps_spent, summary, table  # noqa: E402
from trainer.contract.config import RUN_OPTIONS, TrainConfig  # noqa: E402
from trainer.contract.hparams import Hyperparameters  # noqa: E402
from trainer.contract.rundir import WAITING_STATES, RunDir, current_line  # noqa: E402
from trainer.contract.watch import FileWatcher  # noqa: E402

#: Seconds a run of the new autopilot may wait (diverged or paused) before the benchmark stops it.
GRACE = 20.0
#: The seed of the synthetic data set (the same set whatever ``--seed`` says).
DATA_SEED = 0


def write_digit_images(path: Path) -> None:
    """scikit-learn's digits as 8×8×1 images in [0, 1], for the CNN (the trainer splits off validation)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    np.savez(path, x_train=(digits.data / 16.0).astype(np.float32).reshape(-1, 8, 8, 1),
             y_train=digits.target.astype(np.int32))


def write_synthetic(path: Path) -> None:
    """20,000 examples × 40 features, 10 classes (``make_classification``, seed :data:`DATA_SEED`)."""
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=20_000, n_features=40, n_informative=20, n_redundant=10, n_classes=10,
                               n_clusters_per_class=2, class_sep=1.0, random_state=DATA_SEED)
    np.savez(path, x_train=x.astype(np.float32), y_train=y.astype(np.int32))


#: Data sets this benchmark writes into its folder, by file name (``digits`` is the trainer's own).
DATA_WRITERS: dict[str, Callable[[Path], None]] = {"digits-8x8x1.npz": write_digit_images,
                                                   "synthetic-20000x40.npz": write_synthetic}


@dataclass(frozen=True)
class Workload:
    """A data set and a network, with the validation accuracy to reach and the budget to reach it in."""

    dataset: str  # "digits", or a file of DATA_WRITERS
    model: str
    layers: int
    units: int
    batch_norm: bool
    target: float  # validation accuracy, reachable by a good fixed α within budget/K epochs
    epochs: int  # the budget


WORKLOADS: dict[str, Workload] = {
    "digits-mlp": Workload("digits", "mlp", 2, 64, True, 0.96, 24),
    # batch norm's moving averages lag far behind on 23 steps an epoch: the CNN's validation sat at chance
    "digits-cnn": Workload("digits-8x8x1.npz", "cnn", 1, 64, False, 0.95, 24),
    "synth-mlp": Workload("synthetic-20000x40.npz", "mlp", 3, 256, True, 0.85, 16),
}


@dataclass(frozen=True)
class Optimizer:
    default_lr: float  # "the default" start; the others are STARTS × this
    sweep: tuple[float, float]  # the sweep's log-uniform range of α


#: Adam: the trainer's default α; SGD with momentum (β 0.9): Keras's SGD default.
OPTIMIZERS: dict[str, Optimizer] = {"adam": Optimizer(3e-3, (1e-4, 1.0)), "momentum": Optimizer(1e-2, (1e-3, 1.0))}
#: Starts, as multiples of the optimizer's default α.
STARTS: dict[str, float] = {"low": 0.01, "default": 1.0, "high": 100.0}
#: What --quick runs: a smoke test of every method (well under two minutes).
QUICK = {"workloads": ["digits-mlp"], "optimizers": ["adam"], "starts": ["low", "high"], "trials": 2, "epochs": 12}

HAS_METHODS = "autopilot_method" in RUN_OPTIONS  # the new autopilot's option (issue #22)
#: The run options of the methods that train from a start, by letter; None: not available in this trainer.
RUN_METHODS: dict[str, dict | None] = {
    "a": {},
    "b": {"autopilot": True, "autopilot_method": "rules"} if HAS_METHODS else {"autopilot": True},
    "c": {"autopilot": True, "autopilot_method": "lookahead"} if HAS_METHODS else None,
}
#: Methods whose run may get out of a wait by itself (the others have nothing that would resume them).
RECOVERS = ("c",)


def _watch(run: RunDir, grace: float, done: threading.Event, note: list[str]) -> None:
    """Stop the run once it has waited (diverged, paused) ``grace`` seconds: nobody will come."""
    waiting_since = None
    with FileWatcher(run.path, ["status.json"]) as watcher:
        while not done.is_set():
            state = (run.read_status() or {}).get("state")
            if state in WAITING_STATES:
                waiting_since = waiting_since or time.monotonic()
                if time.monotonic() - waiting_since >= grace:
                    note.append(f"{state}: stopped")
                    run.send_command("stop", source="bench")
                    return
            else:
                waiting_since = None
            watcher.wait(min(0.5, grace) if waiting_since else 0.5)


def train(folder: Path, name: str, workload: Workload, optimizer: str, lr: float, epochs: int, seed: int,
          options: dict, *, decay: str = "none", recovers: bool = False) -> Outcome:
    """One run, trained here, and its outcome read back from its run directory."""
    import keras

    from trainer.training.loop import Trainer

    dataset = workload.dataset if workload.dataset == "digits" else str(folder / workload.dataset)
    config = TrainConfig(hparams=Hyperparameters(optimizer=optimizer, lr=lr, layers=workload.layers,
                                                 units=workload.units, batch_norm=workload.batch_norm, decay=decay),
                         dataset=dataset, model=workload.model, epochs=epochs, seed=seed, internals=False, **options)
    keras.backend.clear_session()  # a hundred runs in one process: drop the last ones' graphs
    trainer = Trainer.create(folder / name, config, verbose=False)
    done, note = threading.Event(), []
    watcher = threading.Thread(target=_watch, args=(trainer.rundir, GRACE if recovers else 0.0, done, note), daemon=True)
    watcher.start()
    try:
        state = trainer.run()
    finally:
        done.set()
        watcher.join()
    run = trainer.rundir
    records, events, status = run.read_metrics(), run.read_events(), run.read_status() or {}
    if state == "failed":
        note.append(f"failed: {status.get('message')}")
    explore = int(status.get("explore_steps") or 0)
    per_epoch = math.ceil(len(trainer.data.x_train) / config.hparams.batch_size)
    line = current_line(records)
    return Outcome(compute_to_target(records, events, workload.target, steps_per_epoch=per_epoch, explore_total=explore),
                   line[-1].get("val_accuracy") if line else None,
                   steps_spent(records, events, steps_per_epoch=per_epoch, explore_total=explore), explore,
                   note="; ".join(note))


def sweep_lrs(optimizer: str, trials: int, seed: int) -> list[float]:
    """The sweep's α's: log-uniform over the optimizer's range, from ``default_rng(seed)``.

    >>> [round(lr, 4) for lr in sweep_lrs("momentum", 4, 0)]
    [0.0814, 0.0064, 0.0013, 0.0011]
    """
    low, high = OPTIMIZERS[optimizer].sweep
    draws = np.random.default_rng(seed).uniform(math.log(low), math.log(high), trials)
    return [float(math.exp(x)) for x in draws]


def best_of(results: dict[float, Outcome]) -> float:
    """The α that reached the target with the least compute; if none did, the best final accuracy.

    >>> best_of({0.1: Outcome(None, 0.9), 0.01: Outcome(300, 0.97), 0.001: Outcome(200, 0.96)})
    0.001
    """
    return min(results, key=lambda lr: (results[lr].compute is None, results[lr].compute or 0,
                                        -(results[lr].final_acc or 0.0)))


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run_benchmark(folder: Path, workloads: list[str], optimizers: list[str], starts: list[str], seed: int,
                  trials: int, quick: bool, on_row: Callable[[list[Row], list[str]], None] = lambda rows, sweeps: None,
                  ) -> tuple[list[Row], list[str]]:
    """Every run of the benchmark; returns the table's rows and a line per sweep (its α's and their compute).

    ``on_row`` sees the rows so far after each one (``--out`` keeps a partial table on disk meanwhile).
    """
    for name in {WORKLOADS[w].dataset for w in workloads} & set(DATA_WRITERS):
        DATA_WRITERS[name](folder / name)
    rows, sweeps, count = [], [], 0
    total = len(workloads) * len(optimizers) * (trials + 2 + len(starts) * sum(v is not None for v in RUN_METHODS.values()))

    def one(name: str, label: str, *args, **kwargs) -> Outcome:
        nonlocal count
        count += 1
        started = time.perf_counter()
        try:
            outcome = train(folder, name, *args, **kwargs)
        except Exception as e:  # one broken run is a cell that says so, not a lost benchmark
            outcome = Outcome(None, None, note=f"error: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
        reached = "—" if outcome.compute is None else f"{outcome.compute:,} steps"
        say(f"[{count}/{total}] {label}: to target {reached}, final val acc {outcome.final_acc or 0:.3f}, "
            f"spent {outcome.total:,} steps ({outcome.explore:,} exploring) {outcome.note} "
            f"({time.perf_counter() - started:.1f} s)")
        return outcome

    for w in workloads:
        workload = WORKLOADS[w]
        epochs = QUICK["epochs"] if quick else workload.epochs
        per = max(1, epochs // trials)
        for opt in optimizers:
            tried = {lr: one(f"{w}-{opt}-sweep-{lr:.3g}", f"{w} {opt} sweep α={lr:.3g} ({per} epochs)",
                             workload, opt, lr, per, seed, {})
                     for lr in sweep_lrs(opt, trials, seed)}
            best = best_of(tried)
            sweeps.append(f"{w} {opt}: sweep of {trials} × {per} epochs: " + ", ".join(
                f"α={lr:.3g}: {'—' if o.compute is None else f'{o.compute:,}'}" for lr, o in tried.items())
                + f"; best α={best:.3g}")
            fixed = replace(one(f"{w}-{opt}-d", f"{w} {opt} (d) α={best:.3g}", workload, opt, best, epochs, seed, {}),
                            lr=best)
            cosine = replace(one(f"{w}-{opt}-e", f"{w} {opt} (e) cosine from α={best:.3g}", workload, opt, best, epochs,
                                 seed, {}, decay="cosine"), lr=best)
            for start in starts:
                lr = OPTIMIZERS[opt].default_lr * STARTS[start]
                outcomes: dict[str, Outcome | None] = {"d": fixed, "e": cosine}
                for letter, options in RUN_METHODS.items():
                    outcomes[letter] = None if options is None else one(
                        f"{w}-{opt}-{start}-{letter}", f"{w} {opt} start {start} α={lr:.3g} ({letter}) {METHODS[letter]}",
                        workload, opt, lr, epochs, seed, options, recovers=letter in RECOVERS)
                rows.append(Row(w, opt, start, lr, outcomes))
                on_row(rows, sweeps)
    return rows, sweeps


def report(rows: list[Row], sweeps: list[str], workloads: list[str], seed: int, quick: bool) -> str:
    """The table, what it ran, and the goals, as markdown."""
    targets = {w: f"val acc ≥ {WORKLOADS[w].target:g} in {QUICK['epochs'] if quick else WORKLOADS[w].epochs} epochs"
               for w in workloads}
    missing = "" if RUN_METHODS["c"] is not None else (
        "\n(c) not run: this trainer has no `autopilot_method` option yet; (b) is today's autopilot.\n")
    return "\n".join([
        f"Seed {seed} (weights, data order and the sweep's α's; synthetic data seed {DATA_SEED}). Compute: training "
        "steps to the target, fork and finder steps included; (d): the sweep's best α at the full budget.",
        "", *(f"- {line}" for line in sweeps), missing, table(rows, targets), "", summary(rows), ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help=f"of {', '.join(WORKLOADS)}")
    parser.add_argument("--optimizers", default=",".join(OPTIMIZERS), help=f"of {', '.join(OPTIMIZERS)}")
    parser.add_argument("--starts", default=",".join(STARTS), help=f"of {', '.join(STARTS)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trials", type=int, default=4, help="the sweep's K α's")
    parser.add_argument("--quick", action="store_true", help="a smoke test: " + str(QUICK))
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    args = parser.parse_args(argv)
    chosen = {key: (QUICK[key] if args.quick else getattr(args, key).split(","))
              for key in ("workloads", "optimizers", "starts")}
    for key, table_ in (("workloads", WORKLOADS), ("optimizers", OPTIMIZERS), ("starts", STARTS)):
        unknown = [k for k in chosen[key] if k not in table_]
        if unknown:
            parser.error(f"unknown {key}: {', '.join(unknown)} (choose from {', '.join(table_)})")
    trials = QUICK["trials"] if args.quick else args.trials
    folder = Path(tempfile.mkdtemp(prefix="panda-bench-autopilot-"))
    started = time.perf_counter()

    def write(rows: list[Row], sweeps: list[str], end: str) -> str:
        text = report(rows, sweeps, chosen["workloads"], args.seed, args.quick) + end
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text)
        return text

    rows, sweeps = run_benchmark(folder, chosen["workloads"], chosen["optimizers"], chosen["starts"], args.seed,
                                 trials, args.quick, lambda rows, sweeps: write(rows, sweeps, "(partial: still running)\n"))
    print(write(rows, sweeps, f"{len(rows)} rows in {(time.perf_counter() - started) / 60:.1f} min on "
                              f"{os.cpu_count()} CPU cores; the runs are in {folder}.\n"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
