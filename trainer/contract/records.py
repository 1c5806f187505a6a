"""Typed records of the run-directory contract: ``status.json``, answers, epochs, batches, checkpoints.

A run directory has one writer and many readers, some careless or hostile, so a reader never trusts a
field's type: each ``from_json`` keeps what has the documented type and uses the default for the rest
(:func:`log_record` does the same for a journal line a page shows). The other files' records
(:mod:`~trainer.contract.file_records`, ``internals_records``, ``event_records``) share these readers.

>>> s = Status.from_json({"state": "running", "epoch": "three", "hparams": {"lr": 0.01}})
>>> s.state, s.epoch, s.hparams["lr"]
('running', 0, 0.01)
>>> Answer.from_json({"event": "applied", "command_id": "c-1", "epoch": 4}).applied
True
>>> log_record({"id": ["x"], "cmd": {"a": 1}, "time": 10 ** 400, "value": [float("nan")]})["id"]
'["x"]'
>>> log_record({"event": "applied", "step": "7", "hparams": {"lr": 0.1, "x": [1]}})["hparams"]
{'lr': 0.1}
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from trainer.contract.config import check_name
from trainer.contract.jsonsafe import MAX_ECHO_CHARS, preview, text_of
from trainer.contract.outcome import FINISH_MESSAGES

#: How a run ended, by ``status.json``'s message: the reading of a run written before ``ending`` existed.
ENDING_OF_MESSAGE = {message: ending for ending, message in FINISH_MESSAGES.items()}

#: Fields of log records that must be whole numbers, or plain numbers (anything else reads as missing).
INT_FIELDS = ("epoch", "epochs", "step", "explore_steps", "branch", "to_epoch", "line", "pid", "received_step")
FLOAT_FIELDS = ("time", "received_time", "lr", "heartbeat", "started")
#: Fields of log records that must be text (anything else is shown as its bounded JSON text).
TEXT_FIELDS = ("id", "cmd", "source", "event", "command_id", "reason", "checkpoint", "resumed_from", "error",
               "duplicate_id", "name", "state", "host", "message", "ending")
#: Fields that hold a table of hyperparameters or metrics.
TABLE_FIELDS = ("hparams", "metrics", "last", "activity")


def number(value: Any) -> int | float | None:
    """``value`` when it is a finite int or float of sane size (never a bool), else ``None``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, int):
        return value if abs(value) < 2**63 else None
    return value if math.isfinite(value) else None


def text(value: Any) -> str | None:
    """``value`` when it is a string (bounded), ``None`` when missing, else its bounded JSON text."""
    if value is None or isinstance(value, str):
        return value if value is None or len(value) <= 10 * MAX_ECHO_CHARS else value[:10 * MAX_ECHO_CHARS] + "…"
    return text_of(value)[:MAX_ECHO_CHARS]


def table(value: Any) -> dict | None:
    """A flat table of names to numbers, text, booleans or ``None`` (other entries are left out)."""
    if not isinstance(value, dict):
        return None
    return {k: v for k, v in value.items()
            if isinstance(k, str) and (isinstance(v, (str, bool)) or v is None or number(v) is not None)}


def _field(key: str, value: Any) -> Any:
    if key in INT_FIELDS:
        return value if isinstance(value, int) and number(value) is not None else None
    if key in FLOAT_FIELDS:
        value = number(value)
        return None if value is None else float(value)
    if key in TEXT_FIELDS:
        return text(value)
    if key in TABLE_FIELDS:
        return table(value)
    return preview(value)


def log_record(raw: dict) -> dict:
    """Every field of a log line in the type a reader expects (see the tables above)."""
    return {str(k): _field(str(k), v) for k, v in raw.items()}


def _typed(cls, data: Any) -> dict[str, Any]:
    """``data``'s fields that have the type the dataclass declares, read as :func:`log_record` reads them."""
    if not isinstance(data, dict):
        return {}
    values = {f.name: _field(f.name, data.get(f.name)) for f in fields(cls)}
    # a text field that was not text (log_record shows it as its JSON) is no value in a typed record
    return {k: v for k, v in values.items() if v is not None and (not isinstance(v, str) or isinstance(data[k], str))}


@dataclass(frozen=True)
class Status:
    """``status.json``: the trainer's state now, replaced atomically on every change and heartbeat."""

    name: str = ""
    state: str = "unknown"
    epoch: int = 0
    epochs: int | None = None
    step: int = 0
    branch: int = 0
    pid: int | None = None
    host: str | None = None
    heartbeat: float = 0.0
    started: float | None = None
    hparams: dict = field(default_factory=dict)
    last: dict | None = None
    message: str | None = None
    checkpoint: str | None = None
    activity: dict | None = None  # what a long command (find_lr, fork) is doing, with its progress
    ending: str | None = None  # how a finished run ended: completed, stopped or interrupted
    explore_steps: int = 0  # side-track (fork, find_lr) steps this run has spent, kept across --resume

    @classmethod
    def from_json(cls, data: Any) -> "Status":
        typed = _typed(cls, data)
        if "ending" not in typed and typed.get("state") == "finished":
            # written before status.json had ``ending``: its message is one of FINISH_MESSAGES' values
            typed["ending"] = ENDING_OF_MESSAGE.get(typed.get("message"))
        return cls(**typed)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Answer:
    """The trainer's ``applied`` or ``rejected`` event for one command (``events.jsonl``)."""

    event: str
    command_id: str | None = None
    cmd: str | None = None
    time: float | None = None
    epoch: int | None = None
    step: int | None = None
    reason: str | None = None
    line: int | None = None

    @property
    def applied(self) -> bool:
        return self.event == "applied"

    @classmethod
    def from_json(cls, data: Any) -> "Answer | None":
        """The answer an event is, or ``None`` when it is no answer (another kind of event)."""
        values = _typed(cls, data)
        return cls(**values) if values.get("event") in ("applied", "rejected") else None




def whole(value: Any) -> int | None:
    """An int of sane size (never a bool), else ``None``."""
    return value if isinstance(value, int) and number(value) is not None else None


def real(value: Any) -> float | None:
    """A finite number as a float, else ``None``."""
    value = number(value)
    return None if value is None else float(value)


def string(value: Any) -> str | None:
    """A string that can be written as UTF-8 (no lone surrogate), else ``None``."""
    if not isinstance(value, str):
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return value


def flag(value: Any) -> bool | None:
    """A JSON boolean, else ``None``."""
    return value if isinstance(value, bool) else None


def strings(value: Any) -> list[str] | None:
    """A list of such strings, else ``None``."""
    if not isinstance(value, list):
        return None
    out = [string(v) for v in value]
    return None if None in out else out


def wholes(value: Any) -> list[int | None] | None:
    """A list of ints or ``null`` (a shape's unknown dimension), else ``None``."""
    if not isinstance(value, list) or any(v is not None and whole(v) is None for v in value):
        return None
    return value


def obj(value: Any) -> dict | None:
    """A JSON object as written (its own reader checks inside), else ``None``."""
    return value if isinstance(value, dict) else None


def checked(schema: dict, data: Any) -> dict:
    """``data``'s fields that pass their check in ``schema`` (field -> check); others are missing."""
    if not isinstance(data, dict):
        return {}
    values = {key: check(data.get(key)) for key, check in schema.items()}
    return {k: v for k, v in values.items() if v is not None}


# --------------------------------------------------------------------------- epoch and batch records


class _Line:
    """A frozen line of an append-only file: its fields' types say how each is read back."""

    #: Fields written only when they hold a value (older lines, or one trainer, lack them).
    OPTIONAL: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: Any):
        """The record ``data`` is, each field read by its declared type; ``None`` when a required field is missing."""
        values = checked({f.name: READERS[f.type] for f in fields(cls)}, data)
        try:
            return cls(**values)
        except TypeError:  # a field without a default is missing or of the wrong type
            return None

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None or k not in self.OPTIONAL}


@dataclass(frozen=True)
class EpochRecord(_Line):
    """One line of ``metrics.jsonl`` (docs/run-directory.md): the one list of an epoch record's fields.

    >>> EpochRecord.from_json({"epoch": 2, "loss": "low", "lr": 0.1, "extra": 1}).to_json()["lr"]
    0.1
    >>> EpochRecord.from_json({"epoch": "2"}) is None
    True
    """

    epoch: int
    branch: int = 0
    step: int = 0
    lr: float | None = None
    beta: float | None = None
    batch_size: int | None = None
    loss: float | None = None
    accuracy: float | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None
    grad_norm: float | None = None
    epoch_seconds: float | None = None
    samples_per_second: float | None = None
    wall_seconds: float | None = None
    wall_samples_per_second: float | None = None
    time: float | None = None
    checkpoint: str | None = None  # added when its checkpoint is written
    explored_batches: int | None = None  # PandaCallback: fit's batches a find_lr took
    logs: dict | None = None  # PandaCallback: Keras's raw logs

    OPTIONAL = ("checkpoint", "explored_batches", "logs")


@dataclass(frozen=True)
class BatchRecord(_Line):
    """One line of ``batches.jsonl``: a sampled mini-batch loss (``None``: it was not finite)."""

    epoch: int
    step: int
    loss: float | None = None
    branch: int = 0


#: How a field of each declared type is read back from a file.
READERS = {"int": whole, "int | None": whole, "float | None": real, "str | None": string, "dict | None": table}
#: An epoch record's fields, in order; the columns every trainer writes (an export's first columns).
EPOCH_FIELDS = tuple(f.name for f in fields(EpochRecord))
EPOCH_COLUMNS = tuple(name for name in EPOCH_FIELDS if name not in EpochRecord.OPTIONAL)


#: ``config.json``'s ``dataset``: each field and its check.
DATASET_FIELDS = {"name": string, "n_train": whole, "n_val": whole, "n_features": whole, "n_classes": whole,
                  "source": string, "input_shape": wholes, "class_names": strings}
#: ``config.json``: each field a client reads and its check. Other fields (run options the trainer
#: alone reads back on ``--resume``, where :class:`~trainer.contract.config.TrainConfig` checks them) pass as written.
CONFIG_FIELDS = {
    "schema_version": whole, "name": string, "trainer": string, "model": string, "created": real,
    "epochs": whole, "seed": whole, "pace": real, "checkpoint_every": whole, "hparams": table,
    "dataset": lambda v: checked(DATASET_FIELDS, v) if isinstance(v, dict) else None, "dataset_spec": string,
    "versions": lambda v: {k: s for k, s in (table(v) or {}).items() if isinstance(s, str)} if table(v) else None,
    "devices": strings, "argv": strings, "model_signature": obj, "autopilot": flag, "autopilot_method": string,
    "tensorboard": flag, "internals": flag,
}


def config_record(data: Any) -> dict | None:
    """``config.json`` with every field in :data:`CONFIG_FIELDS` checked, or ``None`` when it is no object.

    >>> config_record({"schema_version": 1, "epochs": "x", "hparams": [1], "dataset": {"n_classes": 10}})
    {'schema_version': 1, 'dataset': {'n_classes': 10}}
    >>> config_record([]) is None
    True
    """
    if not isinstance(data, dict):
        return None
    known = checked(CONFIG_FIELDS, data)
    return {**{k: v for k, v in data.items() if isinstance(k, str) and k not in CONFIG_FIELDS}, **known}


#: A checkpoint's ``meta.json``: each field and its check; :data:`CHECKPOINT_REQUIRED` must pass.
CHECKPOINT_FIELDS = {"seq": whole, "epoch": whole, "step": whole, "branch": whole, "reason": string, "time": real,
                     "hparams": table, "metrics": obj}
CHECKPOINT_REQUIRED = ("seq", "epoch", "step")


def checkpoint_meta(data: Any) -> dict:
    """A checkpoint's ``meta.json``, checked; ``ValueError`` says why a checkpoint cannot be used.

    ``branch`` defaults to 0 and ``hparams`` to ``{}``; ``metrics`` is the epoch record or ``None``.

    >>> checkpoint_meta({"seq": 3, "epoch": 2, "step": 40, "hparams": {"lr": 0.1}})["branch"]
    0
    >>> checkpoint_meta({"seq": "3", "epoch": 2, "step": 40})
    Traceback (most recent call last):
    ...
    ValueError: meta.json has no whole-number seq
    """
    if not isinstance(data, dict):
        raise ValueError("meta.json is not a JSON object")
    meta = checked(CHECKPOINT_FIELDS, data)
    for key in CHECKPOINT_REQUIRED:
        if key not in meta:
            raise ValueError(f"meta.json has no whole-number {key}")
    return {"branch": 0, "hparams": {}, "metrics": None, "reason": None, **meta}


@dataclass(frozen=True)
class CheckpointMeta:
    """A checkpoint's ``meta.json`` (:func:`checkpoint_meta` checks it), plus the ``name`` and ``path``
    of its folder when :meth:`~trainer.contract.rundir.RunDir.list_checkpoints` listed it.

    >>> c = CheckpointMeta.from_json({"seq": 3, "epoch": 2, "step": 40, "name": "ckpt-00003", "path": 7})
    >>> c.name, c.epoch, c.branch, c.path
    ('ckpt-00003', 2, 0, None)
    """

    seq: int
    epoch: int
    step: int
    branch: int = 0
    reason: str | None = None
    time: float | None = None
    hparams: dict = field(default_factory=dict)
    metrics: dict | None = None
    name: str | None = None  # the folder's name, not in meta.json
    path: str | None = None  # the folder, not in meta.json

    @classmethod
    def from_json(cls, data: Any) -> "CheckpointMeta":
        """The checked record; ``ValueError`` (as :func:`checkpoint_meta`) when it is no usable checkpoint."""
        meta = checkpoint_meta(data)
        return cls(**meta, **checked({"name": string, "path": string}, data))

    def to_json(self) -> dict:
        """What :func:`checkpoint_meta` gives (``time``, ``name`` and ``path`` only when known)."""
        return {k: v for k, v in asdict(self).items() if v is not None or k not in ("time", "name", "path")}


def run_name(value: Any) -> str | None:
    """A valid run name (:func:`trainer.contract.config.check_name`: the one rule for names), else ``None``.

    A name read from a file becomes a folder to open, so ``../../private/run`` is no name.

    >>> run_name("trial-0001"), run_name("../../private/run"), run_name(["x"])
    ('trial-0001', None, None)
    """
    try:
        return check_name(value)
    except ValueError:
        return None


#: A line of a sweep's ``trials.jsonl``: each field and its check. A line without a valid ``trial``
#: name is not a trial.
TRIAL_FIELDS = {
    "trial": run_name, "round": whole, "index": whole, "state": string, "params": table, "pid": whole,
    "started": real, "backend": string, "resumed": string, "returncode": whole, "best_val_accuracy": real,
    "best_epoch": whole, "epochs": whole, "reason": string, "error": string, "ended": real, "time": real,
}


def trial_record(data: Any) -> dict | None:
    """A ``trials.jsonl`` line with every field checked, or ``None`` when it names no valid trial.

    >>> trial_record({"trial": "trial-0002", "round": "1", "state": "running", "params": {"lr": 0.1}})
    {'trial': 'trial-0002', 'state': 'running', 'params': {'lr': 0.1}}
    >>> trial_record({"trial": "../../private/run", "state": "finished"}) is None
    True
    """
    record = checked(TRIAL_FIELDS, data)
    return record if "trial" in record else None
