"""Trials as Ray tasks on a real local Ray instance (started once for this module, 2 CPUs).

A real digits sweep of 4 trials, 2 at a time, with one trial steered by hand through its run
directory while it runs under Ray; and the bad inputs of ``--backend ray``.
"""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
import ray  # the test extra installs Ray: never skipped

import conftest
from trainer.contract.rundir import RunDir, current_line
from trainer.search.backends import RayBackend
from trainer.search.runner import SweepRunner, SweepSettings
from trainer.search.space import parse_param_args
from trainer.search.study import open_study
from trainer.search.sweepdir import SweepDir

PANDA = [sys.executable, "-m", "app"]


@pytest.fixture(scope="module")
def ray_instance():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def overlap(trials: dict) -> int:
    edges = sorted([(t["started"], 1) for t in trials.values()] + [(t["ended"], -1) for t in trials.values()])
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


@pytest.mark.timeout(300)
@pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning")
def test_ray_sweep_four_trials_two_at_a_time_with_one_steered_by_hand(tmp_path, ray_instance):
    sweep = SweepDir(tmp_path / "ray-sweep")
    settings = SweepSettings(trials=4, parallel=2, epochs=4, seed=1, backend="ray", cpus_per_trial=1,
                             run_options={"pace": 1.0, "checkpoint_every": 1})
    space = parse_param_args(["lr=log:1e-3:1e-1", "units=int:16:32", "layers=int:1:2"])
    runner = SweepRunner(sweep, space, settings, backend=RayBackend(cpus_per_trial=1), poll_seconds=0.2)
    assert not runner.backend.started  # it joined this module's instance
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.setdefault("state", runner.run()), daemon=True)
    thread.start()
    try:
        steered = RunDir(sweep.path / "trial-0001")
        conftest.wait_for(lambda: steered.metrics_path.exists() and steered.read_metrics(), tmp_path, 120,
                          "trial-0001's first epoch under Ray")
        command_id = steered.send_command("set_lr", 0.0005, source="test")
        answer = conftest.answer(steered, command_id, timeout=60)
        assert answer["event"] == "applied", answer
    finally:
        thread.join(timeout=240)
    assert outcome.get("state") == "finished"

    trials = sweep.trials()
    assert sorted(trials) == [f"trial-000{i}" for i in range(1, 5)]
    assert all(t["state"] == "finished" and t["backend"] == "ray" for t in trials.values()), trials
    assert overlap(trials) <= 2
    line = current_line(steered.read_metrics())
    assert line[-1]["lr"] == pytest.approx(0.0005)  # the nudge reached the trainer running under Ray
    assert line[0]["lr"] == pytest.approx(trials["trial-0001"]["params"]["lr"])
    # Optuna judged what the trial really did: its intermediate values are the run directory's curve
    study = open_study(sweep.path, sweep.name, create=False)
    frozen = {t.user_attrs["panda_trial"]: t for t in study.get_trials()}
    assert frozen["trial-0001"].intermediate_values == {r["epoch"]: r["val_accuracy"] for r in line}
    assert all(t.state.name == "COMPLETE" for t in frozen.values()) and len(frozen) == 4
    assert frozen["trial-0001"].value == pytest.approx(max(r["val_accuracy"] for r in line))
    for name in trials:
        config = RunDir(sweep.path / name).read_config()
        assert config["threads"] == 1  # TensorFlow limited to the trial's one CPU


def test_unreachable_address_is_a_clear_error_before_any_trial(tmp_path):
    result = subprocess.run([*PANDA, "sweep", "--run-dir", str(tmp_path), "--name", "s", "--trials", "2",
                             "--backend", "ray", "--address", "127.0.0.1:9"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "cannot reach the Ray cluster at 127.0.0.1:9" in result.stderr
    assert not (tmp_path / "s").exists()


def test_backend_ray_without_ray_names_the_extra(tmp_path):
    code = ("import sys; sys.modules['ray'] = None\n"  # as if Ray were not installed
            "from app.serving.panda_cli import main\n"
            f"sys.exit(main(['sweep', '--run-dir', {str(tmp_path)!r}, '--name', 's', '--backend', 'ray']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--backend ray needs Ray: pip install 'panda-babysitter[ray]'" in result.stderr
    assert not (tmp_path / "s").exists()
