"""The dashboard page under Streamlit's AppTest: what it shows, and what each control writes."""

from __future__ import annotations

import base64
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from conftest_app import HPARAMS, capture_spawns, make_run, wait_until, write_status
from trainer.contract.rundir import RunDir, atomic_write_json

pytestmark = pytest.mark.timeout(120)

DASHBOARD = Path(__file__).resolve().parent.parent / "app" / "dashboard.py"
CONTROL_KEYS = ["pause", "resume", "checkpoint", "stop", "set_lr", "scale_lr-0.1", "scale_lr-0.5", "scale_lr-2",
                "set_beta", "nudge_beta-0.5", "nudge_beta-2", "set_batch_size", "scale_batch-0.5", "scale_batch-2",
                "rewind"]


@pytest.fixture
def open_app(tmp_path, monkeypatch):
    """``open_app(token=None)``: the dashboard on ``tmp_path`` as its run directory, run once."""
    monkeypatch.delenv("PANDA_TOKEN", raising=False)
    monkeypatch.delenv("PANDA_PRESENTER_CODE", raising=False)

    def start(token: str | None = None, query: dict | None = None, code: str | None = None) -> AppTest:
        monkeypatch.setenv("PANDA_RUN_DIR", str(tmp_path))
        if token:
            monkeypatch.setenv("PANDA_TOKEN", token)
        if code:
            monkeypatch.setenv("PANDA_PRESENTER_CODE", code)
        at = AppTest.from_file(str(DASHBOARD), default_timeout=30)
        at.query_params.update(query or {})
        at.run()
        assert not at.exception, at.exception
        return at

    yield start
    st.cache_resource.clear()  # closes the stores' file watchers


def _spec(chart) -> dict:
    return json.loads(chart.proto.spec)


def _values(array) -> list[float]:
    if isinstance(array, dict) and "bdata" in array:
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"]).newbyteorder("<")).tolist()
    return list(array)


def _last_command(run: RunDir) -> dict:
    return run.read_commands()[-1]


def _sidebar_text(at: AppTest) -> str:
    return "\n".join(m.value for m in at.sidebar.markdown)


def _add_checkpoint(run: RunDir, name: str, epoch: int, reason: str = "epoch") -> None:
    folder = run.checkpoints_path / name
    folder.mkdir()
    atomic_write_json(folder / "meta.json", {"seq": epoch, "epoch": epoch, "step": epoch * 20, "branch": 0,
                                             "reason": reason, "time": time.time(), "hparams": HPARAMS, "metrics": None})


def test_page_shows_the_run_charts_and_status_from_the_run_directory(tmp_path, open_app):
    run = make_run(tmp_path, "demo", epochs_done=12, epochs=40)
    at = open_app()
    charts = {(_spec(c).get("layout", {}).get("title", {}) or {}).get("text"): _spec(c) for c in at.get("plotly_chart")}
    assert set(charts) == {"Loss", "Accuracy", "Learning rate α", "Mini-batch loss"}
    train = next(t for t in charts["Loss"]["data"] if t["name"] == "train")
    np.testing.assert_allclose(_values(train["y"]), [r["loss"] for r in run.read_metrics()])
    assert charts["Learning rate α"]["layout"]["yaxis"]["type"] == "log"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Epoch"] == "12/40" and metrics["Learning rate α"] == "0.003"
    assert at.get("progress")[0].value == 30  # percent
    assert "running" in at.main.markdown[0].value


def test_log_scale_toggle_switches_the_loss_axis(tmp_path, open_app):
    make_run(tmp_path, "demo")
    at = open_app()
    at.toggle(key="log_loss").set_value(True).run()
    loss = next(_spec(c) for c in at.get("plotly_chart") if _spec(c)["layout"]["title"]["text"] == "Loss")
    assert loss["layout"]["yaxis"]["type"] == "log"


def test_each_control_writes_the_right_command(tmp_path, open_app):
    run = make_run(tmp_path, "demo")
    _add_checkpoint(run, "ckpt-00005", 5)
    _add_checkpoint(run, "ckpt-00010", 10)
    at = open_app()

    def click(key: str) -> dict:
        before = len(run.read_commands())
        at.sidebar.button(key=key).click().run()
        assert not at.exception, at.exception
        commands = run.read_commands()
        assert len(commands) == before + 1, f"{key} should write exactly one command"
        assert commands[-1]["source"] == "dashboard"
        return commands[-1]

    assert click("pause")["cmd"] == "pause"
    assert click("checkpoint")["cmd"] == "checkpoint"
    at.sidebar.select_slider(key="lr-demo").set_value(1e-4).run()
    assert (lambda c: (c["cmd"], c["value"]))(click("set_lr")) == ("set_lr", 1e-4)
    for factor in (0.1, 0.5, 2.0):
        c = click(f"scale_lr-{factor:g}")
        assert (c["cmd"], c["value"]) == ("scale_lr", factor)
    at.sidebar.select_slider(key="beta-demo").set_value(0.99).run()
    assert (lambda c: (c["cmd"], c["value"]))(click("set_beta")) == ("set_beta", 0.99)
    assert click("nudge_beta-0.5")["value"] == pytest.approx(0.95)
    assert click("nudge_beta-2")["value"] == pytest.approx(0.8)
    at.sidebar.select_slider(key="batch-demo").set_value(256).run()
    assert (lambda c: (c["cmd"], c["value"]))(click("set_batch_size")) == ("set_batch_size", 256)
    assert click("scale_batch-2")["value"] == 128
    assert click("scale_batch-0.5")["value"] == 32
    at.sidebar.selectbox(key="rewind-demo").set_value("ckpt-00005").run()
    assert (lambda c: (c["cmd"], c["value"]))(click("rewind")) == ("rewind", "ckpt-00005")
    assert click("stop")["cmd"] == "stop"
    # Resume is only offered to a paused run
    assert at.sidebar.button(key="resume").disabled
    write_status(run, state="paused", epoch=10)
    at.run()
    assert at.sidebar.button(key="pause").disabled and not at.sidebar.button(key="resume").disabled
    assert click("resume")["cmd"] == "resume"


def test_a_command_shows_pending_then_the_trainers_answer(tmp_path, open_app):
    run = make_run(tmp_path, "demo")
    at = open_app()
    at.sidebar.button(key="pause").click().run()
    command = _last_command(run)
    assert "waiting for the trainer" in _sidebar_text(at)
    run.append_event("applied", epoch=10, step=201, command_id=command["id"], cmd="pause", value=None,
                     hparams=HPARAMS, received_time=command["time"], received_step=200)
    at.sidebar.button(key="checkpoint").click().run()
    assert any("pause: applied" in t.value for t in at.toast)  # a toast when the answer arrives
    rejected = _last_command(run)
    run.append_event("rejected", epoch=10, step=201, command_id=rejected["id"], cmd="checkpoint", value=None,
                     reason="not saved: the training loss became nan")
    at.run()
    text = _sidebar_text(at)
    assert "pause: applied at epoch 10, step 201" in text
    assert "checkpoint: rejected — not saved: the training loss became nan" in text
    journal = at.dataframe[0].value
    assert set(journal["answer"]) == {"✓ applied", "✗ rejected"}


def test_a_value_the_trainer_would_reject_is_not_sent(tmp_path, open_app):
    run = make_run(tmp_path, "demo", hparams={"lr": 8.0})
    at = open_app()
    at.sidebar.button(key="scale_lr-2").click().run()
    assert run.read_commands() == []
    assert any("Not sent" in e.value and "absurd" in e.value for e in at.sidebar.error)


@pytest.mark.parametrize("state", ["finished", "failed"])
def test_controls_are_disabled_when_the_run_cannot_apply_them(tmp_path, open_app, state):
    make_run(tmp_path, "demo", state=state)
    at = open_app()
    assert all(at.sidebar.button(key=k).disabled for k in CONTROL_KEYS)


def test_a_trainer_that_stopped_answering_is_shown_as_such(tmp_path, open_app):
    make_run(tmp_path, "demo", heartbeat=time.time() - 60)
    at = open_app()
    assert "not answering" in at.main.markdown[0].value
    assert any("stopped answering" in e.value for e in at.error)
    assert at.sidebar.button(key="pause").disabled


def test_viewers_without_the_presenter_token_cannot_steer(tmp_path, open_app):
    run = make_run(tmp_path, "demo")
    at = open_app(token="s3cret", query={"presenter": "1"})  # the full page, as a presenter after a reload
    assert all(at.sidebar.button(key=k).disabled for k in CONTROL_KEYS)
    assert any("presenter token" in c.value for c in at.sidebar.caption)
    assert len(at.get("plotly_chart")) == 4  # but they see everything
    at.sidebar.text_input(key="token_input").input("wrong").run()
    assert at.sidebar.button(key="pause").disabled
    at.sidebar.text_input(key="token_input").input("s3cret").run()
    assert not at.sidebar.button(key="pause").disabled
    at.sidebar.button(key="pause").click().run()
    assert _last_command(run)["cmd"] == "pause"


def test_the_presenter_links_one_time_code_unlocks_one_session_and_leaves_the_address_bar(tmp_path, open_app):
    make_run(tmp_path, "demo")
    at = open_app(token="s3cret", code="one-time", query={"code": "one-time"})
    assert not at.sidebar.button(key="pause").disabled
    assert "code" not in at.query_params
    at.run()
    assert not at.sidebar.button(key="pause").disabled  # the session keeps the right
    again = open_app(token="s3cret", code="one-time", query={"code": "one-time"})  # Back, or a viewer who read it
    assert not again.button and any('data-testid="panda-banner"' in m.value for m in again.markdown)  # a viewer


def test_a_token_in_the_url_is_not_accepted_and_leaves_the_address_bar(tmp_path, open_app):
    make_run(tmp_path, "demo")
    at = open_app(token="s3cret", query={"token": "s3cret"})
    assert not at.button  # a viewer's page: the token would come back with the Back button
    assert "token" not in at.query_params
    assert any("not accepted" in w.value for w in at.warning)


def test_an_empty_run_directory_shows_a_start_form(tmp_path, open_app):
    at = open_app()
    assert "No runs in" in at.main.markdown[1].value
    assert any(b.label == "Start training" for b in at.main.get("form_submit_button"))
    assert not at.get("plotly_chart")


def test_malformed_records_are_skipped_and_counted_in_a_warning(tmp_path, open_app):
    run = make_run(tmp_path, "demo")
    with open(run.metrics_path, "a") as f:
        f.write('{"epoch": 11, oops\n')
    with open(run.events_path, "a") as f:
        f.write("\x00\x01garbage\n")
    at = open_app()
    (warning,) = [w for w in at.warning if "malformed" in w.value]
    assert "Skipped 2 malformed" in warning.value and "metrics.jsonl: 1" in warning.value
    assert {m.label: m.value for m in at.metric}["Epoch"] == "10/30"


def test_a_run_folder_deleted_while_open_does_not_crash_the_page(tmp_path, open_app):
    run = make_run(tmp_path, "demo")
    at = open_app()
    shutil.rmtree(run.path)
    at.run()
    assert not at.exception
    assert any("deleted" in e.value for e in at.error)
    assert len(at.get("plotly_chart")) == 4  # what was read is still shown
    assert all(at.sidebar.button(key=k).disabled for k in ("pause", "set_lr"))


def test_the_run_picker_lists_every_run_with_its_state(tmp_path, open_app):
    make_run(tmp_path, "finished-one", state="finished")
    write_status(make_run(tmp_path, "stopped-one", state="finished"), state="finished", epoch=10,
                 message="stopped by the user")
    write_status(make_run(tmp_path, "interrupted-one", state="finished"), state="finished", epoch=10,
                 message="interrupted by Ctrl-C or SIGTERM")
    make_run(tmp_path, "killed-one", pid=2**22 + 12345)  # a live state, and its process is gone
    make_run(tmp_path, "live-one")
    at = open_app()
    picker = at.sidebar.selectbox(key="run_picker")
    labels = {o.split(" · ")[0].split(" ")[-1]: o.split(" · ")[1] for o in picker.options}
    assert labels == {"live-one": "running", "finished-one": "completed", "stopped-one": "stopped",
                      "interrupted-one": "interrupted", "killed-one": "killed"}
    assert picker.value == "live-one"
    picker.set_value("finished-one").run()
    assert "finished-one" in at.main.markdown[0].value and "completed" in at.main.markdown[0].value
    assert at.query_params.get("run") in ("finished-one", ["finished-one"])
    for name, word in (("stopped-one", "stopped"), ("interrupted-one", "interrupted"), ("killed-one", "killed")):
        at.sidebar.selectbox(key="run_picker").set_value(name).run()
        assert f"{name}  " in at.main.markdown[0].value and word in at.main.markdown[0].value.split(name)[1]


def test_the_pickers_label_for_the_run_on_screen_says_the_epoch_the_page_says(tmp_path, open_app):
    # The run list re-reads a status at most once a second for the whole server; the run on screen
    # is read by the page itself. Its label takes the page's numbers (it said 16/300 beside epoch 18).
    run = make_run(tmp_path, "live-one", epochs_done=16, epochs=300)
    at = open_app()
    write_status(run, state="running", epoch=18, epochs=300)

    def card() -> str:
        at.run()
        return next(m.value for m in at.main.metric if m.label == "Epoch")

    assert wait_until(lambda: card() == "18/300"), "the page reads the new status"
    label = at.sidebar.selectbox(key="run_picker").options[0]
    assert label.split(" · ")[-1] == "18/300", label


@pytest.mark.timeout(120)
def test_the_start_form_launches_a_background_trainer(tmp_path, open_app):
    at = open_app()
    form = "welcome"
    at.text_input(key=f"{form}-name").input("from-form")
    at.number_input(key=f"{form}-epochs").set_value(2)
    at.number_input(key=f"{form}-pace").set_value(0.0)
    next(b for b in at.main.get("form_submit_button") if b.label == "Start training").click().run()
    assert not at.exception
    assert at.query_params.get("run") in ("from-form", ["from-form"])  # a reload opens the new run
    run = RunDir(tmp_path / "from-form")
    assert wait_until(lambda: run.exists(), timeout=90), (tmp_path / ".panda" / "logs" / "from-form.log").read_text()
    status = run.read_status() or {}
    assert wait_until(lambda: (run.read_status() or {}).get("pid"), timeout=60)
    pid = run.read_status()["pid"]
    assert os.getsid(pid) != os.getsid(0)  # its own session: it outlives the app
    assert run.read_config()["hparams"]["optimizer"] == "adam"
    assert wait_until(lambda: (run.read_status() or {}).get("state") == "finished", timeout=90)
    at.run()
    assert "from-form" in at.main.markdown[0].value and not status.get("message")


@pytest.mark.parametrize("done, planned, more", [(30, 30, 20), (6, 30, 24)])
def test_a_finished_run_offers_continue_through_the_launch_path(tmp_path, open_app, monkeypatch, done, planned, more):
    """Completed (another 20 epochs) or stopped (the epochs it planned): one click, `panda train --resume`."""
    started = capture_spawns(monkeypatch)
    run = make_run(tmp_path, "done", epochs_done=done, epochs=planned, state="finished")
    write_status(run, state="finished", epoch=done, epochs=planned, message="completed" if done == planned else "stopped")
    at = open_app()
    button = at.button(key="resume-done")
    assert button.label == f"Continue this run ({more} more epochs)" and not button.disabled
    button.click().run()
    assert not at.exception
    [command] = started
    assert command[command.index("--resume") + 1] == str(run.path)
    assert command[command.index("--epochs") + 1] == str(done + more)


def test_the_compact_page_shows_the_run_and_its_steering_without_the_rest(tmp_path, open_app):
    """?compact (a notebook's cell): the charts and the Steer panel; no run directory, new-run form or Compare."""
    make_run(tmp_path, "demo", epochs_done=3, epochs=10)
    full = open_app()
    compact = open_app(query={"compact": "1", "run": "demo"})
    for at in (full, compact):
        assert {m.label for m in at.metric} >= {"Epoch"}
        assert any(b.label == "Pause" for b in at.sidebar.button)  # the Steer panel is there
    expanders = lambda at: {e.label for e in at.get("expander")}  # noqa: E731
    assert {"Start a new run", "Compare runs"} <= expanders(full)
    assert not {"Start a new run", "Compare runs"} & expanders(compact)
    assert str(tmp_path) in "\n".join(c.value for c in full.sidebar.caption)
    assert str(tmp_path) not in "\n".join(c.value for c in compact.sidebar.caption)
