"""Commands from the dashboard: checked before sending, followed until answered, never lost."""

from __future__ import annotations

import json
import threading

import pytest

from app.panels import controls
from app.serving.auth import Access, is_local
from conftest_app import make_run
from trainer.contract.commands import CommandError

pytestmark = pytest.mark.timeout(60)


def test_send_appends_one_checked_command_from_the_dashboard(tmp_path):
    run = make_run(tmp_path, "r")
    sent = controls.send(run, "set_lr", "0.001")
    (record,) = run.read_commands()
    assert record["id"] == sent.id and record["cmd"] == "set_lr" and record["value"] == 0.001
    assert record["source"] == "dashboard"


@pytest.mark.parametrize("cmd, value, hparams, reason", [
    ("set_lr", 0, {}, "must be > 0"),
    ("set_lr", 50, {}, "absurd"),
    ("set_beta", 1.0, {}, "[0, 1)"),
    ("set_beta", 0.5, {"optimizer": "sgd"}, "sgd has no beta"),
    ("scale_lr", 1e6, {"lr": 0.1}, "absurd"),
    ("set_batch_size", 0, {}, "at least 1"),
    ("pause", 3, {}, "takes no value"),
])
def test_bad_values_are_refused_before_reaching_the_file(tmp_path, cmd, value, hparams, reason):
    run = make_run(tmp_path, "r")
    with pytest.raises(CommandError, match=reason.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        controls.send(run, cmd, value, hparams=hparams)
    assert run.read_commands() == []


def test_rewind_needs_a_known_checkpoint(tmp_path):
    run = make_run(tmp_path, "r")
    with pytest.raises(CommandError, match="no checkpoint named"):
        controls.send(run, "rewind", "ckpt-00099", checkpoints=["ckpt-00001"])
    assert controls.send(run, "rewind", "ckpt-00001", checkpoints=["ckpt-00001"]).value == "ckpt-00001"


def test_outcome_is_pending_then_applied_or_rejected(tmp_path):
    run = make_run(tmp_path, "r")
    sent = controls.send(run, "pause")
    assert controls.outcome(sent, {}, "running").state == "pending"
    assert "queued" in controls.outcome(sent, {}, "not answering").text
    applied = {sent.id: {"event": "applied", "epoch": 3, "step": 70, "time": sent.time + 0.25}}
    result = controls.outcome(sent, applied, "paused")
    assert result.state == "applied" and "epoch 3" in result.text and "0.2 s" in result.text
    rejected = {sent.id: {"event": "rejected", "reason": "already paused"}}
    assert controls.outcome(sent, rejected, "paused").text.endswith("already paused")


def test_two_tabs_sending_at_once_lose_and_duplicate_nothing(tmp_path):
    run = make_run(tmp_path, "r")
    ids: list[list[str]] = [[], []]
    start = threading.Barrier(2)

    def tab(k: int) -> None:
        start.wait()
        for i in range(200):
            ids[k].append(controls.send(run, "set_lr", 0.001 * (k + 1)).id)

    threads = [threading.Thread(target=tab, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = run.commands_path.read_text().splitlines()
    assert len(lines) == 400
    written = [json.loads(line)["id"] for line in lines]  # every line whole
    assert sorted(written) == sorted(ids[0] + ids[1]) and len(set(written)) == 400


def test_log_scale_choices_and_nudges():
    assert controls.LR_CHOICES[0] == 1e-5 and controls.LR_CHOICES[-1] == 10.0  # the table's high
    assert 3e-4 in controls.LR_CHOICES
    assert controls.nearest(controls.LR_CHOICES, 0.0028, log=True) == 3e-3
    assert controls.beta_nudge(0.9, 0.5) == pytest.approx(0.95)
    assert controls.beta_nudge(0.9, 2.0) == pytest.approx(0.8)  # the table's rule: 1 − β × 2, on β's 1 − β scale
    assert controls.beta_nudge(0.3, 2.0) == 0.0  # 1 − 0.7 × 2 < 0: kept at the table's end, never a β of −0.4
    assert controls.beta_nudge(0.99, 0.5) == pytest.approx(0.995)  # 100 steps of memory become 200


def test_presenter_token():
    assert Access(None).can_steer(None)
    access = Access("s3cret", present=True)
    assert not access.can_steer(None) and not access.can_steer("wrong") and access.can_steer("s3cret")
    assert is_local("127.0.0.1") and is_local("localhost") and not is_local("0.0.0.0")
