"""The search space: which hyperparameters a sweep varies, over what range, on what scale.

The scale matters more than the range (the course's advice): sampling a learning rate uniformly
in [1e-4, 1] puts 90% of the trials in [0.1, 1]; sampling its exponent uniformly spends the same
effort on every decade. Each parameter type maps its range onto the unit interval *in its own
scale* (:meth:`Param.to_unit` / :meth:`Param.from_unit`), so sampling, grids and coarse-to-fine
narrowing all work in that scale without knowing which one it is.

Scales, as written on the command line (``--param NAME=SPEC``) or in a TOML / JSON file:

==============================  ==========================================================
``log:1e-4:1``                  :class:`LogUniform` — the exponent is uniform
``log1m:0.9:0.999``             :class:`Log1mUniform` — ``1 - value`` is log-uniform
``int:50:100``                  :class:`IntUniform` — whole numbers, both ends included
``float:0:0.5``                 :class:`FloatUniform` — plain uniform
``choice:adam,momentum``        :class:`Choice` — one of the listed values
``adam`` / ``0.01`` / ``true``  a fixed value (a choice of one)
==============================  ==========================================================

Parsing a space (command line, TOML, JSON) and checking it share the same table lookups and errors, so
they stay in one module.

>>> space = parse_param_args(["lr=log:1e-4:1", "units=int:50:100", "optimizer=choice:adam,sgd"])
>>> space["lr"]
LogUniform(low=0.0001, high=1.0)
>>> space["lr"].from_unit(0.5)       # halfway in the log scale is 1e-2, not 0.5
0.01
>>> parse_param_args(["lr=log:0:1"])
Traceback (most recent call last):
...
trainer.search.space.SpaceError: lr: a log scale needs positive bounds, got min 0.0
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any, Iterable, Iterator

from optuna.distributions import BaseDistribution

from trainer.contract.hparams import HYPERPARAMETERS, Hyperparameters, has_beta
from trainer.contract.options import Option, OptionError, to_flags
from trainer.search.params import SCALES, Choice, FloatUniform, IntUniform, Log1mUniform, LogUniform, Param, format_value

__all__ = ["SpaceError", "SearchSpace", "DOMAINS", "SCALES", "Param", "FloatUniform", "LogUniform", "Log1mUniform",
           "IntUniform", "Choice", "make_param", "parse_spec", "param_from_json", "parse_mapping", "parse_space_file",
           "parse_param_args", "build_space", "default_space", "resolve_trial", "train_flags"]


class SpaceError(ValueError):
    """A search space that cannot be sampled, with the reason a user should read."""


# --------------------------------------------------------------------------- what each name accepts

#: Every hyperparameter a sweep may vary, with its range and kind: the searchable entries of the
#: one table, :data:`trainer.contract.hparams.HYPERPARAMETERS`.
DOMAINS: dict[str, Option] = {name: opt for name, opt in HYPERPARAMETERS.items() if opt.search}


#: Names people reach for, only used to suggest the right one.
_ALIASES = {"learning_rate": "lr", "alpha": "lr", "momentum": "beta", "beta1": "beta", "rho": "beta",
            "beta_2": "beta2", "hidden_units": "units", "width": "units", "depth": "layers",
            "bn": "batch_norm", "batchnorm": "batch_norm", "minibatch_size": "batch_size"}


def _canonical_name(name: str) -> str:
    key = name.strip().replace("-", "_")
    if key not in DOMAINS:
        close = [_ALIASES[key.lower()]] if key.lower() in _ALIASES else difflib.get_close_matches(key, list(DOMAINS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SpaceError(f"unknown parameter {name.strip()!r}{hint}; known: {', '.join(DOMAINS)}")
    return key


def _coerce(name: str, raw: Any) -> Any:
    """A value from a file or the command line, as the type ``name`` takes (its range is checked later)."""
    opt = DOMAINS[name]
    if opt.kind == "choice":
        if isinstance(raw, str):
            return raw.strip().lower()
        raise SpaceError(f"{name}: expected a name, got {raw!r}")
    try:
        if opt.kind == "bool":
            return opt.check(raw)
        return Option(opt.kind, "", name=name).check(raw)  # the type alone: no range yet
    except OptionError as e:
        if opt.kind == "int" and "whole number" in e.reason:
            raise SpaceError(f"{name}: takes whole numbers, got {raw}") from None
        want = {"bool": "true or false", "int": "a whole number", "float": "a number"}[opt.kind]
        raise SpaceError(f"{name}: expected {want}, got {raw!r}") from None


def _check_value(name: str, value: Any, what: str = "value") -> None:
    try:
        DOMAINS[name].check(value)
    except OptionError:
        opt = DOMAINS[name]
        rule = f"one of {', '.join(map(format_value, opt.choices))}" if opt.kind == "choice" else opt.range_text
        raise SpaceError(f"{name}: {what} must be {'' if opt.kind == 'choice' else 'in '}{rule}, "
                         f"got {format_value(value)}") from None


def make_param(name: str, scale: str, low: Any = None, high: Any = None, values: Iterable | None = None) -> Param:
    """Build and check one parameter; every rule of the issue's 'bad input' list lives here.

    >>> make_param("units", "int", 100, 50)
    Traceback (most recent call last):
    ...
    trainer.search.space.SpaceError: units: range min 100 > max 50
    >>> make_param("beta", "log1m", 0.9, 1.5)
    Traceback (most recent call last):
    ...
    trainer.search.space.SpaceError: beta: max must be in [0, 1), got 1.5
    """
    domain = DOMAINS[name]
    scale = str(scale).strip().lower()
    if scale not in SCALES:
        raise SpaceError(f"{name}: unknown scale {scale!r}; known: {', '.join(SCALES)}")
    if scale not in domain.scales:
        allowed = " or ".join(domain.scales)
        raise SpaceError(f"{name}: cannot be searched on a {scale} scale (use {allowed})")
    if scale == "choice":
        options = [_coerce(name, v) for v in (values or ())]
        if not options:
            raise SpaceError(f"{name}: a choice needs at least one value")
        for value in options:
            _check_value(name, value)
        unique = tuple(dict.fromkeys(options))
        return Choice(unique)
    if low is None or high is None:
        raise SpaceError(f"{name}: a {scale} range needs a min and a max")
    low, high = _coerce(name, low), _coerce(name, high)
    if low > high:
        raise SpaceError(f"{name}: range min {format_value(low)} > max {format_value(high)}")
    if scale == "log" and low <= 0:
        raise SpaceError(f"{name}: a log scale needs positive bounds, got min {low}")
    _check_value(name, low, "min")
    _check_value(name, high, "max")
    if scale == "log1m" and not (0 <= low and high < 1):
        raise SpaceError(f"{name}: a log1m scale samples 1 - value on a log scale and needs 0 <= min <= max < 1, got [{low:g}, {high:g}]")
    if scale == "int":
        return IntUniform(int(low), int(high))
    return SCALES[scale](float(low), float(high))


def parse_spec(name: str, spec: Any) -> Param:
    """One parameter from a command-line string or a TOML / JSON value.

    >>> parse_spec("beta", "log1m:0.9:0.999")
    Log1mUniform(low=0.9, high=0.999)
    >>> parse_spec("batch_norm", [True, False])
    Choice(values=(True, False))
    >>> parse_spec("optimizer", {"choices": ["adam", "momentum"]})
    Choice(values=('adam', 'momentum'))
    >>> parse_spec("units", {"scale": "int", "min": 50, "max": 100})
    IntUniform(low=50, high=100)
    """
    if isinstance(spec, dict):
        spec = {str(k).lower(): v for k, v in spec.items()}
        known = {"scale", "min", "max", "low", "high", "values", "choices"}
        extra = set(spec) - known
        if extra:
            raise SpaceError(f"{name}: unknown key(s) {', '.join(sorted(extra))}; use scale, min, max or values")
        values = spec.get("values", spec.get("choices"))
        scale = spec.get("scale", "choice" if values is not None else None)
        if scale is None:
            raise SpaceError(f"{name}: say which scale ({', '.join(SCALES)})")
        if values is not None and not isinstance(values, list):
            values = [values]
        return make_param(name, scale, spec.get("min", spec.get("low")), spec.get("max", spec.get("high")), values)
    if isinstance(spec, (list, tuple)):
        return make_param(name, "choice", values=list(spec))
    if isinstance(spec, str):
        head, sep, rest = spec.strip().partition(":")
        if sep and head.strip().lower() in SCALES:
            scale = head.strip().lower()
            if scale == "choice":
                return make_param(name, "choice", values=[v for v in rest.split(",") if v.strip()])
            bounds = rest.split(":")
            if len(bounds) != 2:
                raise SpaceError(f"{name}: write {scale}:MIN:MAX, got {spec!r}")
            return make_param(name, scale, bounds[0], bounds[1])
        if sep:
            raise SpaceError(f"{name}: unknown scale {head.strip()!r} in {spec!r}; known: {', '.join(SCALES)}")
    return make_param(name, "choice", values=[spec])


def param_from_json(data: dict) -> Param:
    """Read back :meth:`Param.to_json` (no domain checks: sweep.json was checked when written)."""
    scale = data["scale"]
    if scale == "choice":
        return Choice(tuple(data["values"]))
    return SCALES[scale](data["min"], data["max"])


# --------------------------------------------------------------------------- the space


class SearchSpace:
    """An ordered mapping of parameter name to :class:`Param`.

    >>> space = default_space()
    >>> list(space)
    ['lr', 'beta', 'units', 'layers', 'batch_norm']
    >>> space.describe()[:2]
    ['lr=log:0.0001:1', 'beta=log1m:0.9:0.999']
    """

    def __init__(self, params: dict[str, Param] | None = None):
        self.params: dict[str, Param] = dict(params or {})

    def __getitem__(self, name: str) -> Param:
        return self.params[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.params)

    def __len__(self) -> int:
        return len(self.params)

    def __contains__(self, name: object) -> bool:
        return name in self.params

    def items(self):
        return self.params.items()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SearchSpace) and self.params == other.params

    def __repr__(self) -> str:
        return f"SearchSpace({self.params!r})"

    def updated(self, other: "SearchSpace") -> "SearchSpace":
        """This space with ``other``'s parameters added or replacing ours."""
        return SearchSpace({**self.params, **other.params})

    def describe(self) -> list[str]:
        return [f"{name}={param.spec()}" for name, param in self.params.items()]

    def to_json(self) -> dict:
        return {name: param.to_json() for name, param in self.params.items()}

    # Optuna's view of the space (see trainer.search.params for the mapping)
    def distributions(self) -> dict[str, BaseDistribution]:
        """``{optuna name: distribution}``, what ``study.ask`` is given."""
        return {p.optuna_name(name): p.distribution() for name, p in self.params.items()}

    def from_optuna(self, optuna_params: dict[str, Any]) -> dict[str, Any]:
        """A configuration from an Optuna trial's params (``1-beta`` turned back into ``beta``)."""
        return {name: p.from_optuna(optuna_params[p.optuna_name(name)]) for name, p in self.params.items()
                if p.optuna_name(name) in optuna_params}

    def to_optuna(self, params: dict[str, Any]) -> dict[str, Any]:
        """A configuration as Optuna stores it (for ``study.enqueue_trial``)."""
        return {self.params[name].optuna_name(name) if name in self.params else name:
                self.params[name].to_optuna(value) if name in self.params else value for name, value in params.items()}

    @classmethod
    def from_json(cls, data: dict) -> "SearchSpace":
        return cls({name: param_from_json(spec) for name, spec in data.items()})


def default_space() -> SearchSpace:
    """The course's example: lr on a log scale, β on 1 - β's log scale, a few sizes, batch norm."""
    return parse_param_args([
        "lr=log:1e-4:1",
        "beta=log1m:0.9:0.999",
        "units=int:50:100",
        "layers=int:2:4",
        "batch_norm=choice:true,false",
    ])


def parse_mapping(data: dict, source: str = "space") -> SearchSpace:
    """A space from a parsed file: ``{name: spec}``, optionally under a ``params`` table."""
    if not isinstance(data, dict):
        raise SpaceError(f"{source}: expected a table of parameters")
    if "params" in data:
        extra = set(data) - {"params"}
        if extra:
            raise SpaceError(f"{source}: unexpected top-level key(s) {', '.join(sorted(extra))} next to [params]")
        data = data["params"]
        if not isinstance(data, dict):
            raise SpaceError(f"{source}: [params] must be a table")
    if not data:
        raise SpaceError(f"{source}: no parameters")
    params: dict[str, Param] = {}
    for raw_name, spec in data.items():
        name = _canonical_name(raw_name)
        if name in params:
            raise SpaceError(f"{source}: {name} is given twice")
        params[name] = parse_spec(name, spec)
    return SearchSpace(params)


def parse_space_file(path: Path | str) -> SearchSpace:
    """A space from a ``.toml`` or ``.json`` file (``.yaml`` too when PyYAML is installed).

    A TOML space::

        [params]
        lr = "log:1e-4:1"                                  # the command-line form, or
        beta = { scale = "log1m", min = 0.9, max = 0.999 }
        units = { scale = "int", min = 50, max = 100 }
        optimizer = ["adam", "momentum"]                   # a list is a choice
        decay = "none"                                     # a single value is fixed
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise SpaceError(f"cannot read the space file {path}: {e.strerror or e}") from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif suffix == ".json":
            data = json.loads(text)
        elif suffix in (".yaml", ".yml"):
            try:
                import yaml  # type: ignore[import-not-found]
            except ImportError:
                raise SpaceError(f"{path}: YAML needs PyYAML (pip install pyyaml); or write the space as TOML or JSON") from None
            data = yaml.safe_load(text)
        else:
            raise SpaceError(f"{path}: unknown space file type {suffix or '(none)'}; use .toml or .json")
    except SpaceError:
        raise
    except Exception as e:  # tomllib.TOMLDecodeError, json.JSONDecodeError, yaml.YAMLError
        raise SpaceError(f"{path}: not valid {suffix.lstrip('.').upper()}: {e}") from None
    return parse_mapping(data, str(path))


def parse_param_args(items: Iterable[str]) -> SearchSpace:
    """A space from ``NAME=SPEC`` strings (``--param lr=log:1e-4:1``)."""
    params: dict[str, Param] = {}
    for item in items:
        name, sep, spec = item.partition("=")
        if not sep or not spec.strip():
            raise SpaceError(f"--param wants NAME=SPEC (for example lr=log:1e-4:1), got {item!r}")
        key = _canonical_name(name)
        params[key] = parse_spec(key, spec)
    return SearchSpace(params)


def build_space(space_file: Path | str | None = None, param_args: Iterable[str] = ()) -> SearchSpace:
    """The sweep's space: the file (or the default space), then each ``--param`` on top."""
    base = parse_space_file(space_file) if space_file else default_space()
    return base.updated(parse_param_args(param_args))


# --------------------------------------------------------------------------- from a sample to a trial


def resolve_trial(params: dict[str, Any]) -> dict[str, Any]:
    """A sampled configuration as the trainer will run it, checked the way ``panda train`` checks.

    An optimizer without a β (plain sgd: :func:`trainer.contract.hparams.has_beta`) drops a sampled β.

    >>> resolve_trial({"optimizer": "sgd", "lr": 0.1, "beta": 0.95})
    {'optimizer': 'sgd', 'lr': 0.1}
    >>> resolve_trial({"decay": "exponential", "decay_rate": 2.0})
    Traceback (most recent call last):
    ...
    trainer.search.space.SpaceError: exponential decay needs a rate in (0, 1], got 2.0
    """
    out = dict(params)
    if "optimizer" in out and not has_beta(out["optimizer"]):
        out.pop("beta", None)
    known = {k: v for k, v in out.items() if k in DOMAINS}
    try:
        Hyperparameters(**known).validate()
    except (ValueError, TypeError) as e:
        raise SpaceError(str(e)) from None
    return out


def train_flags(params: dict[str, Any]) -> list[str]:
    """The ``panda train`` flags for a sampled configuration (from the one table of options).

    >>> train_flags({"lr": 0.003, "batch_norm": False, "batch_size": 32})
    ['--lr', '0.003', '--no-batch-norm', '--batch-size', '32']
    """
    return to_flags(HYPERPARAMETERS, params)
