"""``panda demo --scenario``: each scenario, trained briefly on digits, does what its hint says."""

from __future__ import annotations

import numpy as np
import pytest

from app.serving.scenarios import DEFAULT, PACE, SCENARIOS, hint, run_name, scenario_of
from conftest import event_of, wait_for

pytestmark = pytest.mark.timeout(300)


def _train(start_trainer, name: str, epochs: int):
    scenario = SCENARIOS[name]
    config = scenario.config(epochs=epochs, pace=0.0)
    assert config.validate() and config.pace == 0.0
    return start_trainer(name, epochs=epochs, **scenario.hparams)


def _rises(values) -> int:
    return int((np.diff(values) > 0).sum())


def test_every_scenario_is_paced_for_minutes_and_named_so_the_page_finds_its_hint():
    assert DEFAULT == "healthy" and set(SCENARIOS) == {"healthy", "bouncing", "plateau", "diverge"}
    for name, scenario in SCENARIOS.items():
        config = scenario.config()
        assert config.validate().pace == PACE and config.epochs * config.pace >= 120  # minutes, not seconds
        assert scenario_of(run_name(name)) == name and hint(run_name(name)) == scenario.hint
        assert len(scenario.hint) < 140 and "\n" not in scenario.hint  # one line
    assert scenario_of("demo-20250101-120000") is None and hint("my-run") is None


def test_healthy_learns_smoothly_and_bouncing_bounces_at_its_rate(start_trainer):
    healthy, bouncing = _train(start_trainer, "healthy", 12), _train(start_trainer, "bouncing", 12)
    assert healthy.join() == "finished" and bouncing.join() == "finished"
    good, bad = healthy.run.read_metrics(), bouncing.run.read_metrics()
    assert good[-1]["val_loss"] < 0.2 and _rises([r["val_loss"] for r in good]) <= 1  # down, epoch after epoch
    bad_loss = [r["loss"] for r in bad]
    assert _rises(bad_loss) >= 3 and max(bad_loss[4:]) > 2 * min(bad_loss)  # up and down, well above its best
    assert _rises([r["val_loss"] for r in bad]) >= 2
    assert min(r["val_loss"] for r in bad) > min(r["val_loss"] for r in good)


def test_plateau_barely_moves_until_the_rate_goes_up(start_trainer):
    run = _train(start_trainer, "plateau", 6)
    assert run.join() == "finished"
    losses = [r["loss"] for r in run.run.read_metrics()]
    assert losses[-1] > 0.9 * losses[0]  # under 10 % better after 6 epochs: a plateau


def test_diverge_is_caught_rolled_back_and_paused(start_trainer):
    run = _train(start_trainer, "diverge", 20)
    status = wait_for(lambda: (s := run.run.read_status() or {}).get("state") == "diverged" and s, run.run.path,
                      timeout=120, what="the divergence guard")
    diverged = event_of(run.run, "diverged")
    assert diverged["epoch"] <= 3 and "loss" in diverged["reason"]
    assert "Lower the learning rate" in status["message"]
    assert run.send("scale_lr", 0.01)["event"] == "applied"  # the hint's fix is accepted
    run.run.send_command("stop", source="test")
    assert run.join() == "finished"
