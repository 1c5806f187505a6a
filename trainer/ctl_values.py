"""What ``panda ctl`` sends: a command's value built from the command line.

A value is JSON as the trainer reads it (:func:`json_value`: ``1e-3`` is a number,
``ckpt-00003`` text); ``find-lr`` and ``fork`` build theirs from flags (:data:`EXPLORE_VALUES`).
"""

from __future__ import annotations

import itertools
import json

__all__ = ["EXPLORE_VALUES", "fork_candidates", "json_object", "json_value"]


def _find_lr_value(args) -> dict:
    """``find-lr --steps N --min A --max B`` as the command's value (unset flags: the trainer's defaults)."""
    given = {"steps": args.steps, "min": args.lr_min, "max": args.lr_max}
    return {k: v for k, v in given.items() if v is not None}


def fork_candidates(lr: str | None, beta: str | None, batch_size: str | None) -> list[dict]:
    """Every combination of the comma-separated values given (the trainer refuses more than 8).

    >>> fork_candidates("0.03,0.01", None, "32,64")
    [{'lr': 0.03, 'batch_size': 32}, {'lr': 0.03, 'batch_size': 64}, {'lr': 0.01, 'batch_size': 32}, {'lr': 0.01, 'batch_size': 64}]
    """
    lists = [(key, [json_value(v.strip()) for v in text.split(",") if v.strip()])
             for key, text in (("lr", lr), ("beta", beta), ("batch_size", batch_size)) if text]
    if not lists:
        return []
    return [dict(zip([k for k, _ in lists], combo)) for combo in itertools.product(*[v for _, v in lists])]


def _fork_value(args) -> dict:
    value = {"candidates": fork_candidates(args.lr, args.beta, args.batch_size), "steps": args.steps}
    if args.pick:
        value["pick"] = args.pick
    return value


#: Commands whose value ``panda ctl`` builds from flags (or takes as a JSON object).
EXPLORE_VALUES = {"find_lr": _find_lr_value, "fork": _fork_value}


def json_object(text: str):
    """A value given as JSON text, or the text itself when it is not JSON (the trainer says why)."""
    try:
        return json.loads(text)
    except ValueError:
        return text  # the trainer says why it is not an object


def json_value(text: str | None):
    """A command-line value as JSON would carry it: a number when it reads as one, else the text.

    >>> json_value("1e-3"), json_value("128"), json_value("ckpt-00003"), json_value("nan")
    (0.001, 128, 'ckpt-00003', 'nan')
    """
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else text
