"""Command validation and hyperparameter rules, without TensorFlow."""

from __future__ import annotations

import pytest

from trainer.contract.commands import CommandError, validate
from trainer.contract.hparams import Hyperparameters


@pytest.mark.parametrize("record, value", [
    ({"id": "a", "cmd": "set_lr", "value": "1e-3"}, 1e-3),
    ({"id": "a", "cmd": "scale_lr", "value": 0.5}, 0.5),
    ({"id": "a", "cmd": "set_beta", "value": 0}, 0.0),
    ({"id": "a", "cmd": "set_batch_size", "value": "128"}, 128),
    ({"id": "a", "cmd": "rewind", "value": 3}, "3"),
    ({"id": "a", "cmd": "pause"}, None),
])
def test_valid_commands(record, value):
    assert validate(record).value == value


@pytest.mark.parametrize("record, reason", [
    ({"cmd": "pause"}, "id"),
    ({"id": "", "cmd": "pause"}, "id"),
    ({"id": "a", "cmd": "set_lr", "value": True}, "number"),
    ({"id": "a", "cmd": "set_lr", "value": 11}, "absurd"),
    ({"id": "a", "cmd": "set_batch_size", "value": -3}, "at least 1"),
    ({"id": "a", "cmd": "rewind", "value": " "}, "checkpoint name"),
    ({"id": "a", "cmd": "resume", "value": 1}, "no value"),
    ({"id": "a"}, "unknown command"),
    ("pause", "JSON object"),
])
def test_invalid_commands(record, reason):
    with pytest.raises(CommandError, match=reason if reason != "[0, 1)" else r"\[0, 1\)"):
        validate(record)


def test_decay_schedules_follow_the_course_formulas():
    inverse = Hyperparameters(lr=0.2, decay="inverse", decay_rate=1.0)
    assert [inverse.decayed_lr(0.2, t) for t in (0, 1, 3)] == pytest.approx([0.2, 0.1, 0.05])
    exponential = Hyperparameters(lr=0.2, decay="exponential", decay_rate=0.95)
    assert exponential.decayed_lr(0.2, 2) == pytest.approx(0.2 * 0.95**2)
    assert Hyperparameters(decay="none").decayed_lr(0.3, 10) == 0.3


@pytest.mark.parametrize("changes, message", [
    ({"optimizer": "sgd", "beta": 0.9}, "no beta"),
    ({"optimizer": "lion"}, "unknown optimizer"),
    ({"decay": "exponential", "decay_rate": 1.5}, "exponential"),
    ({"dropout": 1.0}, "dropout"),
    ({"units": 0}, "units"),
])
def test_bad_hyperparameters(changes, message):
    with pytest.raises(ValueError, match=message):
        Hyperparameters(**changes).validate()


def test_beta_defaults_to_none_for_sgd_only():
    assert Hyperparameters(optimizer="sgd").beta is None
    assert Hyperparameters(optimizer="momentum").beta == 0.9
