"""``panda app`` and ``panda demo``: safe defaults, refused exposure, the trainer's command line."""

from __future__ import annotations

import pytest

from app.serving import panda_cli as cli
from app.serving import server
from app.serving.launch import LaunchError, start_run
from trainer.contract.config import TrainConfig, trainer_argv
from trainer.contract.hparams import Hyperparameters

pytestmark = pytest.mark.timeout(60)


def test_the_projects_streamlit_settings_travel_as_flags():
    flags = server.streamlit_flags()
    for expected in ("--server.headless=true", "--browser.gatherUsageStats=false", "--server.fileWatcherType=none"):
        assert expected in flags
    assert not any(f.startswith(("--server.address", "--server.port")) for f in flags)  # given per command


def test_flags_fall_back_to_safe_defaults_without_the_config_file(tmp_path):
    flags = server.streamlit_flags(tmp_path / "missing.toml")
    assert "--server.headless=true" in flags and "--browser.gatherUsageStats=false" in flags


def test_a_public_bind_without_a_token_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PANDA_TOKEN", raising=False)
    code = cli.main(["app", "--run-dir", str(tmp_path), "--host", "0.0.0.0"])
    assert code == 2
    assert "refusing to serve on 0.0.0.0 without a token" in capsys.readouterr().err


def test_parser_knows_app_and_demo():
    parser = cli.trainer_cli.build_parser(cli.PANDA_COMMANDS)
    args = parser.parse_args(["app", "--present", "--port", "9000"])
    assert args.present and args.port == 9000 and args.run_dir == "runs" and args.func is cli.cmd_app
    args = parser.parse_args(["demo"])
    assert args.scenario == "healthy" and args.epochs is None and args.pace is None and args.func is cli.cmd_demo
    assert parser.parse_args(["demo", "--scenario", "bouncing"]).scenario == "bouncing"
    with pytest.raises(SystemExit):
        parser.parse_args(["demo", "--scenario", "nope"])
    assert list(cli.PANDA_COMMANDS) == ["train", "ctl", "status", "export", "lesson", "replay", "sweep", "app", "demo"]


def test_the_new_run_form_becomes_a_checked_panda_train_command(tmp_path):
    config = TrainConfig(hparams=Hyperparameters(optimizer="momentum", lr=0.01, beta=0.95, batch_size=32,
                                                 batch_norm=False), epochs=7, pace=0.5)
    argv = trainer_argv(tmp_path, "r1", config, program=())
    assert argv[:5] == ["train", "--run-dir", str(tmp_path), "--name", "r1"]
    joined = " ".join(argv)
    for part in ("--optimizer momentum", "--lr 0.01", "--beta 0.95", "--batch-size 32", "--no-batch-norm",
                 "--epochs 7", "--pace 0.5", "--quiet"):
        assert part in joined
    parser = cli.trainer_cli.build_parser()
    parsed = parser.parse_args(argv)  # the trainer's own parser accepts it, and reads back the same configuration
    assert parsed.lr == 0.01 and parsed.beta == 0.95 and parsed.batch_norm is False
    assert TrainConfig.from_args(parsed).to_dict() == {**config.to_dict(), "argv": []}
    with pytest.raises(ValueError, match="sgd has no beta"):
        trainer_argv(tmp_path, "r2", TrainConfig(hparams=Hyperparameters(optimizer="sgd", beta=0.9), epochs=3))
    with pytest.raises(LaunchError, match="run name"):
        start_run(tmp_path, "../escape", TrainConfig(epochs=3))
    assert not (tmp_path / "r2").exists() and list(tmp_path.iterdir()) == []


def test_the_demos_trainer_stops_cleanly_through_its_stop_command(tmp_path, capsys):
    """``panda demo``'s Ctrl-C: a ``stop`` command (journaled, checkpointed), then launching.stop reaps it."""
    from conftest import wait_for
    from trainer.contract.rundir import RunDir

    launch = start_run(tmp_path, "demo", TrainConfig(epochs=1000, pace=0.2))
    run = RunDir(tmp_path / "demo")
    try:
        wait_for(lambda: run.exists() and run.read_metrics(), tmp_path, 50, "the demo's first epoch", recursive=True)
        cli._stop_trainer(run, launch.process, "test", timeout=40)
        assert launch.process.poll() == 0  # it finished on the command, not on a signal
        assert "Stopped the demo trainer; continue it with: panda train --resume" in capsys.readouterr().out
        assert any(e.get("event") == "applied" and e.get("cmd") == "stop" for e in run.read_events())
    finally:
        if launch.process.poll() is None:
            launch.process.kill()
            launch.process.wait()
