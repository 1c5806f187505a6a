"""``panda train``, ``panda ctl`` and ``panda status``: the trainer's command line.

``app.cli`` adds the dashboard's commands to the same parser; this module never imports ``app``.
TensorFlow is imported only by the commands that train, so ``ctl`` and ``status`` answer at once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from trainer import commands as cmds
from trainer.hparams import DECAYS, OPTIMIZERS, Hyperparameters
from trainer.rundir import RunDir, RunDirError, current_line, JsonlTail
from trainer.watch import FileWatcher

#: ``panda ctl`` action -> (command name, how to parse its value or None).
CTL_ACTIONS = {
    "set-lr": ("set_lr", float),
    "scale-lr": ("scale_lr", float),
    "set-beta": ("set_beta", float),
    "set-batch-size": ("set_batch_size", int),
    "pause": ("pause", None),
    "resume": ("resume", None),
    "stop": ("stop", None),
    "checkpoint": ("checkpoint", None),
    "rewind": ("rewind", str),
}


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1 (``panda train`` and ``panda sweep`` share it)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_float(text: str) -> float:
    """An argparse type: a number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _checked(check):
    def parse(text: str):
        try:
            return check(text)
        except cmds.CommandError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    parse.__name__ = check.__name__.replace("check_", "")
    return parse


def _add_train(subparsers) -> None:
    d = Hyperparameters()
    p = subparsers.add_parser(
        "train",
        help="train a model in the foreground, writing a run directory",
        description="Train a softmax classifier with a custom GradientTape loop, steerable live "
        "through its run directory. Example: panda train --run-dir runs --name lr-3e-3 --lr 3e-3",
    )
    p.add_argument("--resume", metavar="RUN_PATH", help="continue a stopped or killed run from its last checkpoint")
    p.add_argument("--run-dir", default="runs", help="folder that holds runs (default: runs)")
    p.add_argument("--name", help="the run's folder name (default: the time now); never overwritten")
    p.add_argument("--dataset", default="digits", help="'digits' (bundled, offline); tfds:NAME (a TensorFlow Datasets set on disk: "
                   "tfds:mnist, tfds:cifar10, ...); a folder of images, one sub-folder per class; a .csv file (see --label); "
                   "or a .npz file with x_train, y_train[, x_val, y_val]")
    p.add_argument("--data-dir", metavar="FOLDER", help="where the tfds: data set is on disk (TFDS's data_dir); nothing is downloaded")
    p.add_argument("--label", metavar="COLUMN", help="the class column of a .csv data set (default: label)")
    p.add_argument("--model", choices=("mlp", "cnn"), default="mlp", help="mlp (any data) or cnn (images: conv, batch norm, ReLU, pooling)")
    p.add_argument("--tensorboard", action="store_true", help="also write TensorBoard event files to RUN/tensorboard/")
    p.add_argument("--val-split", type=float, default=0.2, help="validation fraction when the data has none (default 0.2)")
    p.add_argument("--epochs", type=positive_int, default=None, help="epochs to train (default 30); with --resume, a new total")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer)
    p.add_argument("--lr", type=_checked(cmds.check_lr), default=d.lr, help=f"learning rate alpha (default {d.lr})")
    p.add_argument("--beta", type=_checked(cmds.check_beta), default=None, help="momentum / rho / Adam beta1 (default 0.9)")
    p.add_argument("--beta2", type=_checked(cmds.check_beta), default=d.beta2, help="Adam's beta2")
    p.add_argument("--epsilon", type=float, default=d.epsilon)
    p.add_argument("--batch-size", type=_checked(cmds.check_batch_size), default=d.batch_size)
    p.add_argument("--decay", choices=DECAYS, default=d.decay, help="learning-rate decay per epoch")
    p.add_argument("--decay-rate", type=non_negative_float, default=d.decay_rate)
    p.add_argument("--layers", type=int, default=d.layers, help="hidden layers")
    p.add_argument("--units", type=positive_int, default=d.units, help="units per hidden layer")
    p.add_argument("--batch-norm", action=argparse.BooleanOptionalAction, default=d.batch_norm, help="Dense -> BatchNorm -> ReLU")
    p.add_argument("--dropout", type=float, default=d.dropout)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pace", type=non_negative_float, default=0.0, metavar="SECONDS", help="minimum seconds per epoch, for demos")
    p.add_argument("--checkpoint-every", type=positive_int, default=5, metavar="EPOCHS", help="keep a checkpoint every N epochs")
    p.add_argument("--divergence-factor", type=float, default=10.0, help="an epoch loss this many times the best so far (floored at ln(classes)/10) counts as diverged")
    p.add_argument("--jit", action=argparse.BooleanOptionalAction, default=None, help="XLA-compile the training step (default: on with a GPU, as Keras does)")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines on stdout")
    p.set_defaults(func=cmd_train)


def _add_ctl(subparsers) -> None:
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
    p.set_defaults(func=cmd_ctl)


def _add_status(subparsers) -> None:
    p = subparsers.add_parser("status", help="show a run's state, progress and hyperparameters")
    p.add_argument("run_path", metavar="RUN_PATH")
    p.add_argument("--json", action="store_true", help="print status.json plus liveness as JSON")
    p.set_defaults(func=cmd_status)


def _add_export(subparsers) -> None:
    p = subparsers.add_parser(
        "export",
        help="write a run's metrics and journal of interventions as CSV or Parquet",
        description="Write RUN_PATH's epoch metrics (metrics.csv) and its journal of interventions: every "
        "command with its answer and latency, pauses, rewinds, divergences (journal.csv); .parquet with "
        "--format parquet.",
    )
    p.add_argument("run_path", metavar="RUN_PATH")
    p.add_argument("--format", choices=("csv", "parquet"), default="csv")
    p.add_argument("--out", metavar="FOLDER", help="where to write (default: RUN_PATH/export)")
    p.add_argument("--all-branches", action="store_true", help="every epoch ever trained, not only the current history after rewinds")
    p.set_defaults(func=cmd_export)


def build_parser() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    parser = argparse.ArgumentParser(
        prog="panda",
        description="Babysit a neural network while it trains.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_train(subparsers)
    _add_ctl(subparsers)
    _add_status(subparsers)
    _add_export(subparsers)
    try:
        from trainer.search.cli import add_sweep_command
    except ImportError:
        pass
    else:
        add_sweep_command(subparsers)
    return parser, subparsers


def run(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    args = parser.parse_args(argv)
    args.parser = parser
    try:
        return int(args.func(args) or 0)
    except RunDirError as e:
        print(f"panda: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `panda status RUN | head`: the reader left, which is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def main(argv: list[str] | None = None) -> int:
    parser, _ = build_parser()
    return run(parser, argv)


# --------------------------------------------------------------------------- commands


def cmd_train(args) -> int:
    from trainer.data import DataError
    from trainer.loop import Trainer, TrainConfig

    try:
        if args.resume:
            trainer = Trainer.resume(Path(args.resume), verbose=not args.quiet, epochs=args.epochs)
        else:
            name = args.name or time.strftime("run-%Y%m%d-%H%M%S")
            hparams = Hyperparameters(
                optimizer=args.optimizer, lr=args.lr, beta=args.beta, beta2=args.beta2,
                epsilon=args.epsilon, batch_size=args.batch_size, decay=args.decay,
                decay_rate=args.decay_rate, layers=args.layers, units=args.units,
                batch_norm=args.batch_norm, dropout=args.dropout,
            )
            hparams.validate()
            config = TrainConfig(
                hparams=hparams, dataset=args.dataset, epochs=args.epochs or 30, seed=args.seed,
                pace=args.pace, checkpoint_every=args.checkpoint_every, val_split=args.val_split,
                divergence_factor=args.divergence_factor, jit=args.jit, model=args.model,
                data_dir=args.data_dir, label=args.label, tensorboard=args.tensorboard, argv=sys.argv[1:],
            )
            trainer = Trainer.create(Path(args.run_dir) / name, config, verbose=not args.quiet)
    except (DataError, ValueError) as e:
        args.parser.exit(2, f"panda train: error: {e}\n")
    state = trainer.run()
    return {"finished": 0, "diverged": 3}.get(state, 1)


def cmd_ctl(args) -> int:
    run = RunDir(args.run_path).require()
    name, parse = CTL_ACTIONS[args.action]
    if parse is None and args.value is not None:
        args.parser.exit(2, f"panda ctl: error: {args.action} takes no value\n")
    if parse is not None and args.value is None:
        args.parser.exit(2, f"panda ctl: error: {args.action} needs a value\n")
    value = None
    if parse is not None:
        try:
            value = parse(args.value)
        except ValueError:
            args.parser.exit(2, f"panda ctl: error: {args.action}: not a valid value: {args.value!r}\n")
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
                if event.get("command_id") == command_id and event.get("event") in ("applied", "rejected"):
                    if event["event"] == "applied":
                        print(f"applied {args.action} at epoch {event.get('epoch')}, step {event.get('step')}")
                        return 0
                    print(f"panda ctl: rejected: {event.get('reason')}", file=sys.stderr)
                    return 1
            left = deadline - time.monotonic()
            if left <= 0:
                state = run.liveness()
                print(f"panda ctl: no answer within {args.wait:g}s (trainer is {state}); command {command_id} stays queued", file=sys.stderr)
                return 1
            watcher.wait(timeout=min(left, 1.0))


def cmd_export(args) -> int:
    from trainer.export import ExportError, export_run

    try:
        written = export_run(args.run_path, args.format, args.out, all_branches=args.all_branches)
    except ExportError as e:
        print(f"panda export: error: {e}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


def format_status(run: RunDir) -> str:
    status = run.read_status() or {}
    state = run.liveness(status)
    lines = [f"{run.name}: {state}"]
    if status:
        lines.append(f"  epoch {status.get('epoch', 0)}/{status.get('epochs', '?')}, step {status.get('step', 0)}")
        hp = status.get("hparams") or {}
        lines.append(
            "  " + ", ".join(f"{k}={hp[k]}" for k in ("optimizer", "lr", "beta", "batch_size") if k in hp)
        )
        last = status.get("last") or {}
        if last:
            shown = [f"{k} {last[k]:.4f}" for k in ("loss", "val_loss", "val_accuracy") if isinstance(last.get(k), (int, float))]
            if shown:  # a Keras fit without validation data has no val_* values
                lines.append("  " + ", ".join(shown))
        if status.get("message"):
            lines.append(f"  {status['message']}")
        if status.get("checkpoint"):
            lines.append(f"  latest checkpoint: {status['checkpoint']}")
    return "\n".join(lines)


def cmd_status(args) -> int:
    run = RunDir(args.run_path).require()
    if args.json:
        status = run.read_status() or {}
        print(json.dumps({**status, "liveness": run.liveness(status), "epochs_recorded": len(current_line(run.read_metrics()))}, indent=2))
    else:
        print(format_status(run))
    return 0
