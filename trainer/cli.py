"""``panda train``, ``panda ctl`` and ``panda status``: the trainer's command line.

``app.serving.panda_cli`` adds the dashboard's commands to the same parser; this module never imports ``app``.
TensorFlow is imported only by the commands that train, and Optuna only by ``panda sweep``
(:data:`add_sweep` registers it from :mod:`trainer.search.cli` only when it is the command run),
so ``ctl`` and ``status`` answer at once (tests/test_import_rules.py checks both).

It holds together as one parser: each subcommand's flags sit beside its handler, and the lazy imports
that keep ``ctl`` and ``status`` fast are in one place.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
import time
from pathlib import Path

from trainer.contract import commands as cmds
from trainer.contract import jsonsafe
from trainer.contract.config import RUN_DEFAULTS, TrainConfig, add_train_flags, check_name
from trainer.ctl_values import EXPLORE_VALUES, json_object, json_value
from trainer.contract.options import Option, argparse_type
from trainer.contract.event_records import explore_share
from trainer.contract.records import Answer
from trainer.contract.outcome import outcome
from trainer.contract.rundir import RunDir, RunDirError, current_line, JsonlTail, exit_code, pid_alive
from trainer.contract.watch import FileWatcher

#: ``panda ctl`` action -> the command it sends (its value is checked by :mod:`trainer.contract.commands`).
CTL_ACTIONS = {name.replace("_", "-"): name for name in cmds.COMMANDS}


def add_train(subparsers) -> None:
    """``panda train``: its flags come from the tables of run options and hyperparameters."""
    p = subparsers.add_parser(
        "train",
        help="train a model in the foreground, writing a run directory",
        description="Train a softmax classifier with a custom GradientTape loop, steerable live "
        "through its run directory. Example: panda train --run-dir runs --name lr-3e-3 --lr 3e-3",
    )
    p.add_argument("--resume", metavar="RUN_PATH", help="continue a stopped or killed run from its last checkpoint")
    p.add_argument("--run-dir", default="runs", help="folder that holds runs (default: runs)")
    p.add_argument("--name", type=argparse_type(check_name, "name"), help="the run's folder name (default: the time now); never overwritten")
    add_train_flags(p, run_defaults={"epochs": None})  # --epochs: 30 for a new run; with --resume, keep the old total
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines on stdout")
    p.set_defaults(func=cmd_train)


def add_ctl(subparsers) -> None:
    p = subparsers.add_parser(
        "ctl",
        help="send a command to a running trainer",
        description="Append a command to RUN_PATH/commands.jsonl. With --wait, exit 0 once the "
        "trainer applied it, 1 with the trainer's reason when it was rejected or not answered in time.",
    )
    p.add_argument("run_path", metavar="RUN_PATH")
    p.add_argument("action", choices=CTL_ACTIONS)
    p.add_argument("value", nargs="?", help="the command's value (set-lr 0.001, rewind ckpt-00003, ...)")
    p.add_argument("--wait", type=float, metavar="SECONDS", help="wait for the trainer's answer")
    explore = p.add_argument_group("find-lr and fork")
    explore.add_argument("--steps", type=int, help="find-lr: steps of the ramp (default 100); fork: steps per candidate")
    explore.add_argument("--min", type=float, dest="lr_min", help="find-lr: the smallest α tried (default 1e-6)")
    explore.add_argument("--max", type=float, dest="lr_max", help="find-lr: the largest α tried (default 1)")
    explore.add_argument("--lr", help="fork: learning rates to try, comma-separated (0.03,0.01,0.003)")
    explore.add_argument("--beta", help="fork: betas to try, comma-separated")
    explore.add_argument("--batch-size", help="fork: batch sizes to try, comma-separated")
    explore.add_argument("--pick", choices=cmds.FORK_PICKS, help="fork: ask (pause for your choice, the default) "
                         "or best (continue with the best candidate)")
    p.set_defaults(func=cmd_ctl)


def add_status(subparsers) -> None:
    p = subparsers.add_parser("status", help="show a run's state, progress and hyperparameters")
    p.add_argument("run_path", metavar="RUN_PATH")
    p.add_argument("--json", action="store_true", help="print status.json plus liveness as JSON")
    p.set_defaults(func=cmd_status)


def add_export(subparsers) -> None:
    p = subparsers.add_parser(
        "export",
        help="write a run's metrics and journal of interventions as CSV or Parquet",
        description="Write RUN_PATH's epoch metrics (metrics.csv) and its journal of interventions: every "
        "command with its answer and latency, pauses, rewinds, divergences (journal.csv); .parquet with "
        "--format parquet.",
    )
    p.add_argument("run_path", metavar="RUN_PATH")
    p.add_argument("--format", choices=("csv", "parquet", "schedule"), default="csv",
                   help="schedule: the learning rate the run used, step by step, as JSON (schedule.json) that "
                   "trainer.reports.keras_schedule.PandaSchedule loads into a plain model.fit")
    p.add_argument("--out", metavar="FOLDER", help="where to write (default: RUN_PATH/export)")
    p.add_argument("--all-branches", action="store_true", help="every epoch ever trained, not only the current history after rewinds")
    p.set_defaults(func=cmd_export)


def add_lesson(subparsers) -> None:
    """``panda lesson``: the course's ideas measured on a real model."""
    p = subparsers.add_parser(
        "lesson", help="measure one of the course's ideas on a real model (tracing: tf.Variable vs a Python float)",
        description="tracing: trace and time a GradientTape step with the learning rate as a Python float "
        "and as a tf.Variable, eagerly and with @tf.function; RUN_PATH uses that run's model size.")
    p.add_argument("topic", choices=("tracing",))
    p.add_argument("run_path", nargs="?", metavar="RUN_PATH", help="measure the model of this run (default: digits size)")
    p.add_argument("--changes", type=argparse_type(Option("int", "", name="changes", low=1, high=1000).check, "int"),
                   default=7, help="how many times the learning rate changes (default 7)")
    p.set_defaults(func=cmd_lesson)


def cmd_lesson(args) -> int:
    from trainer.reports.tracing import measure_run

    config = RunDir(args.run_path).require().read_config() if args.run_path else {}
    for line in measure_run(config, changes=args.changes).lines():
        print(line)
    return 0


def add_replay(subparsers) -> None:
    """``panda replay``: RUN's configuration again, with RUN's interventions at the same steps."""
    p = subparsers.add_parser(
        "replay", help="train a fresh run with RUN's configuration, applying RUN's interventions at the same steps",
        description="A new run with RUN_PATH's configuration (seed included) that applies RUN_PATH's applied "
        "learning-rate, beta, batch-size, checkpoint and rewind commands at the global steps where it applied "
        "them (source 'replay'); the autopilot is off. On CPU, for a run without --resume, the metrics match.")
    p.add_argument("run_path", metavar="RUN_PATH")
    p.add_argument("--name", type=argparse_type(check_name, "name"), required=True, help="the new run's name")
    p.add_argument("--run-dir", help="where the new run goes (default: next to RUN_PATH)")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines on stdout")
    p.set_defaults(func=cmd_replay)


def cmd_replay(args) -> int:
    from trainer.training.loop import Trainer
    from trainer.steering.replay import plan_of

    run = RunDir(args.run_path).require()
    saved = run.read_config()
    if saved.get("trainer", cmds.PANDA_TRAIN) != cmds.PANDA_TRAIN:
        print(f"panda replay: error: {run.path} was not made by panda train", file=sys.stderr)
        return 1
    try:
        schedule = plan_of(run.read_events())
        config = TrainConfig.from_dict({**saved, "dataset": saved.get("dataset_spec", "digits"),
                                        "autopilot": False, "replay": str(run.path.resolve()),
                                        "argv": sys.argv[1:]}).validate()
    except ValueError as e:
        args.parser.exit(2, f"panda replay: error: {e}\n")
    folder = Path(args.run_dir) if args.run_dir else run.path.parent
    trainer = Trainer.create(folder / args.name, config, verbose=not args.quiet)
    if not args.quiet:
        print(f"replaying {len(schedule)} intervention(s) of {run.path}")
    state = trainer.run()
    return exit_code(state)


#: The trainer's own subcommands (``python -m trainer``); ``panda`` adds the sweep's and the app's.
TRAINER_COMMANDS = {"train": add_train, "ctl": add_ctl, "status": add_status, "export": add_export,
                    "lesson": add_lesson, "replay": add_replay}


class LazyCommand:
    """A subcommand whose module is heavy (Optuna): ``panda --help`` lists it from ``help`` alone,
    and :func:`run` registers it from ``target`` (``"module:function"``) only when it is the one run."""

    def __init__(self, name: str, target: str, help: str):
        self.name, self.target, self.help = name, target, help

    def __call__(self, subparsers) -> None:
        subparsers.add_parser(self.name, help=self.help)  # a stand-in: never parsed (see run)

    def load(self):
        module, _, function = self.target.partition(":")
        return getattr(importlib.import_module(module), function)


#: ``panda sweep``, registered by :func:`trainer.search.cli.add_sweep` when it is the command run.
add_sweep = LazyCommand("sweep", "trainer.search.cli:add_sweep",
                        "random-search hyperparameters: train many runs side by side (caviar mode)")


def build_parser(commands=None) -> argparse.ArgumentParser:
    """The ``panda`` parser with ``commands`` (name -> function that registers it) as subcommands."""
    commands = dict(commands or TRAINER_COMMANDS)
    parser = argparse.ArgumentParser(prog="panda", description="Babysit a neural network while it trains.")
    parser.set_defaults(_commands=commands)  # read back by _loaded
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in commands.values():
        add(subparsers)
    return parser


def _loaded(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.ArgumentParser:
    """``parser`` again with the lazy command ``argv`` names (if any) registered for real."""
    commands = parser.get_default("_commands") or {}
    chosen = next((a for a in argv if not a.startswith("-")), None)
    lazy = commands.get(chosen)
    if not isinstance(lazy, LazyCommand):
        return parser
    return build_parser({**commands, chosen: lazy.load()})


def run(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _loaded(parser, argv)
    args = parser.parse_args(argv)
    args.parser = parser
    try:
        return int(args.func(args) or 0)
    except RunDirError as e:
        print(f"panda: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `panda status RUN | head`: the reader left, which is fine (before OSError, its base)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except json.JSONDecodeError as e:  # a snapshot (status.json, config.json) that is not JSON
        print(f"panda: error: a run file is not valid JSON: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # a vanished or read-only folder, a full disk
        where = f"{e.filename}: " if e.filename else ""
        print(f"panda: error: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)


# --------------------------------------------------------------------------- commands


def cmd_train(args) -> int:
    from trainer.training.datasets import DataError
    from trainer.training.loop import STOP_SIGNALS, Trainer

    try:
        if args.resume:
            trainer = Trainer.resume(Path(args.resume), verbose=not args.quiet, epochs=args.epochs)
        else:
            name = args.name or time.strftime("run-%Y%m%d-%H%M%S")
            args.epochs = args.epochs or RUN_DEFAULTS["epochs"]
            config = TrainConfig.from_args(args, sys.argv[1:]).validate()
            trainer = Trainer.create(Path(args.run_dir) / name, config, verbose=not args.quiet)
    except (DataError, ValueError) as e:
        args.parser.exit(2, f"panda train: error: {e}\n")
    state = trainer.run()
    for signum in STOP_SIGNALS:  # the run has ended: a late second Ctrl-C must not raise out of the exit
        signal.signal(signum, signal.SIG_IGN)
    return exit_code(state)


def cmd_ctl(args) -> int:
    run = RunDir(args.run_path).require()
    name = CTL_ACTIONS[args.action]
    if name not in cmds.VALUED and args.value is not None:
        args.parser.exit(2, f"panda ctl: error: {args.action} takes no value\n")
    if name in cmds.VALUED and args.value is None and name not in EXPLORE_VALUES:
        args.parser.exit(2, f"panda ctl: error: {args.action} needs a value\n")
    value = json_value(args.value)  # the trainer checks it and answers with its reason
    if name in EXPLORE_VALUES:
        value = EXPLORE_VALUES[name](args) if args.value is None else json_object(args.value)
    if name in ("adopt", "note"):
        value = json_object(args.value)  # adopt: a run's path, or {"run": PATH, "checkpoint": ..., "lr": ...}
        if name == "adopt":
            value = {"run": value} if isinstance(value, str) else value
            if isinstance(value, dict) and isinstance(value.get("run"), str):  # the trainer's cwd is not ours
                value = {**value, "run": str(Path(value["run"]).resolve())}
    events = JsonlTail(run.events_path)
    events.read_new()  # skip the past: the answer can only come after the command is sent
    with FileWatcher(run.path, [run.events_path.name]) as watcher:
        command_id = run.send_command(name, value, source="cli")
        if not args.wait:
            print(command_id)
            return 0
        deadline = time.monotonic() + args.wait
        while True:
            for event in events.read_new():
                answer = Answer.from_json(event)
                if answer is not None and answer.command_id == command_id:
                    if answer.applied:
                        print(f"applied {args.action} at epoch {answer.epoch}, step {answer.step}")
                        return 0
                    jsonsafe.say(f"panda ctl: rejected: {answer.reason}", sys.stderr)  # the journal's text, escaped
                    return 1
            left = deadline - time.monotonic()
            if left <= 0:
                state = run.liveness()
                print(f"panda ctl: no answer within {args.wait:g}s (trainer is {state}); command {command_id} stays queued", file=sys.stderr)
                return 1
            watcher.wait(timeout=min(left, 1.0))


def cmd_export(args) -> int:
    from trainer.reports.export import ExportError, export_run

    try:
        written = export_run(args.run_path, args.format, args.out, all_branches=args.all_branches)
    except ExportError as e:
        print(f"panda export: error: {e}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


def format_status(run: RunDir) -> str:
    status = run.status()
    state = run.liveness(status)
    if status is not None:  # completed, stopped, interrupted or killed: say which
        state = outcome(state, reason=status.ending, pid_gone=not pid_alive(status.pid, status.host))
    lines = [f"{run.name}: {state}"]
    if status:
        lines.append(f"  epoch {status.epoch}/{status.epochs or '?'}, step {status.step}")
        hp = status.hparams
        lines.append("  " + ", ".join(f"{k}={hp[k]:.6g}" if isinstance(hp.get(k), float) else f"{k}={hp[k]}"
                                      for k in ("optimizer", "lr", "beta", "batch_size") if k in hp))
        last = status.last or {}
        shown = [f"{k} {last[k]:.4f}" for k in ("loss", "val_loss", "val_accuracy")
                 if isinstance(last.get(k), (int, float)) and not isinstance(last.get(k), bool)]
        if shown:  # a Keras fit without validation data has no val_* values
            lines.append("  " + ", ".join(shown))
        share = explore_share(status.step, status.explore_steps)
        if status.explore_steps and share is not None:  # fork and find_lr steps are training compute too
            lines.append(f"  explored {status.explore_steps} side-track steps (fork, find_lr): {share:.0f}% of all steps")
        if status.message:
            lines.append(f"  {status.message}")
        if status.checkpoint:
            lines.append(f"  latest checkpoint: {status.checkpoint}")
    return "\n".join(lines)


def cmd_status(args) -> int:
    run = RunDir(args.run_path).require()
    if args.json:
        status = run.read_status() or {}
        print(json.dumps({**status, "liveness": run.liveness(status), "epochs_recorded": len(current_line(run.read_metrics()))}, indent=2))
    else:
        print(format_status(run))
    return 0
