"""The Steer panel, the rewind list, Compare and the page's words under Streamlit's AppTest."""

from __future__ import annotations

import json
import math

import pytest

from conftest_app import epoch_record, make_run, write_status
from test_app_page import DASHBOARD, _add_checkpoint, open_app  # noqa: F401  (the fixture)
from trainer.contract.rundir import append_jsonl

pytestmark = pytest.mark.timeout(120)


def _click(at, run, key: str) -> dict:
    at.sidebar.button(key=key).click().run()
    assert not at.exception, at.exception
    return run.read_commands()[-1]


def test_controls_show_the_values_in_force_and_send_exactly_what_they_show(tmp_path, open_app):
    # off every slider's grid: 0.1 * 3 (shown 0.3), β 0.97, batch 96
    run = make_run(tmp_path, "demo", hparams={"lr": 0.1 * 3, "beta": 0.97, "batch_size": 96})
    at = open_app()
    assert at.sidebar.select_slider(key="lr-demo").value == 0.3
    assert at.sidebar.select_slider(key="beta-demo").value == 0.97
    assert at.sidebar.select_slider(key="batch-demo").value == 96
    assert _click(at, run, "set_lr")["value"] == 0.3  # what the slider shows, not 0.30000000000000004 or 0.2
    assert _click(at, run, "set_beta")["value"] == 0.97
    assert _click(at, run, "set_batch_size")["value"] == 96

    # a nudge applied by the trainer: the controls follow the run, then send the new value
    write_status(run, state="running", epoch=10, hparams={"lr": 0.0003 * 2, "beta": 0.985, "batch_size": 48})
    at.run()
    assert at.sidebar.select_slider(key="lr-demo").value == 0.0006
    assert _click(at, run, "set_lr")["value"] == 0.0006  # never the grid's 0.0005
    assert _click(at, run, "set_beta")["value"] == 0.985
    assert _click(at, run, "set_batch_size")["value"] == 48
    # a value the user picked stays picked while the run's value does not change
    at.sidebar.select_slider(key="lr-demo").set_value(1e-2).run()
    at.run()
    assert _click(at, run, "set_lr")["value"] == 1e-2


def test_toasts_say_what_a_command_does(tmp_path, open_app):
    make_run(tmp_path, "demo", hparams={"lr": 0.003})
    at = open_app()
    at.sidebar.button(key="scale_lr-0.1").click().run()
    assert any(t.value == "Sent: learning rate ×0.1 → 0.0003" for t in at.toast), [t.value for t in at.toast]
    assert "learning rate ×0.1 → 0.0003: waiting for the trainer" in "\n".join(m.value for m in at.sidebar.markdown)


def test_rewind_offers_the_newest_checkpoint_by_epoch_and_says_what_it_drops(tmp_path, open_app):
    run = make_run(tmp_path, "demo", epochs_done=12)
    _add_checkpoint(run, "ckpt-00005", 5)
    _add_checkpoint(run, "ckpt-00010", 10)
    at = open_app()
    box = at.sidebar.selectbox(key="rewind-demo")
    assert box.value == "ckpt-00010" and box.options[0] == "epoch 10 · ckpt-00010"
    assert any("drops epochs 11–12 (2 epochs)" in c.value for c in at.sidebar.caption)
    _add_checkpoint(run, "ckpt-00011", 11)  # a rolling one (pruned soon): not offered while the run trains
    at.run()
    assert not any("ckpt-00011" in option for option in at.sidebar.selectbox(key="rewind-demo").options)
    assert any("ckpt-00010" in option for option in at.sidebar.selectbox(key="rewind-demo").options)
    _add_checkpoint(run, "ckpt-00012", 12, reason="command")  # a newer kept one arrives: the selection follows it
    at.run()
    assert at.sidebar.selectbox(key="rewind-demo").value == "ckpt-00012"
    assert not any("drops" in c.value for c in at.sidebar.caption)
    at.sidebar.selectbox(key="rewind-demo").set_value("ckpt-00005").run()
    assert any("drops epochs 6–12 (7 epochs)" in c.value for c in at.sidebar.caption)
    _add_checkpoint(run, "ckpt-00013", 13)  # the user's pick stays
    at.run()
    assert at.sidebar.selectbox(key="rewind-demo").value == "ckpt-00005"
    command = _click(at, run, "rewind")
    assert (command["cmd"], command["value"]) == ("rewind", "ckpt-00005")
    assert any(t.value == "Sent: rewind to epoch 5 (ckpt-00005)" for t in at.toast)


def test_pausing_never_moves_the_rewind_box_and_it_follows_again_once_the_run_trains(tmp_path, open_app):
    run = make_run(tmp_path, "demo", epochs_done=12)
    _add_checkpoint(run, "ckpt-00010", 10)
    at = open_app()
    assert at.sidebar.selectbox(key="rewind-demo").value == "ckpt-00010"
    _add_checkpoint(run, "ckpt-00012", 12)  # a rolling one: offered once paused, but the box stays put
    write_status(run, state="paused", epoch=12)
    at.run()
    box = at.sidebar.selectbox(key="rewind-demo")
    assert box.value == "ckpt-00010" and box.options[0] == "epoch 12 · ckpt-00012"
    assert any("drops epochs 11–12 (2 epochs)" in c.value for c in at.sidebar.caption)
    write_status(run, state="running", epoch=15)
    _add_checkpoint(run, "ckpt-00015", 15)  # training again: the untouched box follows the newest kept one
    at.run()
    assert at.sidebar.selectbox(key="rewind-demo").value == "ckpt-00015"


def test_after_a_divergence_rewind_offers_the_rollback_point_and_the_banner_says_the_epoch(tmp_path, open_app):
    run = make_run(tmp_path, "demo", epochs_done=12)
    for seq, epoch in ((9, 9), (10, 10), (11, 11)):
        _add_checkpoint(run, f"ckpt-{seq:05d}", epoch)
    run.append_event("diverged", epoch=10, step=200, reason="the training loss became nan",
                     checkpoint="ckpt-00010", branch=1, lr=0.003)
    write_status(run, state="diverged", epoch=10, message="the training loss became nan; rolled back to ckpt-00010. "
                 "Lower the learning rate, then resume.")
    at = open_app()
    assert at.sidebar.selectbox(key="rewind-demo").value == "ckpt-00010"
    (banner,) = [w.value for w in at.warning if "Diverged" in w.value]
    assert "end of epoch 10" in banner and "ckpt-" not in banner


def test_the_subtitle_names_tensorflow(tmp_path, open_app):
    make_run(tmp_path, "demo")
    at = open_app()
    assert any("TensorFlow 2.x" in c.value for c in at.main.caption)


def test_a_run_stuck_at_chance_gets_a_not_learning_notice(tmp_path, open_app):
    run = make_run(tmp_path, "stuck", epochs_done=0)
    for epoch in range(1, 7):
        append_jsonl(run.metrics_path, {**epoch_record(epoch), "loss": math.log(10) + 0.01, "accuracy": 0.11})
    write_status(run, state="running", epoch=6)
    make_run(tmp_path, "fine", epochs_done=6)
    at = open_app(query={"run": "stuck"})
    assert any("Not learning" in w.value for w in at.warning)
    at.sidebar.selectbox(key="run_picker").set_value("fine").run()
    assert not any("Not learning" in w.value for w in at.warning)


def test_compare_starts_from_the_run_and_its_sweep_siblings_on_a_log_axis(tmp_path, open_app):
    for name in ("other-1", "other-2", "s1/t1", "s1/t2", "s1/t3"):
        make_run(tmp_path, name, state="finished")
    at = open_app(query={"run": "s1/t2"})
    key = "compare_runs-s1/t2"
    assert sorted(at.multiselect(key=key).value) == ["s1/t1", "s1/t2", "s1/t3"]
    spec = next(s for s in (json.loads(c.proto.spec) for c in at.get("plotly_chart"))
                if s["layout"]["title"]["text"].endswith("runs"))
    assert spec["layout"]["yaxis"]["type"] == "log"
    assert {t["name"] for t in spec["data"]} == {"s1/t1", "s1/t2", "s1/t3"}  # full names
    at.multiselect(key=key).set_value(["s1/t2"]).run()
    at.text_input(key="compare_filter").input("t3").run()
    assert set(at.multiselect(key=key).options) == {"s1/t3", "s1/t2"}  # the filter, and what stays picked
    at.multiselect(key=key).set_value(["s1/t2", "s1/t3"]).run()

    def compared():
        return next(s for s in (json.loads(c.proto.spec) for c in at.get("plotly_chart"))
                    if " — " in s["layout"]["title"]["text"])

    assert [t["name"] for t in compared()["data"]] == ["s1/t3"]  # the filter narrows the chart too
    assert compared()["layout"]["title"]["text"].endswith("— 1 run")
    at.selectbox(key="compare_metric").set_value("val_accuracy").run()
    assert at.toggle(key="compare_log").disabled and compared()["layout"]["yaxis"]["type"] == "linear"


def test_a_click_checks_the_right_once_and_the_value_once_on_its_way_to_the_file(tmp_path, open_app, monkeypatch):
    from app.panels import controls

    calls = {"require": 0, "check": 0}
    require, check = controls.PageWriter.require, controls.check

    def counted_require(self, *args, **kwargs):
        calls["require"] += 1
        return require(self, *args, **kwargs)

    def counted_check(*args, **kwargs):
        calls["check"] += 1
        return check(*args, **kwargs)

    monkeypatch.setattr(controls.PageWriter, "require", counted_require)
    monkeypatch.setattr(controls, "check", counted_check)
    run = make_run(tmp_path, "demo", hparams={"lr": 0.01, "beta": 0.9, "batch_size": 64})
    at = open_app()
    calls.update(require=0, check=0)  # rendering the page writes nothing
    assert _click(at, run, "set_lr")["value"] == 0.01
    assert calls == {"require": 1, "check": 1}
    assert len(run.read_commands()) == 1


@pytest.mark.parametrize("kind", ["panda-train", "keras-callback"])
def test_the_steer_panel_offers_what_the_command_table_says_the_runs_trainer_obeys(tmp_path, open_app, kind):
    from trainer.contract.commands import SPECS, TRAINER_KINDS, supported
    from trainer.contract.rundir import atomic_write_json

    assert kind in TRAINER_KINDS
    run = make_run(tmp_path, "demo")
    config = json.loads((run.path / "config.json").read_text())
    atomic_write_json(run.path / "config.json", {**config, "trainer": kind})
    at = open_app()
    keys = {b.key for b in at.sidebar.button}
    for cmd, key in (("set_lr", "set_lr"), ("set_beta", "set_beta"), ("set_batch_size", "set_batch_size"),
                     ("set_autopilot", "autopilot")):
        assert (key in keys) == supported(cmd, kind), (cmd, kind)
    captions = " ".join(c.value for c in at.sidebar.caption)
    for cmd in ("set_beta", "set_batch_size"):
        assert (SPECS[cmd].refusal in captions) == (not supported(cmd, kind))
    if kind == "keras-callback":  # the β slider is gone too, not only its button
        assert not [s for s in at.sidebar.select_slider if s.key == "beta-demo"]
