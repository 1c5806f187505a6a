"""The search space: parsing from files and the command line, and the errors for bad input."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import subprocess
import sys

import pytest

from trainer.search.space import (
    Choice,
    FloatUniform,
    IntUniform,
    Log1mUniform,
    LogUniform,
    SearchSpace,
    SpaceError,
    build_space,
    default_space,
    parse_param_args,
    parse_space_file,
    resolve_trial,
    train_flags,
)


def test_command_line_specs_build_each_parameter_type():
    space = parse_param_args([
        "lr=log:1e-4:1", "beta=log1m:0.9:0.999", "units=int:50:100", "dropout=float:0:0.5",
        "optimizer=choice:adam,momentum", "batch-norm=choice:true,false", "decay=none",
    ])
    assert space["lr"] == LogUniform(1e-4, 1.0)
    assert space["beta"] == Log1mUniform(0.9, 0.999)
    assert space["units"] == IntUniform(50, 100)
    assert space["dropout"] == FloatUniform(0.0, 0.5)
    assert space["optimizer"] == Choice(("adam", "momentum"))
    assert space["batch_norm"] == Choice((True, False))  # hyphen or underscore
    assert space["decay"] == Choice(("none",)) and space["decay"].fixed


def test_toml_file_with_every_form(tmp_path):
    path = tmp_path / "space.toml"
    path.write_text(
        """
[params]
lr = "log:1e-4:1"
beta = { scale = "log1m", min = 0.9, max = 0.999 }
units = { scale = "int", low = 50, high = 100 }
layers = { scale = "int", min = 2, max = 4 }
optimizer = ["adam", "momentum"]
batch_norm = { choices = [true, false] }
dropout = 0.1
"""
    )
    space = parse_space_file(path)
    assert list(space) == ["lr", "beta", "units", "layers", "optimizer", "batch_norm", "dropout"]
    assert space["beta"] == Log1mUniform(0.9, 0.999)
    assert space["units"] == IntUniform(50, 100)
    assert space["optimizer"] == Choice(("adam", "momentum"))
    assert space["batch_norm"] == Choice((True, False))
    assert space["dropout"] == Choice((0.1,))


def test_json_file_without_params_table(tmp_path):
    path = tmp_path / "space.json"
    path.write_text(json.dumps({"lr": {"scale": "log", "min": 1e-3, "max": 0.1}, "batch_size": [32, 64, 128]}))
    space = parse_space_file(path)
    assert space["lr"] == LogUniform(1e-3, 0.1)
    assert space["batch_size"] == Choice((32, 64, 128))


def test_yaml_is_parsed_or_refused_with_a_clear_reason(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("lr: log:1e-4:1\n")
    if importlib.util.find_spec("yaml") is None:
        with pytest.raises(SpaceError, match="PyYAML"):
            parse_space_file(path)
    else:
        assert parse_space_file(path)["lr"] == LogUniform(1e-4, 1.0)


def test_param_args_override_the_file_and_the_default(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('lr = "log:1e-4:1"\nunits = "int:10:20"\n')
    space = build_space(path, ["units=int:30:40", "optimizer=sgd"])
    assert space["units"] == IntUniform(30, 40) and space["lr"] == LogUniform(1e-4, 1.0)
    assert space["optimizer"] == Choice(("sgd",))
    default = build_space(None, ["lr=log:1e-3:1e-1"])
    assert default["lr"] == LogUniform(1e-3, 0.1)
    assert set(default) == set(default_space())


@pytest.mark.parametrize(
    "spec, message",
    [
        ("lr=log:1:1e-4", "lr: range min 1 > max 0.0001"),
        ("units=int:100:50", "units: range min 100 > max 50"),
        ("decay_rate=log:0:1", "decay_rate: a log scale needs positive bounds"),
        ("epsilon=log:-1:1", "epsilon: a log scale needs positive bounds"),
        ("beta=log1m:0.9:1.0", r"beta: max must be in \[0, 1\)"),
        ("beta=float:-0.1:0.9", r"beta: min must be in \[0, 1\)"),
        ("beta2=choice:0.9,1.5", r"beta2: value must be in \[0, 1\)"),
        ("learning_rate=log:1e-4:1", "unknown parameter 'learning_rate' \\(did you mean 'lr'\\?\\)"),
        ("colour=red", "unknown parameter 'colour'"),
        ("units=float:50:100", "units: cannot be searched on a float scale"),
        ("optimizer=choice:adam,lbfgs", "optimizer: value must be one of"),
        ("lr=cubic:1:2", "lr: unknown scale 'cubic'"),
        ("lr=log:1e-4", "lr: write log:MIN:MAX"),
        ("lr", "--param wants NAME=SPEC"),
        ("lr=log:1e-4:100", r"lr: max must be in \(0, 10\]"),
        ("units=int:1.5:3", "units: takes whole numbers"),
        ("batch_norm=maybe", "batch_norm: expected true or false"),
    ],
)
def test_bad_input_is_a_clear_error(spec, message):
    with pytest.raises(SpaceError, match=message):
        parse_param_args([spec])


def test_bad_files(tmp_path):
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("lr = [")
    with pytest.raises(SpaceError, match="not valid TOML"):
        parse_space_file(bad_toml)
    extra_key = tmp_path / "extra.toml"
    extra_key.write_text('lr = { scale = "log", min = 1e-4, max = 1, step = 2 }')
    with pytest.raises(SpaceError, match="unknown key\\(s\\) step"):
        parse_space_file(extra_key)
    text_file = tmp_path / "x.txt"
    text_file.write_text("lr = 1")
    with pytest.raises(SpaceError, match="unknown space file type .txt"):
        parse_space_file(text_file)
    with pytest.raises(SpaceError, match="cannot read"):
        parse_space_file(tmp_path / "missing.toml")


def test_json_round_trip_keeps_the_space():
    space = parse_param_args(["lr=log:1e-4:1", "units=int:50:100", "batch_norm=choice:true,false", "dropout=float:0:0.3"])
    again = SearchSpace.from_json(json.loads(json.dumps(space.to_json())))
    assert again == space
    assert again.describe() == space.describe()


def test_sgd_trials_drop_beta_and_flags_match_panda_train():
    assert resolve_trial({"optimizer": "sgd", "beta": 0.95, "lr": 0.1}) == {"optimizer": "sgd", "lr": 0.1}
    assert resolve_trial({"optimizer": "momentum", "beta": 0.95})["beta"] == 0.95
    flags = train_flags({"lr": 0.00123456, "batch_norm": True, "units": 64, "optimizer": "adam", "decay_rate": 0.5})
    assert flags == ["--lr", "0.00123456", "--batch-norm", "--units", "64", "--optimizer", "adam", "--decay-rate", "0.5"]
    assert train_flags({"batch_norm": False}) == ["--no-batch-norm"]

    from trainer.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["train", *train_flags({"lr": 0.00123456, "beta": 0.99, "batch_size": 32, "batch_norm": False, "layers": 3})])
    assert (args.lr, args.beta, args.batch_size, args.batch_norm, args.layers) == (0.00123456, 0.99, 32, False, 3)


def test_cli_refuses_bad_input_before_anything_is_written(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "app", "sweep", "--run-dir", str(tmp_path), "--name", "s", "--param", "lr=log:1:1e-4"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "panda sweep: error: lr: range min 1 > max 0.0001" in result.stderr
    assert not (tmp_path / "s").exists()


def test_cli_refuses_a_missing_data_file_before_any_trial(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "app", "sweep", "--run-dir", str(tmp_path), "--name", "s", "--dataset", str(tmp_path / "nope.npz")],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2 and "no data file" in result.stderr
    assert not (tmp_path / "s").exists()


def test_sweep_accepts_every_data_set_panda_train_accepts(tmp_path):
    """The drift bug: `panda sweep --dataset` refused tfds: names and image folders that `panda train` takes."""
    folder = tmp_path / "photos"
    (folder / "cats").mkdir(parents=True)
    for spec, extra in (("tfds:mnist", ["--data-dir", str(tmp_path)]), (str(folder) + "/", []), ("digits", [])):
        result = subprocess.run(
            [sys.executable, "-m", "app", "sweep", "--run-dir", str(tmp_path), "--name", "s", "--trials", "2",
             "--dataset", spec, *extra, "--dry-run"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, (spec, result.stderr)
        assert len(result.stdout.splitlines()) == 2
    refused = subprocess.run([sys.executable, "-m", "app", "sweep", "--run-dir", str(tmp_path), "--dataset", "digits",
                              "--label", "y", "--dry-run"], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "--label only applies to .csv" in refused.stderr


def test_one_table_rules_commands_flags_and_search_ranges():
    """Each hyperparameter's range is written once: a command, a flag and a search range agree on it."""
    import argparse

    from trainer.contract.commands import CommandError, validate
    from trainer.contract.config import add_train_flags
    from trainer.contract.hparams import HYPERPARAMETERS, STEERABLE, Hyperparameters

    parser = argparse.ArgumentParser()
    add_train_flags(parser)
    for command, opt in STEERABLE.items():
        bad = opt.high * 2 if opt.high is not None else -1
        with pytest.raises(CommandError):
            validate({"id": "x", "cmd": command, "value": bad})
        with pytest.raises(SystemExit):
            parser.parse_args([opt.flag, str(bad)])
        with pytest.raises(SpaceError):
            parse_param_args([f"{opt.name}=choice:{bad}"])
    assert set(HYPERPARAMETERS) == {f.name for f in dataclasses.fields(Hyperparameters)}
