"""What a run is asked to do, and the one way a trainer process is launched.

:class:`TrainConfig` holds a run's options (data, epochs, seed, pace, ...) next to its
:class:`~trainer.contract.hparams.Hyperparameters`, each declared once with
:func:`~trainer.contract.options.option`. It is saved in ``config.json`` so ``--resume`` can do it again.
:func:`trainer_argv` turns a configuration into ``panda train`` arguments (and
:func:`resume_argv` a run to continue; both through one builder), and ``panda train`` parses them
back with flags made from the same tables: the dashboard's "new run", a sweep's trials and the
benchmarks all launch trainers through them. Pure Python, no TensorFlow.

>>> trainer_argv("runs", "r1", TrainConfig(hparams=Hyperparameters(lr=0.01), epochs=3), program=())[:6]
['train', '--run-dir', 'runs', '--name', 'r1', '--epochs']
"""

from __future__ import annotations

import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trainer.contract.hparams import HYPERPARAMETERS, Hyperparameters
from trainer.contract.options import MAX_INT, Option, OptionError, add_flags, defaults_of, option, options_of, short_repr, to_flags

#: How a trainer process starts: ``python -m trainer`` with this interpreter.
TRAINER_PROGRAM = (sys.executable, "-m", "trainer")
#: A run (or sweep) name: a folder name that stays inside the run directory and shows in a URL.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
#: Models ``--model`` knows (trainer.training.model builds them).
MODELS = ("mlp", "cnn")
#: How the autopilot steers (``--autopilot-method``): the stage lookahead (default) or the advisor's rules.
AUTOPILOT_METHODS = ("lookahead", "rules")


def check_name(name: Any) -> str:
    """A run name as given, or ``ValueError``: no paths, no hidden folders, no spaces or newlines.

    >>> check_name("lr-3e-3")
    'lr-3e-3'
    >>> check_name("../escape")
    Traceback (most recent call last):
    ...
    ValueError: a run name is letters, digits, '.', '_' or '-' (at most 80), starting with a letter or digit; got '../escape'
    """
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):  # not match: "$" also matches before a final "\n"
        raise ValueError("a run name is letters, digits, '.', '_' or '-' (at most 80), starting with a letter "
                         f"or digit; got {short_repr(name)}")
    return name


@dataclass
class TrainConfig:
    """What a run is asked to do; saved in config.json so ``--resume`` can do it again."""

    hparams: Hyperparameters = field(default_factory=Hyperparameters)
    dataset: str = option("digits", "text", "'digits' (bundled, offline); tfds:NAME (a TensorFlow Datasets set on "
                          "disk: tfds:mnist, ...); a folder of images, one sub-folder per class; a .csv file (see "
                          "--label); or a .npz file with x_train, y_train[, x_val, y_val]", metavar="SPEC")
    data_dir: str | None = option(None, "text", "where the tfds: data set is on disk (TFDS's data_dir); nothing is "
                                  "downloaded", optional=True, metavar="FOLDER")
    label: str | None = option(None, "text", "the class column of a .csv data set (default: label)", optional=True,
                               metavar="COLUMN")
    model: str = option("mlp", "choice", "mlp (any data) or cnn (images: conv, batch norm, ReLU, pooling)",
                        choices=MODELS)
    epochs: int = option(30, "int", "epochs to train; with --resume, a new total", low=1, high=10_000_000)
    seed: int = option(0, "int", "seeds the weights and the data order", low=0, high=MAX_INT)
    pace: float = option(0.0, "float", "minimum seconds per epoch, for demos", low=0, high=3600, metavar="SECONDS")
    checkpoint_every: int = option(5, "int", "keep a checkpoint every N epochs", label="checkpoint every", low=1,
                                   high=MAX_INT, metavar="EPOCHS")
    val_split: float = option(0.2, "float", "validation fraction when the data has none", label="validation split",
                              low=0, high=1, high_open=True)
    divergence_factor: float = option(10.0, "float", "an epoch loss this many times the best so far (floored at "
                                      "ln(classes)/10) counts as diverged", label="divergence factor", low=1,
                                      low_open=True, high=1e6)
    jit: bool | None = option(None, "bool", "XLA-compile the training step (default: on with a GPU, as Keras does)",
                              optional=True)
    threads: int | None = option(None, "int", "TensorFlow's intra- and inter-op threads (default: every core); a "
                                 "sweep gives each trial its share", optional=True, low=1, high=4096)
    tensorboard: bool = option(False, "bool", "also write TensorBoard event files to RUN/tensorboard/")
    internals: bool = option(True, "bool", "record the network's insides once per epoch in RUN/internals.jsonl "
                             "(batch norm statistics, softmax of probe examples, gradient and weight norms)")
    autopilot: bool = option(False, "bool", "let the autopilot steer α (see --autopilot-method), each change a "
                             "command with source 'autopilot'")
    autopilot_method: str = option("lookahead", "choice", "lookahead: every stage, fork candidate α's from the "
                                   "current state, predict each one's loss at the stage's end and go on with the "
                                   "best (issue #22); rules: apply the advisor's advice as it comes (halve α when "
                                   "the loss bounces, ×0.1 on a plateau, ...)", label="autopilot method",
                                   choices=AUTOPILOT_METHODS)
    replay: str | None = option(None, "text", "apply this run's interventions (α, β, batch size, checkpoints, "
                                "rewinds) at the steps where it applied them (panda replay sets it)", optional=True,
                                metavar="RUN_PATH")
    argv: list[str] = field(default_factory=list)

    def validate(self) -> "TrainConfig":
        """Check every option and hyperparameter; ``ValueError`` names the first bad value."""
        for name, opt in RUN_OPTIONS.items():
            setattr(self, name, opt.check(getattr(self, name)))
        self.hparams.validate()
        from trainer.training.datasets import check_spec  # numpy only; no TensorFlow

        check_spec(self.dataset, data_dir=self.data_dir, label=self.label)
        return self

    def to_dict(self) -> dict:
        return {**asdict(self), "hparams": self.hparams.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        if "autopilot_method" not in values and "created" in data:  # a config.json older than the field: rules
            values["autopilot_method"] = "rules"
        values["hparams"] = Hyperparameters.from_dict(data.get("hparams", {}))
        return cls(**values)

    @classmethod
    def from_args(cls, args: Any, argv: list[str] | None = None) -> "TrainConfig":
        """A configuration from ``panda train``'s parsed flags (those :func:`add_train_flags` made)."""
        hparams = Hyperparameters(**{name: getattr(args, name) for name in HYPERPARAMETERS})
        values = {name: getattr(args, name) for name in RUN_OPTIONS}
        values = {k: v for k, v in values.items() if v is not None or RUN_OPTIONS[k].optional}
        return cls(hparams=hparams, argv=list(argv or []), **values)


#: Every run option of ``panda train`` other than the hyperparameters, by name.
RUN_OPTIONS: dict[str, Option] = options_of(TrainConfig)
RUN_DEFAULTS: dict[str, Any] = defaults_of(TrainConfig)


def add_train_flags(parser, *, only: tuple[str, ...] | None = None, run_defaults: dict | None = None) -> None:
    """``panda train``'s flags for every run option and hyperparameter (``only``: a subset of run options)."""
    table = RUN_OPTIONS if only is None else {k: RUN_OPTIONS[k] for k in only}
    add_flags(parser, table, {**RUN_DEFAULTS, **(run_defaults or {})})
    if only is None:
        add_flags(parser, HYPERPARAMETERS, defaults_of(Hyperparameters))


def _train_command(args: list[str], quiet: bool, program: tuple[str, ...] | None) -> list[str]:
    """``panda train ARGS [--quiet]`` behind ``program``: every trainer command line is built here."""
    return [*(TRAINER_PROGRAM if program is None else program), "train", *args, *(["--quiet"] if quiet else [])]


def trainer_argv(run_dir: Path | str, name: str, config: TrainConfig, *, quiet: bool = True,
                 program: tuple[str, ...] | None = None) -> list[str]:
    """The command line that trains ``config`` as run ``run_dir/name``.

    ``program`` is put in front (``TRAINER_PROGRAM`` by default; ``()`` gives the bare
    ``panda`` arguments). Every value is checked first, so a bad one raises ``ValueError`` here
    rather than in a background process.
    """
    config.validate()
    check_name(name)
    hparams = config.hparams.to_dict()
    runs = {k: getattr(config, k) for k in RUN_OPTIONS if getattr(config, k) != RUN_DEFAULTS[k] or k == "epochs"}
    return _train_command(["--run-dir", str(run_dir), "--name", name, *to_flags(RUN_OPTIONS, runs),
                           *to_flags(HYPERPARAMETERS, hparams)], quiet, program)


def resume_argv(run_path: Path | str, *, quiet: bool = True, program: tuple[str, ...] | None = None,
                epochs: int | None = None) -> list[str]:
    """The command line that continues the run at ``run_path`` from its newest checkpoint
    (to ``epochs`` epochs in all when given, e.g. more than a completed run planned).

    >>> resume_argv("runs/r1", program=(), epochs=40)
    ['train', '--resume', 'runs/r1', '--epochs', '40', '--quiet']
    """
    return _train_command(["--resume", str(run_path), *(["--epochs", str(int(epochs))] if epochs is not None else [])],
                          quiet, program)


__all__ = ["TrainConfig", "AUTOPILOT_METHODS", "RUN_OPTIONS", "RUN_DEFAULTS", "TRAINER_PROGRAM", "MODELS", "OptionError", "add_train_flags",
           "check_name", "resume_argv", "trainer_argv"]
