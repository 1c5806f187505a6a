"""Typed lines of ``internals.jsonl`` (docs/run-directory.md): the probe examples and one epoch's measurements.

The Lessons page draws them; a line another program wrote may hold anything, so each ``from_json``
keeps what has the documented shape (a broken number reads as ``None``, a broken histogram or
layer as missing) and ``to_json`` writes what it reads back unchanged.

>>> e = InternalsEpoch.from_json({"epoch": 3, "batch_norm": [{"layer": "bn", "moving_mean": "x"}, 7],
...                               "tracing": {"traces": 1}, "confusion": [[1, "2"]]})
>>> e.epoch, [b.layer for b in e.batch_norm], e.batch_norm[0].moving_mean, e.tracing, e.confusion
(3, ['bn'], None, {'traces': 1}, [[1, None]])
>>> InternalsEpoch.from_json({"epoch": "3"}) is None
True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from trainer.contract.records import checked, real, string, table, whole, wholes


def matrix(value: Any, cell=real) -> list[list] | None:
    """A list of rows (lists), each entry read by ``cell`` (a broken one is ``None``), else ``None``."""
    if not isinstance(value, list) or not all(isinstance(row, list) for row in value):
        return None
    return [[cell(v) for v in row] for row in value]


@dataclass(frozen=True)
class Histogram:
    """A histogram of one BN layer's z: the range ``edges`` split evenly into ``len(counts)`` bins."""

    edges: list
    counts: list

    @classmethod
    def from_json(cls, data: Any) -> "Histogram | None":
        """The histogram, or ``None`` unless ``edges`` is two numbers and ``counts`` whole numbers."""
        if not isinstance(data, dict):
            return None
        edges, counts = data.get("edges"), wholes(data.get("counts"))
        if not isinstance(edges, list) or len(edges) != 2 or None in map(real, edges) or not counts or None in counts:
            return None
        return cls(edges=[real(e) for e in edges], counts=counts)

    def to_json(self) -> dict:
        return asdict(self)


#: A BN layer's statistics (means over its units), each a number or ``None``.
BN_NUMBERS = ("moving_mean", "moving_var", "gamma_mean", "gamma_std", "beta_mean", "beta_std", "batch_mean",
              "batch_var", "gap_mean", "gap_var")


@dataclass(frozen=True)
class BatchNormStats:
    """One batch-normalization layer at one epoch."""

    layer: str
    moving_mean: float | None = None
    moving_var: float | None = None
    gamma_mean: float | None = None
    gamma_std: float | None = None
    beta_mean: float | None = None
    beta_std: float | None = None
    batch_mean: float | None = None
    batch_var: float | None = None
    gap_mean: float | None = None
    gap_var: float | None = None
    hist_z: Histogram | None = None
    hist_normalized: Histogram | None = None

    @classmethod
    def from_json(cls, data: Any) -> "BatchNormStats | None":
        """The layer's statistics, or ``None`` when ``data`` names no layer."""
        layer = string(data.get("layer")) if isinstance(data, dict) else None
        if layer is None:
            return None
        return cls(layer=layer, **checked(dict.fromkeys(BN_NUMBERS, real), data),
                   hist_z=Histogram.from_json(data.get("hist_z")),
                   hist_normalized=Histogram.from_json(data.get("hist_normalized")))

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


assert set(BN_NUMBERS) | {"layer", "hist_z", "hist_normalized"} == {f.name for f in fields(BatchNormStats)}


@dataclass(frozen=True)
class InternalsEpoch:
    """One ``{"kind": "epoch"}`` line: what the network's insides were at a measured epoch."""

    epoch: int
    step: int | None = None
    branch: int = 0
    time: float | None = None
    batch_norm: list = field(default_factory=list)  # of BatchNormStats
    bn_accuracy: dict = field(default_factory=dict)  # test_mode, train_mode
    softmax: list | None = None  # a row of class probabilities per probe example
    confusion: list | None = None  # [true][predicted] counts
    tracing: dict = field(default_factory=dict)  # traces, hparam_changes

    @classmethod
    def from_json(cls, data: Any) -> "InternalsEpoch | None":
        """The epoch's record, or ``None`` when it has no whole-number ``epoch``."""
        values = checked({"epoch": whole, "step": whole, "branch": whole, "time": real}, data)
        if "epoch" not in values:
            return None
        layers = data.get("batch_norm")
        stats = [s for s in map(BatchNormStats.from_json, layers if isinstance(layers, list) else []) if s]
        return cls(**values, batch_norm=stats, bn_accuracy=table(data.get("bn_accuracy")) or {},
                   softmax=matrix(data.get("softmax")), confusion=matrix(data.get("confusion"), whole),
                   tracing=table(data.get("tracing")) or {})

    def to_json(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if v is not None}
        return {"kind": "epoch", **out, "batch_norm": [b.to_json() for b in self.batch_norm]}


def _label(value: Any) -> int | str | None:
    """A class label: a whole number or a string (a broken one is ``None``)."""
    return whole(value) if string(value) is None else value


@dataclass(frozen=True)
class Probes:
    """The first ``{"kind": "probes"}`` line: the examples whose softmax is shown, flattened, and their labels."""

    examples: list
    labels: list = field(default_factory=list)

    @classmethod
    def from_json(cls, data: Any) -> "Probes | None":
        """The probes, or ``None`` when ``examples`` is no list of lists."""
        examples = matrix(data.get("examples")) if isinstance(data, dict) else None
        if examples is None:
            return None
        labels = data.get("labels")
        return cls(examples=examples, labels=[_label(v) for v in labels] if isinstance(labels, list) else [])

    def to_json(self) -> dict:
        return {"kind": "probes", **asdict(self)}
