"""Declared options: one table entry says everything about a setting, and the rest is derived.

A setting of a run (a hyperparameter such as the learning rate, or a run option such as the
number of epochs) is declared once, as a dataclass field made with :func:`option`. From that one
entry come its ``panda train`` flag (:func:`add_flags`), the check of a value typed on the command
line, sent as a command or read from a file (:meth:`Option.check`), the flags that reproduce a
value (:func:`to_flags`), the scales a sweep may search it on (:attr:`Option.scales`), and the
dashboard's controls. Adding a knob is one entry.

>>> from dataclasses import dataclass
>>> @dataclass
... class Demo:
...     rate: float = option(0.1, "float", "how fast", low=0, low_open=True, high=1)
...     depth: int = option(2, "int", "how deep", low=0, high=8)
>>> OPTIONS = options_of(Demo)
>>> OPTIONS["rate"].check("0.5"), OPTIONS["rate"].flag
(0.5, '--rate')
>>> OPTIONS["rate"].check(0)
Traceback (most recent call last):
...
trainer.contract.options.OptionError: rate must be > 0, got 0.0
>>> to_flags(OPTIONS, {"rate": 0.25, "depth": 3})
['--rate', '0.25', '--depth', '3']
"""

from __future__ import annotations

import argparse
import math
from dataclasses import MISSING, Field, dataclass, field, fields, replace
from typing import Any, Iterable, Mapping

#: The kinds of value an option takes.
KINDS = ("float", "int", "choice", "bool", "text")
#: The sweep scales each kind may be searched on (see trainer.search.space).
SCALES_BY_KIND = {"float": ("log", "log1m", "float", "choice"), "int": ("int", "choice"),
                  "choice": ("choice",), "bool": ("choice",), "text": ()}
#: The largest whole number any option accepts: beyond it, a value is a typo, not a choice.
MAX_INT = 2**31 - 1


@dataclass(frozen=True)
class Option:
    """One setting: its kind, range, flag, help text and how it may change."""

    kind: str
    help: str
    label: str = ""  # how messages name it ("learning rate"); the field name by default
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple = ()
    optional: bool = False  # None is a valid value (no beta for plain SGD)
    steer: str | None = None  # the command that changes it while the run trains
    optimizers: tuple[str, ...] | None = None  # applies only to these optimizers
    search: bool = False  # a sweep may vary it
    scale: str | None = None  # how its values are spaced (log, log1m, float): sweeps, PBT's steps, the controls
    metavar: str | None = None
    name: str = ""  # set by options_of from the field's name

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def scales(self) -> tuple[str, ...]:
        return SCALES_BY_KIND[self.kind] if self.search else ()

    @property
    def range_text(self) -> str:
        """The accepted range in interval notation, e.g. ``(0, 10]``."""
        if self.kind == "choice":
            return "one of " + ", ".join(map(str, self.choices))
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:g}"
        return f"{'(' if self.low_open or self.low is None else '['}{low}, {high}{')' if self.high_open or self.high is None else ']'}"

    def check(self, value: Any) -> Any:
        """``value`` as this option's type, or :class:`OptionError` saying why it cannot be.

        Strings are parsed (a flag's text, a form field); booleans are never numbers; every
        number is finite and inside the range; a whole-number option takes no fractions.
        """
        what = self.label or self.name
        if value is None:
            if self.optional:
                return None
            raise OptionError(what, "needs a value")
        if self.kind == "text":
            if not isinstance(value, str):
                raise OptionError(what, f"must be text, got {short_repr(value)}")
            return value
        if self.kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower() if isinstance(value, (str, int)) else None
            if text in ("true", "on", "yes", "1"):
                return True
            if text in ("false", "off", "no", "0"):
                return False
            raise OptionError(what, f"must be true or false, got {short_repr(value)}")
        if self.kind == "choice":
            text = value.strip().lower() if isinstance(value, str) else value
            if not isinstance(text, str) or text not in self.choices:
                raise OptionError(what, f"must be one of {', '.join(self.choices)}, got {short_repr(value)}",
                                  message=f"unknown {what} {short_repr(value)} (choose from {', '.join(self.choices)})")
            return text
        number = _number(value, what)
        if self.kind == "int":
            if number != math.floor(number):
                raise OptionError(what, f"must be a whole number, got {short_repr(value)}")
            number = int(number)
        if self.low is not None and (number <= self.low if self.low_open else number < self.low):
            if self.high_open:
                raise OptionError(what, f"must be in {self.range_text}, got {_show(number)}")
            bound = f"> {self.low:g}" if self.low_open else f"at least {self.low:g}" if self.kind == "int" else f">= {self.low:g}"
            raise OptionError(what, f"must be {bound}, got {_show(number)}")
        if self.high is not None and (number >= self.high if self.high_open else number > self.high):
            if self.high_open:
                raise OptionError(what, f"must be in {self.range_text}, got {_show(number)}")
            raise OptionError(what, f"{_show(number)} is absurd (the limit is {self.high:g})")
        return number


class OptionError(ValueError):
    """A value an option cannot take: ``what`` names the option, ``reason`` says why."""

    def __init__(self, what: str, reason: str, message: str | None = None):
        self.what, self.reason = what, reason
        super().__init__(message or f"{what} {reason}")


def _number(value: Any, what: str) -> float:
    """A finite float from a number or its text; never from a bool, a list or a 300-digit int."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise OptionError(what, f"must be a number, got {short_repr(value)}")
    try:
        number = float(value.strip()) if isinstance(value, str) else float(value)
    except (ValueError, OverflowError):
        raise OptionError(what, f"must be a number, got {short_repr(value)}") from None
    if not math.isfinite(number):
        raise OptionError(what, f"must be finite, got {short_repr(value)}")
    return number


def _show(number: float) -> str:
    return str(number)


def short_repr(value: Any, limit: int = 40) -> str:
    """``repr(value)``, cut to ``limit`` characters: messages never echo a megabyte."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def option(default: Any, kind: str, help: str, **spec: Any) -> Field:
    """A dataclass field declared as an option (see the module's example)."""
    if kind not in KINDS:
        raise ValueError(f"unknown option kind {kind!r}")
    meta = {"option": Option(kind, help, **spec)}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def options_of(cls) -> dict[str, Option]:
    """The table of a dataclass's options, by field name, in declaration order."""
    return {f.name: replace(f.metadata["option"], name=f.name) for f in fields(cls) if "option" in f.metadata}


def defaults_of(cls) -> dict[str, Any]:
    """Each option's default value."""
    out = {}
    for f in fields(cls):
        if "option" in f.metadata:
            out[f.name] = f.default_factory() if f.default is MISSING else f.default
    return out


def argparse_type(check, name: str | None = None):
    """An argparse ``type`` from a check that raises ``ValueError``: its message becomes argparse's."""
    def parse(text: str):
        try:
            return check(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    parse.__name__ = name or getattr(check, "__name__", "value")  # argparse names the type in its messages
    return parse


def add_flags(parser: argparse.ArgumentParser, table: Mapping[str, Option], defaults: Mapping[str, Any],
              *, skip: Iterable[str] = ()) -> None:
    """One flag per option: ``--name`` with the option's check, help and default.

    A bool option gets ``--name`` / ``--no-name``; an optional one defaults to ``None`` here so
    the dataclass decides (beta: 0.9 unless the optimizer is sgd).
    """
    for name, opt in table.items():
        if name in skip:
            continue
        default = None if opt.optional else defaults.get(name)
        shown = "" if default is None else f" (default {default})"
        if opt.kind == "bool":
            parser.add_argument(opt.flag, dest=name, action=argparse.BooleanOptionalAction, default=default,
                                help=opt.help + shown)
        elif opt.kind == "choice":
            parser.add_argument(opt.flag, dest=name, choices=opt.choices, default=default, help=opt.help + shown)
        else:
            parser.add_argument(opt.flag, dest=name, type=argparse_type(opt.check, opt.kind), default=default,
                                metavar=opt.metavar or name.upper(), help=opt.help + shown)


def to_flags(table: Mapping[str, Option], values: Mapping[str, Any]) -> list[str]:
    """The flags that make :func:`add_flags`'s parser read ``values`` back (``None`` values left out).

    >>> from trainer.contract.hparams import HYPERPARAMETERS
    >>> to_flags(HYPERPARAMETERS, {"lr": 0.003, "batch_norm": False, "batch_size": 32})
    ['--lr', '0.003', '--no-batch-norm', '--batch-size', '32']
    """
    flags: list[str] = []
    for name, value in values.items():
        opt = table[name]
        if value is None:
            continue
        if opt.kind == "bool":
            flags.append(opt.flag if value else "--no-" + opt.flag[2:])
        else:
            flags += [opt.flag, repr(value) if isinstance(value, float) else str(value)]
    return flags
