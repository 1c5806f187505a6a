"""Benchmark caviar mode: does training P trials at once buy throughput, and what does the manager cost?

Two measurements, on this machine:

1. **Parallel throughput.** For each P, a sweep of P identical trials (same hyperparameters, so
   the same work) runs P at a time with real trainer processes. Total samples per second is the
   samples all trials trained divided by the wall time from the first epoch's start to the last
   epoch's end (training, validation and checkpoints included; process start-up excluded, and
   reported separately). The ratio to P = 1 says what parallel trials buy.
2. **Manager overhead.** The sweep manager's own CPU time during those sweeps (it polls every
   trial's files), and a sweep of trivial trials (``/bin/true`` in place of the trainer) that
   measures what launching, reaping and recording one trial costs.

3. **Backends side by side.** ``--backend local ray`` runs the same sweeps on each backend (Ray:
   a local instance started once, with this machine's cores). Per-trial overhead is the seconds a
   trial spends outside its training window: from the launch to its first epoch's start
   (interpreter, TensorFlow, data, and for Ray the task scheduling) plus from its last epoch's end
   to the sweep seeing it exit. Each trial gets cores / P TensorFlow threads on both backends.

Usage::

    .venv/bin/python bench/sweep.py                       # P = 1, 2, 4; 60 epochs per trial; local
    .venv/bin/python bench/sweep.py --parallel 1 2 --epochs 30 --json
    .venv/bin/python bench/sweep.py --backend local ray --epochs 5   # both backends side by side
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path


from trainer.contract.rundir import RunDir
from trainer.search.runner import SweepRunner, SweepSettings
from trainer.search.space import parse_param_args
from trainer.search.sweepdir import SweepDir

FIXED = ["lr=0.003", "beta=0.9", "units=64", "layers=2", "batch_norm=true", "batch_size=64"]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def throughput(root: Path, parallel: int, epochs: int, backend: str = "local") -> dict:
    """One sweep of ``parallel`` identical trials, all at once."""
    sweep = SweepDir(root / f"{backend}-p{parallel}")
    cpus = max(1, (os.cpu_count() or 1) // parallel)
    settings = SweepSettings(trials=parallel, parallel=parallel, epochs=epochs, seed=0, backend=backend,
                             cpus_per_trial=cpus)
    runner = SweepRunner(sweep, parse_param_args(FIXED), settings)
    cpu0, wall0 = cpu_seconds(), time.monotonic()
    state = runner.run()
    wall = time.monotonic() - wall0
    cpu = cpu_seconds() - cpu0
    if state != "finished" or any(t["state"] != "finished" for t in sweep.trials().values()):
        raise SystemExit(f"the P={parallel} sweep did not finish: {sweep.trials()}")
    samples, starts, ends, per_trial, overheads = 0, [], [], [], []
    records = sweep.trials()
    for name in records:
        run = RunDir(sweep.path / name)
        n_train = run.read_config()["dataset"]["n_train"]
        metrics = run.read_metrics()
        start = metrics[0]["time"] - metrics[0]["epoch_seconds"]
        samples += n_train * len(metrics)
        starts.append(start)
        ends.append(metrics[-1]["time"])
        per_trial.append(n_train * len(metrics) / (metrics[-1]["time"] - start))
        overheads.append((start - records[name]["started"]) + (records[name]["ended"] - metrics[-1]["time"]))
    window = max(ends) - min(starts)
    return {
        "backend": backend,
        "parallel": parallel,
        "threads_per_trial": cpus,
        "overhead_s_per_trial": sum(overheads) / len(overheads),
        "epochs": epochs,
        "samples": samples,
        "training_window_s": window,
        "samples_per_s": samples / window,
        "per_trial_samples_per_s": sum(per_trial) / len(per_trial),
        "sweep_wall_s": wall,
        "end_to_end_samples_per_s": samples / wall,
        "manager_cpu_s": cpu,
        "manager_cpu_percent_of_one_core": 100 * cpu / wall,
    }


def manager_overhead(root: Path, trials: int, parallel: int, backend: str = "local") -> dict:
    """A sweep whose trials do nothing: what the manager (and the backend) spends per trial."""
    sweep = SweepDir(root / f"noop-{backend}-p{parallel}")
    settings = SweepSettings(trials=trials, parallel=parallel, epochs=1, seed=0, backend=backend)
    true = shutil.which("true") or "/bin/true"
    runner = SweepRunner(sweep, parse_param_args(["lr=log:1e-4:1"]), settings, command=[true])
    cpu0, wall0 = cpu_seconds(), time.monotonic()
    runner.run()
    wall = time.monotonic() - wall0
    cpu = cpu_seconds() - cpu0
    return {
        "backend": backend,
        "trials": trials,
        "parallel": parallel,
        "wall_s": wall,
        "ms_per_trial": 1000 * wall / trials,
        "manager_cpu_ms_per_trial": 1000 * cpu / trials,
        "trials_per_s": trials / wall,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parallel", type=int, nargs="+", default=[1, 2, 4], help="values of P (default 1 2 4)")
    parser.add_argument("--epochs", type=int, default=60, help="epochs per trial (default 60)")
    parser.add_argument("--backend", nargs="+", choices=("local", "ray"), default=["local"],
                        help="backends to compare (default: local)")
    parser.add_argument("--noop-trials", type=int, default=40, help="trivial trials for the overhead run (default 40)")
    parser.add_argument("--keep", metavar="DIR", help="write the sweeps here and keep them (default: a temporary folder)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = parser.parse_args(argv)

    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="panda-bench-sweep-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}")
    print(f"trials: digits, {args.epochs} epochs, {' '.join(FIXED)}; sweeps in {root}\n")
    results = {"throughput": [], "overhead": []}
    ray = None
    if "ray" in args.backend:
        import ray

        t0 = time.monotonic()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, configure_logging=False)
        results["ray_init_s"] = time.monotonic() - t0
        print(f"ray.init (local instance, {os.cpu_count()} CPUs): {results['ray_init_s']:.1f} s, once for every Ray sweep\n")
    try:
        for backend in args.backend:
            for p in args.parallel:
                results["throughput"].append(throughput(root, p, args.epochs, backend))
        print(f"{'backend':>7} {'P':>3} {'samples/s':>11} {'ratio':>6} {'per trial':>10} {'overhead s/trial':>17} "
              f"{'window s':>9} {'wall s':>7} {'end-to-end/s':>13} {'manager CPU':>12}")
        for r in results["throughput"]:
            base = next((b["samples_per_s"] for b in results["throughput"] if b["backend"] == r["backend"] and b["parallel"] == 1), None)
            r["ratio_to_one"] = r["samples_per_s"] / base if base else None
            ratio = f"{r['ratio_to_one']:.2f}x" if base else "—"
            print(f"{r['backend']:>7} {r['parallel']:>3} {r['samples_per_s']:>11,.0f} {ratio:>6} {r['per_trial_samples_per_s']:>10,.0f} "
                  f"{r['overhead_s_per_trial']:>17.2f} {r['training_window_s']:>9.2f} {r['sweep_wall_s']:>7.2f} "
                  f"{r['end_to_end_samples_per_s']:>13,.0f} {r['manager_cpu_percent_of_one_core']:>10.2f} %")
        print("\nsamples/s: all trials' samples over the training window; ratio: against P = 1 on the same backend; "
              "overhead: seconds per trial outside its training window (start-up, scheduling, exit); end-to-end/s: over "
              "the whole sweep; manager CPU: the sweep process's own CPU time per wall second")
        for backend in args.backend:
            for p in sorted({1, max(args.parallel)}):
                results["overhead"].append(manager_overhead(root, args.noop_trials, p, backend))
        print()
        for r in results["overhead"]:
            print(f"{r['backend']}: {r['trials']} no-op trials, P={r['parallel']}: {r['ms_per_trial']:.1f} ms per trial "
                  f"({r['trials_per_s']:.0f} trials/s), manager CPU {r['manager_cpu_ms_per_trial']:.1f} ms per trial")
    finally:
        if ray is not None:
            ray.shutdown()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
