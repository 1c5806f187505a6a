"""``panda sweep``: random search over hyperparameters, P trainers at once, coarse to fine.

Examples::

    panda sweep --run-dir runs --name lr-beta --trials 16 --parallel 2 --epochs 10
    panda sweep --run-dir runs --name fine --trials 8 --rounds 3 --keep 3 --param lr=log:1e-4:1
    panda sweep --run-dir runs --name s --space space.toml --early-stop median --dry-run
    panda sweep --resume runs/lr-beta                 # continue an interrupted sweep
    panda sweep --run-dir /shared/runs --name s --backend ray --address auto --cpus-per-trial 2

Every argument and the space's combinations are checked before anything is written
(:func:`~trainer.search.settings.check_space`, :func:`~trainer.search.pbt.check_pbt`); ``--dry-run``
samples round 1 and checks each configuration as ``panda train`` would.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

from trainer import cli as trainer_cli
from trainer.contract.config import RUN_DEFAULTS, add_train_flags, check_name
from trainer.training.datasets import DataError
from trainer.contract.options import add_flags, argparse_type, defaults_of
from trainer.contract.rundir import RunDirError
from trainer.search.backends import BackendError, make_backend
from trainer.search.pbt import check_pbt
from trainer.search.progress import Progress, summarize
from trainer.search.runner import SweepRunner
from trainer.search.settings import SWEEP_OPTIONS, SweepSettings, check_space, plan_round
from trainer.search.space import DOMAINS, SpaceError, build_space, default_space
from trainer.search.sweepdir import SweepDir

#: ``panda train`` options a sweep passes to every trial (``--epochs`` and ``--seed`` are the sweep's own).
TRIAL_OPTIONS = ("data_dir", "label", "model", "val_split", "pace", "checkpoint_every", "divergence_factor")


def add_sweep(subparsers) -> None:
    """Register ``panda sweep`` on the ``panda`` parser."""
    p = subparsers.add_parser(
        "sweep",
        help=trainer_cli.add_sweep.help,
        description="Sample hyperparameter configurations (each on its own scale: lr log-uniform, "
        "beta with 1-beta log-uniform, ...), train them as separate runs under RUN_DIR/NAME, P at a "
        "time, and optionally zoom in on the best over several rounds. Any trial is a normal run "
        "directory: open, watch and steer it like any run. Parameters: " + ", ".join(DOMAINS) + ". "
        "Default space: " + " ".join(default_space().describe()) + ".",
        epilog="Example: panda sweep --run-dir runs --name s1 --trials 16 --parallel 2 "
        "--param lr=log:1e-4:1 --param optimizer=choice:adam,momentum --rounds 2 --keep 3",
    )
    p.add_argument("--run-dir", default="runs", help="folder that holds runs (default: runs)")
    p.add_argument("--name", type=argparse_type(check_name, "name"), help="the sweep's folder name (default: sweep-<time>); never overwritten")
    p.add_argument("--space", metavar="FILE", help="search space file (.toml or .json; .yaml with PyYAML installed)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=SPEC",
                   help="add or replace one parameter: lr=log:1e-4:1, beta=log1m:0.9:0.999, units=int:50:100, "
                   "dropout=float:0:0.5, optimizer=choice:adam,momentum, or a fixed value: decay=none (repeatable)")
    add_flags(p, SWEEP_OPTIONS, defaults_of(SweepSettings))
    add_train_flags(p, only=TRIAL_OPTIONS)  # passed to every trial, checked as panda train checks them
    p.add_argument("--resume", metavar="SWEEP_PATH", help="continue an interrupted sweep with its saved settings: "
                   "finished trials are kept, unfinished ones resumed from their checkpoints or run again")
    p.add_argument("--dry-run", action="store_true", help="print round 1's configurations, one JSON object a line; train nothing")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=cmd_sweep)


def _fail(args, message: str) -> None:
    args.parser.exit(2, f"panda sweep: error: {message}\n")


def cmd_sweep(args) -> int:
    if args.resume:
        return _resume(args)
    try:
        space = build_space(args.space, args.param)
        run_options = {k: getattr(args, k) for k in TRIAL_OPTIONS if getattr(args, k) != RUN_DEFAULTS[k]}
        settings = SweepSettings(**{k: getattr(args, k) for k in SWEEP_OPTIONS}, run_options=run_options).validate()
        check_space(space)
        check_pbt(settings, space)
        first_round = plan_round(space, settings, 1) if args.dry_run else None
    except (SpaceError, DataError, ValueError) as e:
        _fail(args, str(e))
        return 2  # not reached: exit() raises

    if first_round is not None:
        for plan in first_round:
            print(json.dumps({"trial": plan.name, "round": plan.round, **plan.params}))
        if settings.rounds > 1:
            print(f"(rounds 2..{settings.rounds} are sampled after round 1 trains, around its best {settings.keep})", file=sys.stderr)
        return 0

    try:
        backend = make_backend(settings, {"TF_CPP_MIN_LOG_LEVEL": "2"})  # Ray missing or out of reach: before any folder
    except BackendError as e:
        _fail(args, str(e))
        return 2
    name = args.name or time.strftime("sweep-%Y%m%d-%H%M%S")
    try:
        sweep = SweepDir(Path(args.run_dir) / name).create()
    except RunDirError as e:
        backend.close()
        _fail(args, str(e))
        return 2
    runner = SweepRunner(sweep, space, settings, progress=Progress(enabled=not args.quiet), argv=sys.argv[1:],
                         backend=backend)
    if not args.quiet:
        print(f"sweep {sweep.path}: {settings.trials} trials x {settings.rounds} round(s), {settings.parallel} at a time, "
              f"{settings.epochs} epochs each on {settings.backend}; {settings.sampler} over " + " ".join(space.describe()))
    return _run(args, runner)


def _resume(args) -> int:
    try:
        runner = SweepRunner.resume(args.resume, progress=Progress(enabled=not args.quiet), argv=sys.argv[1:])
        runner.backend = make_backend(runner.settings, {"TF_CPP_MIN_LOG_LEVEL": "2"})
    except (RunDirError, BackendError, ValueError, KeyError) as e:
        _fail(args, str(e).strip("'\""))
        return 2
    if not args.quiet:
        done = sum(r.get("state") in ("finished", "stopped", "failed", "diverged") for r in runner.results.values())
        print(f"sweep {runner.sweep.path}: resuming ({done} trial(s) done are kept)")
    return _run(args, runner)


def _run(args, runner: SweepRunner) -> int:
    sweep = runner.sweep
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread
        previous = None
    try:
        state = runner.run()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)

    lines = summarize(runner.results)
    if not args.quiet:
        print(f"sweep {state}: {sweep.path}")
        if lines:
            print("best trials:")
            print("\n".join(lines))
            best = lines[0].split()[0]
            print(f"babysit the best: panda status {sweep.path / best}   (or open it in the dashboard)")
    if state == "interrupted":
        return 130
    return 0 if lines else 1
