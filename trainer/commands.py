"""The command vocabulary: what a client may ask a running trainer to do, and what is valid.

Clients append commands to ``commands.jsonl``; the trainer checks each with :func:`validate`
before acting and answers every one in ``events.jsonl``. Clients may call :func:`validate` too, to
refuse bad input before it reaches the file, but the trainer never trusts that they did.

>>> validate({"id": "c-1", "cmd": "set_lr", "value": "0.01"})
Command(id='c-1', cmd='set_lr', value=0.01)
>>> validate({"id": "c-2", "cmd": "set_lr", "value": -1})
Traceback (most recent call last):
...
trainer.commands.CommandError: learning rate must be > 0, got -1.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

#: The largest learning rate accepted; anything above is a typo, not a choice.
MAX_LR = 10.0
#: The largest batch size accepted.
MAX_BATCH_SIZE = 1 << 20


class CommandError(ValueError):
    """A command that cannot be applied, with the reason a user should read."""


@dataclass(frozen=True)
class Command:
    id: str
    cmd: str
    value: Any = None


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool):
        raise CommandError(f"{what} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CommandError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise CommandError(f"{what} must be finite, got {number}")
    return number


def check_lr(value: Any) -> float:
    lr = _number(value, "learning rate")
    if lr <= 0:
        raise CommandError(f"learning rate must be > 0, got {lr}")
    if lr > MAX_LR:
        raise CommandError(f"learning rate {lr} is absurd (the limit is {MAX_LR})")
    return lr


def check_scale(value: Any) -> float:
    factor = _number(value, "scale factor")
    if factor <= 0:
        raise CommandError(f"scale factor must be > 0, got {factor}")
    return factor


def check_beta(value: Any) -> float:
    beta = _number(value, "beta")
    if not 0.0 <= beta < 1.0:
        raise CommandError(f"beta must be in [0, 1), got {beta}")
    return beta


def check_batch_size(value: Any) -> int:
    size = _number(value, "batch size")
    if size != int(size):
        raise CommandError(f"batch size must be a whole number, got {value!r}")
    if size < 1:
        raise CommandError(f"batch size must be at least 1, got {int(size)}")
    if size > MAX_BATCH_SIZE:
        raise CommandError(f"batch size {int(size)} is absurd (the limit is {MAX_BATCH_SIZE})")
    return int(size)


def check_checkpoint_name(value: Any) -> str:
    if not isinstance(value, (str, int)) or isinstance(value, bool) or str(value).strip() == "":
        raise CommandError(f"rewind needs a checkpoint name, got {value!r}")
    return str(value).strip()


def _no_value(value: Any) -> None:
    if value is not None:
        raise CommandError(f"this command takes no value, got {value!r}")
    return None


#: name -> value checker. ``None`` value means the command takes none.
COMMANDS: dict[str, Callable[[Any], Any]] = {
    "set_lr": check_lr,
    "scale_lr": check_scale,
    "set_beta": check_beta,
    "set_batch_size": check_batch_size,
    "pause": _no_value,
    "resume": _no_value,
    "stop": _no_value,
    "checkpoint": _no_value,
    "rewind": check_checkpoint_name,
}

#: Commands that carry a value.
VALUED = ("set_lr", "scale_lr", "set_beta", "set_batch_size", "rewind")


def validate(record: Any) -> Command:
    """Check one line of ``commands.jsonl``; raise :class:`CommandError` with the reason."""
    if not isinstance(record, dict):
        raise CommandError("a command must be a JSON object")
    command_id = record.get("id")
    if not isinstance(command_id, str) or not command_id:
        raise CommandError("a command needs a non-empty string 'id'")
    name = record.get("cmd")
    if name not in COMMANDS:
        known = ", ".join(COMMANDS)
        raise CommandError(f"unknown command {name!r} (known: {known})")
    if name in VALUED and record.get("value") is None:
        raise CommandError(f"{name} needs a value")
    return Command(command_id, name, COMMANDS[name](record.get("value")))
