"""``panda ctl RUN find-lr|fork|undo``: flags become the command's value; the old ACTION VALUE form still works."""

from __future__ import annotations

import pytest

from trainer import cli
from trainer.contract.rundir import RunDir


@pytest.fixture
def run(tmp_path):
    run = RunDir(tmp_path / "r").create()
    run.config_path.write_text("{}")
    return run


def sent(run, *argv) -> dict:
    assert cli.main(["ctl", str(run.path), *argv]) == 0
    return run.read_commands()[-1]


def test_find_lr_flags(run):
    assert sent(run, "find-lr")["value"] == {}
    assert sent(run, "find-lr", "--steps", "50", "--min", "1e-5", "--max", "0.5")["value"] == \
        {"steps": 50, "min": 1e-5, "max": 0.5}
    assert sent(run, "find-lr", '{"steps": 20}')["value"] == {"steps": 20}


def test_fork_flags_make_every_combination(run):
    command = sent(run, "fork", "--lr", "0.03,0.01,0.003", "--steps", "200")
    assert command["cmd"] == "fork"
    assert command["value"] == {"candidates": [{"lr": 0.03}, {"lr": 0.01}, {"lr": 0.003}], "steps": 200}
    both = sent(run, "fork", "--lr", "0.01,0.003", "--beta", "0.9,0.99", "--steps", "5", "--pick", "best")["value"]
    assert len(both["candidates"]) == 4 and both["pick"] == "best" and {"lr": 0.003, "beta": 0.99} in both["candidates"]


def test_undo_and_the_old_form(run, capsys):
    assert sent(run, "undo")["cmd"] == "undo"
    assert sent(run, "set-lr", "0.001")["value"] == 0.001
    with pytest.raises(SystemExit):
        cli.main(["ctl", str(run.path), "undo", "3"])
    assert "takes no value" in capsys.readouterr().err
