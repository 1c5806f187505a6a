"""Typed values of the run directory's other JSON files: ``config.json``, a sweep's trials, the finder's and a fork's records.

Each is frozen, with one defensive ``from_json`` (a field of the wrong type reads as its default, by
the checks of :mod:`trainer.contract.records`: one table per file says how each field is read) and
a ``to_json`` that :meth:`from_json` reads back unchanged. The dashboard reads their attributes, not
``.get(...) or {}`` chains: a careless or hostile file gives defaults, never an exception.

>>> c = RunConfig.from_json({"epochs": "ten", "dataset": {"name": "digits", "n_classes": 10}, "hparams": [1]})
>>> c.epochs, c.dataset.name, c.dataset.n_classes, c.hparams
(None, 'digits', 10, {})
>>> FinderRecord.from_json({"points": [], "suggestion": {"lr": 0.01, "steepest": "x"}}).suggestion
{'lr': 0.01}
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from trainer.contract.records import (CONFIG_FIELDS, DATASET_FIELDS, TRIAL_FIELDS, checked, config_record, number,
                                      real, string, strings, table, trial_record, whole)


def _drop_none(values: dict) -> dict:
    return {k: v for k, v in values.items() if v is not None}


def _known(cls, values: dict) -> dict:
    """``values`` limited to ``cls``'s fields (a checked file may hold fields a client never reads)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in values.items() if k in names}


@dataclass(frozen=True)
class Dataset:
    """``config.json``'s ``dataset``: what the run learns from."""

    name: str | None = None
    n_train: int | None = None
    n_val: int | None = None
    n_features: int | None = None
    n_classes: int | None = None
    source: str | None = None
    input_shape: list | None = None
    class_names: list | None = None

    @classmethod
    def from_json(cls, data: Any) -> "Dataset":
        return cls(**checked(DATASET_FIELDS, data))

    def to_json(self) -> dict:
        return _drop_none(asdict(self))


@dataclass(frozen=True)
class RunConfig:
    """``config.json`` as a client reads it (the trainer's own options are checked by ``TrainConfig`` on resume)."""

    schema_version: int | None = None
    name: str | None = None
    trainer: str | None = None  # None: a run older than the field (``panda train``'s)
    model: str | None = None
    created: float | None = None
    epochs: int | None = None
    seed: int | None = None
    pace: float | None = None
    checkpoint_every: int | None = None
    hparams: dict = field(default_factory=dict)
    dataset: Dataset = field(default_factory=Dataset)
    dataset_spec: str | None = None
    versions: dict = field(default_factory=dict)
    devices: list | None = None
    argv: list | None = None
    model_signature: dict | None = None
    autopilot: bool | None = None
    autopilot_method: str | None = None  # lookahead or rules (None: a run older than the field, rules)
    tensorboard: bool | None = None
    internals: bool | None = None

    @classmethod
    def from_json(cls, data: Any) -> "RunConfig | None":
        """The configuration ``data`` is, or ``None`` when it is no JSON object."""
        record = config_record(data)
        if record is None:
            return None
        values = _known(cls, record)
        values["dataset"] = Dataset.from_json(values.get("dataset"))
        return cls(**values)

    def to_json(self) -> dict:
        return {**_drop_none(asdict(self)), "dataset": self.dataset.to_json()}


#: Every field a client reads is typed: the checks' table and the record name the same fields.
assert set(CONFIG_FIELDS) == {f.name for f in fields(RunConfig)}, "CONFIG_FIELDS and RunConfig disagree"
assert set(DATASET_FIELDS) == {f.name for f in fields(Dataset)}, "DATASET_FIELDS and Dataset disagree"


@dataclass(frozen=True)
class Trial:
    """One line of a sweep's ``trials.jsonl``: a trial's state change (later lines add to earlier ones)."""

    trial: str
    round: int | None = None
    index: int | None = None
    state: str | None = None
    params: dict = field(default_factory=dict)
    pid: int | None = None
    started: float | None = None
    backend: str | None = None
    resumed: str | None = None
    returncode: int | None = None
    best_val_accuracy: float | None = None
    best_epoch: int | None = None
    epochs: int | None = None
    reason: str | None = None
    error: str | None = None
    ended: float | None = None
    time: float | None = None

    @classmethod
    def from_json(cls, data: Any) -> "Trial | None":
        """The trial line ``data`` is, or ``None`` when it names no valid trial (``../x`` is no run name)."""
        record = trial_record(data)
        return None if record is None else cls(**record)

    def to_json(self) -> dict:
        return _drop_none(asdict(self))


assert set(TRIAL_FIELDS) == {f.name for f in fields(Trial)}, "TRIAL_FIELDS and Trial disagree"

#: A finder's ``suggestion`` (docs/run-directory.md): each α it names, and why it has none.
SUGGESTION_FIELDS = {"lr": real, "steepest": real, "min_lr": real, "min_over_10": real, "reason": string}
#: A point of a finder's curve and of a fork candidate's curve.
POINT_FIELDS = {"lr": real, "loss": real, "smoothed": real, "step": whole}
#: A fork candidate's own settings (``candidate``): what continuing with it sets.
CHOSEN_FIELDS = {"lr": real, "beta": real, "batch_size": whole}
#: An autopilot candidate's curve fit: loss(s) ≈ a + b·exp(−c·s) for step s = 1, 2, … of its lookahead.
FIT_FIELDS = {"a": real, "b": real, "c": real}


def _points(value: Any) -> list[dict]:
    """The points of a curve that are objects, each with its numbers (a missing or broken one is ``None``)."""
    if not isinstance(value, list):
        return []
    return [{k: check(v.get(k)) for k, check in POINT_FIELDS.items()} for v in value if isinstance(v, dict)]


@dataclass(frozen=True)
class FinderRecord:
    """One line of ``lr_finder.jsonl``: a finder's curve and what it suggests."""

    points: list = field(default_factory=list)
    suggestion: dict = field(default_factory=dict)
    command_id: str | None = None
    stopped: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> "FinderRecord | None":
        """The record ``data`` is, or ``None`` when it has no curve (``points`` is no list)."""
        if not isinstance(data, dict) or not isinstance(data.get("points"), list):
            return None
        return cls(points=_points(data["points"]), suggestion=checked(SUGGESTION_FIELDS, data.get("suggestion")),
                   command_id=string(data.get("command_id")), stopped=string(data.get("stopped")))

    @property
    def lr(self) -> float | None:
        """The α to apply: the suggestion's, when it is a positive number."""
        value = self.suggestion.get("lr")
        return value if value is not None and value > 0 else None

    def to_json(self) -> dict:
        return _drop_none(asdict(self))


@dataclass(frozen=True)
class ForkCandidate:
    """One candidate of a fork: its own settings, its hyperparameters, its scores and its short curve."""

    candidate: dict = field(default_factory=dict)
    hparams: dict = field(default_factory=dict)
    val_loss: float | None = None
    val_accuracy: float | None = None
    final_loss: float | None = None
    steps: int | None = None
    curve: list = field(default_factory=list)
    predicted_loss: float | None = None  # an autopilot fork: the loss the fit predicts at the stage's end
    fit: dict | None = None  # an autopilot fork: {a, b, c} of loss(s) ≈ a + b·exp(−c·s)

    @classmethod
    def from_json(cls, data: Any) -> "ForkCandidate":
        data = data if isinstance(data, dict) else {}
        return cls(candidate=checked(CHOSEN_FIELDS, data.get("candidate")), hparams=table(data.get("hparams")) or {},
                   val_loss=real(data.get("val_loss")), val_accuracy=real(data.get("val_accuracy")),
                   final_loss=real(data.get("final_loss")), steps=whole(data.get("steps")),
                   curve=_points(data.get("curve")), predicted_loss=real(data.get("predicted_loss")),
                   fit=checked(FIT_FIELDS, data.get("fit")) or None)

    def to_json(self) -> dict:
        return _drop_none(asdict(self))


@dataclass(frozen=True)
class ForkRecord:
    """One line of ``forks.jsonl``: a fork's candidates and the best one's index (``None``: every one diverged)."""

    candidates: list = field(default_factory=list)
    best: int | None = None
    command_id: str | None = None
    pick: str | None = None  # ask, best, or autopilot (a lookahead stage's fork)
    autopilot_stage: int | None = None  # the stage whose fork this is (pick autopilot)

    @classmethod
    def from_json(cls, data: Any) -> "ForkRecord | None":
        """The record ``data`` is, or ``None`` when it has no candidates (``candidates`` is no list)."""
        if not isinstance(data, dict) or not isinstance(data.get("candidates"), list):
            return None
        return cls(candidates=[ForkCandidate.from_json(c) for c in data["candidates"]], best=whole(data.get("best")),
                   command_id=string(data.get("command_id")), pick=string(data.get("pick")),
                   autopilot_stage=whole(data.get("autopilot_stage")))

    def to_json(self) -> dict:
        return _drop_none({**asdict(self), "candidates": [c.to_json() for c in self.candidates]})


def _scalar(value: Any) -> str | bool | int | float | None:
    """A choice's value: text (UTF-8), a boolean or a sane number, else ``None``."""
    return value if isinstance(value, bool) or number(value) is not None else string(value)


@dataclass(frozen=True)
class ParamSpec:
    """One hyperparameter's space in ``sweep.json``: a scale with its bounds, or a choice of values."""

    scale: str | None = None  # log, log1m, uniform, int or choice (another sweep.json's word: shown as is)
    min: float | None = None
    max: float | None = None
    values: list = field(default_factory=list)  # a choice's values

    @classmethod
    def from_json(cls, data: Any) -> "ParamSpec":
        values = data.get("values") if isinstance(data, dict) else None
        return cls(**checked({"scale": string, "min": real, "max": real}, data),
                   values=[v for v in map(_scalar, values) if v is not None] if isinstance(values, list) else [])

    def to_json(self) -> dict:
        return _drop_none(asdict(self))


def _space(value: Any) -> dict[str, ParamSpec]:
    """A space: each named parameter's :class:`ParamSpec` (a name that is no text is left out)."""
    return {k: ParamSpec.from_json(v) for k, v in value.items() if string(k) is not None} \
        if isinstance(value, dict) else {}


@dataclass(frozen=True)
class SweepRound:
    """One round of a coarse-to-fine sweep: its space, and the trials it was narrowed around."""

    round: int | None = None
    around: list = field(default_factory=list)
    space: dict = field(default_factory=dict)  # name -> ParamSpec

    @classmethod
    def from_json(cls, data: Any) -> "SweepRound":
        data = data if isinstance(data, dict) else {}
        return cls(round=whole(data.get("round")), around=strings(data.get("around")) or [],
                   space=_space(data.get("space")))

    def to_json(self) -> dict:
        return _drop_none({**asdict(self), "space": {k: v.to_json() for k, v in self.space.items()}})


@dataclass(frozen=True)
class SweepSpec:
    """``sweep.json`` as the Sweeps page reads it (docs/sweeps.md); ``space`` is the first round's, in the user's order."""

    name: str | None = None
    created: float | None = None
    seed: int | None = None
    sampler: str | None = None
    state: str | None = None
    settings: dict = field(default_factory=dict)  # trials, rounds, parallel, epochs, scheduler, auto …
    space: dict = field(default_factory=dict)  # name -> ParamSpec
    rounds: list = field(default_factory=list)  # of SweepRound

    @classmethod
    def from_json(cls, data: Any) -> "SweepSpec | None":
        """The sweep's snapshot, or ``None`` when ``data`` is no object."""
        if not isinstance(data, dict):
            return None
        space = _space(data.get("space"))
        order = [n for n in strings(data.get("param_order")) or [] if n in space]
        rounds = data.get("rounds")
        return cls(**checked({"name": string, "created": real, "seed": whole, "sampler": string, "state": string},
                             data), settings=table(data.get("settings")) or {},
                   space={n: space[n] for n in dict.fromkeys(order + list(space))},
                   rounds=[SweepRound.from_json(r) for r in rounds] if isinstance(rounds, list) else [])

    def to_json(self) -> dict:
        """Written in ``space``'s order (``param_order``), which :meth:`from_json` keeps."""
        return _drop_none({**asdict(self), "space": {k: v.to_json() for k, v in self.space.items()},
                           "param_order": list(self.space), "rounds": [r.to_json() for r in self.rounds]})
