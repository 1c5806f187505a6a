"""Who may write: a viewer's forged widget events write nothing; secrets stay out of URLs, ``ps`` and
trainers' environments; runs behind a symlink out of the run directory are neither listed nor steered.

A browser cannot click a disabled widget, but a forged websocket message can report the click
anyway. Streamlit 1.61+ drops such a value itself; these tests switch that second wall off
(:func:`no_streamlit_wall`, Streamlit as it was before 1.61) so that they test Panda's own check.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import streamlit as st
from streamlit.runtime.state import widgets as st_widgets
from streamlit.runtime.state.common import WidgetMetadata
from streamlit.testing.v1 import AppTest

from app.serving import panda_cli as cli
from app.serving import launch
from app.panels.controls import NotPresenter, PageWriter
from app.data import RunStore
from app.serving.launch import LaunchError
from conftest_app import HPARAMS, capture_spawns, make_run
from trainer.contract.config import TrainConfig
from trainer.contract.rundir import RunDir, atomic_write_json

pytestmark = pytest.mark.timeout(120)

DASHBOARD = Path(__file__).resolve().parent.parent / "app" / "dashboard.py"
TOKEN = "s3cret-token"
#: Each steering button of the sidebar, and the command it would send.
STEERING = {
    "pause": "pause", "resume": "resume", "checkpoint": "checkpoint", "stop": "stop", "set_lr": "set_lr",
    "scale_lr-0.1": "scale_lr", "scale_lr-0.5": "scale_lr", "scale_lr-2": "scale_lr", "set_beta": "set_beta",
    "nudge_beta-0.5": "set_beta", "nudge_beta-2": "set_beta", "set_batch_size": "set_batch_size",
    "scale_batch-0.5": "set_batch_size", "scale_batch-2": "set_batch_size", "rewind": "rewind",
}


@pytest.fixture
def no_streamlit_wall(monkeypatch):
    """Streamlit before 1.61: a widget registered as disabled still accepts a value from the browser."""

    def metadata(*args, **kwargs):
        kwargs["disabled"] = False
        return WidgetMetadata(*args, **kwargs)

    monkeypatch.setattr(st_widgets, "WidgetMetadata", metadata)


@pytest.fixture
def open_app(tmp_path, monkeypatch):
    """The dashboard on ``tmp_path/runs`` with a presenter token, run once; ``code`` and ``query`` optional."""
    root = tmp_path / "runs"
    root.mkdir()
    monkeypatch.delenv("PANDA_PRESENTER_CODE", raising=False)
    monkeypatch.setenv("PANDA_RUN_DIR", str(root))
    monkeypatch.setenv("PANDA_TOKEN", TOKEN)

    def start(query: dict | None = None, code: str | None = None) -> AppTest:
        if code:
            monkeypatch.setenv("PANDA_PRESENTER_CODE", code)
        at = AppTest.from_file(str(DASHBOARD), default_timeout=30)
        # ?presenter: the full page with its (disabled) controls, not the viewers' projection
        at.query_params.update({"presenter": "1", **(query or {})})
        at.run()
        assert not at.exception, at.exception
        return at

    start.root = root
    yield start
    st.cache_resource.clear()


def forge(widget):
    """Report a click (or a value) the browser could not send: the widget is disabled on screen."""
    widget.proto.disabled = False  # what a forged message does: AppTest itself refuses disabled widgets
    return widget


def _add_checkpoint(run: RunDir, name: str, epoch: int) -> None:
    folder = run.checkpoints_path / name
    folder.mkdir()
    atomic_write_json(folder / "meta.json", {"seq": epoch, "epoch": epoch, "step": epoch * 20, "branch": 0,
                                             "reason": "epoch", "time": time.time(), "hparams": HPARAMS, "metrics": None})


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# --------------------------------------------------------------------------- forged steering


@pytest.mark.parametrize("state", ["running", "paused"])
def test_a_viewer_forging_each_steering_action_writes_nothing(open_app, no_streamlit_wall, state):
    run = make_run(open_app.root, "demo", state=state)
    _add_checkpoint(run, "ckpt-00005", 5)
    at = open_app()
    assert all(at.sidebar.button(key=k).disabled for k in STEERING)  # what the viewer sees
    forge(at.sidebar.select_slider(key="lr-demo")).set_value(1e-4)
    forge(at.sidebar.select_slider(key="beta-demo")).set_value(0.99)
    forge(at.sidebar.select_slider(key="batch-demo")).set_value(256)
    at.run()
    for n, key in enumerate(STEERING, start=1):
        forge(at.sidebar.button(key=key)).click().run()
        assert not at.exception, (key, at.exception)
        if n == 1:
            assert any("Read-only view" in e.value for e in at.error)
        assert run.read_commands() == [], f"a viewer's forged {key!r} wrote a command"
        assert at.session_state["refused_writes"] == n, f"the forged {key!r} did not reach the write path"


def test_the_wall_switched_off_lets_a_presenters_click_through(open_app, no_streamlit_wall):
    """The same forged path writes for the presenter: the test above fails without Panda's check."""
    run = make_run(open_app.root, "demo")
    at = open_app(query={"code": "one-time"}, code="one-time")
    forge(at.sidebar.button(key="stop")).click().run()
    assert [c["cmd"] for c in run.read_commands()] == ["stop"]


def test_a_viewer_forging_a_new_run_starts_nothing(open_app, no_streamlit_wall, monkeypatch):
    started = []
    monkeypatch.setattr(launch, "_spawn", lambda command, log_path: started.append(command))
    at = open_app()
    form = "welcome"
    forge(at.text_input(key=f"{form}-name")).input("forged")
    submit = next(b for b in at.main.get("form_submit_button") if b.label == "Start training")
    assert submit.disabled
    forge(submit).click().run()
    assert not at.exception
    assert at.session_state["refused_writes"] == 1
    assert started == [] and not (open_app.root / "forged").exists()
    assert not (open_app.root / ".panda" / "logs" / "forged.log").exists()
    assert any("Read-only view" in e.value for e in at.main.error)


def test_a_presenter_starts_a_new_run(open_app, monkeypatch):
    started = capture_spawns(monkeypatch)
    at = open_app(query={"code": "c0de"}, code="c0de")
    at.text_input(key="welcome-name").input("mine")
    next(b for b in at.main.get("form_submit_button") if b.label == "Start training").click().run()
    assert len(started) == 1 and "mine" in started[0]


def test_a_viewer_forging_resume_of_a_crashed_run_launches_nothing(open_app, no_streamlit_wall, monkeypatch):
    started = []
    monkeypatch.setattr(launch, "_spawn", lambda command, log_path: started.append(command))
    make_run(open_app.root, "crashed", heartbeat=time.time() - 120, pid=_dead_pid())
    at = open_app()
    button = at.button(key="resume-crashed")
    assert button.disabled
    forge(button).click().run()
    assert not at.exception
    assert started == [] and at.session_state["refused_writes"] == 1
    assert any("Read-only view" in e.value for e in at.error)


# --------------------------------------------------------------------------- the PageWriter itself


def test_the_steerer_refuses_every_write_for_a_viewer(tmp_path, monkeypatch):
    monkeypatch.setattr(launch, "_spawn", lambda *a: pytest.fail("a viewer launched a process"))
    run = make_run(tmp_path, "demo")
    viewer = PageWriter(tmp_path, can_steer=False)
    with pytest.raises(NotPresenter, match="Read-only view"):
        viewer.send(run.path, "pause")
    with pytest.raises(NotPresenter):
        viewer.start_run("new", TrainConfig(epochs=1))
    with pytest.raises(NotPresenter):
        viewer.resume_run(run.path)
    assert run.read_commands() == [] and not (tmp_path / "new").exists()
    assert PageWriter(tmp_path, can_steer=True).send(run.path, "pause").cmd == "pause"


# --------------------------------------------------------------------------- symlinks out of the run directory


def test_a_symlink_to_a_run_elsewhere_is_neither_listed_nor_steered(tmp_path, monkeypatch):
    root, elsewhere = tmp_path / "runs", tmp_path / "elsewhere"
    make_run(root, "here")
    outside = make_run(elsewhere, "theirs")
    (root / "link").symlink_to(outside.path, target_is_directory=True)
    (root / "inner-link").symlink_to(root / "here", target_is_directory=True)  # inside: still a run of the root
    store = RunStore(root, watch=False)
    try:
        assert sorted(r.name for r in store.runs()) == ["here", "inner-link"]
        assert not store.contains(root / "link")
    finally:
        store.close()
    presenter = PageWriter(root, can_steer=True)
    with pytest.raises(NotPresenter, match="outside the run directory"):
        presenter.send(root / "link", "stop")
    with pytest.raises(NotPresenter):
        presenter.resume_run(root / "link")
    assert outside.read_commands() == []
    monkeypatch.setattr(launch, "_spawn", lambda *a: pytest.fail("launched outside the run directory"))
    (root / "out").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(LaunchError):
        presenter.start_run("out/new", TrainConfig(epochs=1))


def test_the_page_does_not_offer_a_symlinked_run(open_app):
    elsewhere = open_app.root.parent / "elsewhere"
    make_run(open_app.root, "here")
    outside = make_run(elsewhere, "theirs")
    (open_app.root / "link").symlink_to(outside.path, target_is_directory=True)
    at = open_app(query={"code": "x", "run": "link"}, code="x")
    assert at.sidebar.selectbox(key="run_picker").options == ["● here · running · 10/30"]


# --------------------------------------------------------------------------- a failed launch


def test_a_failed_launchs_log_is_shown_to_the_presenter_only(open_app, monkeypatch):
    secret_line = "Traceback: /home/presenter/private/path.py line 3"

    started = []

    def spawn(command, log_path):
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text(secret_line + "\n")
        started.append(subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"]))
        return started[-1]

    monkeypatch.setattr(launch, "_spawn", spawn)
    presenter = open_app(query={"code": "c"}, code="c")
    presenter.text_input(key="welcome-name").input("broken")
    next(b for b in presenter.main.get("form_submit_button") if b.label == "Start training").click().run()
    assert started[0].wait(timeout=10) == 3  # the launched trainer has failed: the next rerun shows it
    presenter.run()
    assert any("exited with status 3" in e.value for e in presenter.error)
    assert any(secret_line in c.value for c in presenter.code)

    viewer = AppTest.from_file(str(DASHBOARD), default_timeout=30)  # the same server (cached store), no token
    viewer.session_state["run"] = "broken"
    viewer.query_params["presenter"] = "1"  # the full page, which shows launches
    viewer.run()
    assert any("exited with status 3" in e.value for e in viewer.error)
    assert not any(secret_line in c.value for c in viewer.code)


# --------------------------------------------------------------------------- the token's ways in


def test_launched_trainers_do_not_inherit_the_presenters_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("PANDA_TOKEN", TOKEN)
    monkeypatch.setenv("PANDA_PRESENTER_CODE", "one-time")
    dump = "import json, os; print(json.dumps(dict(os.environ)))"
    process = launch._spawn([sys.executable, "-c", dump], tmp_path / "env.log")
    process.wait(30)
    env = json.loads((tmp_path / "env.log").read_text())
    assert "PANDA_TOKEN" not in env and "PANDA_PRESENTER_CODE" not in env
    assert TOKEN not in json.dumps(env) and env["PYTHONUNBUFFERED"] == "1"


def _args(*argv: str):
    return cli.trainer_cli.build_parser(cli.PANDA_COMMANDS).parse_args(["app", *argv])


def test_the_token_comes_from_a_file_or_the_environment_and_the_command_line_warns(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("PANDA_TOKEN", raising=False)
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    assert cli.resolve_token(_args("--token-file", str(token_file))) == "from-file"
    monkeypatch.setenv("PANDA_TOKEN", "from-env")
    assert cli.resolve_token(_args()) == "from-env"
    assert capsys.readouterr().err == ""
    assert cli.resolve_token(_args("--token", "on-the-line")) == "on-the-line"
    assert "every user" in capsys.readouterr().err
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ValueError, match="no token"):
        cli.resolve_token(_args("--token-file", str(tmp_path / "empty")))
    with pytest.raises(ValueError, match="cannot read"):
        cli.resolve_token(_args("--token-file", str(tmp_path / "missing")))


def test_the_presenter_link_carries_a_one_time_code_not_the_token():
    lines = cli._steer_lines("127.0.0.1", 8501, "one-time")
    assert not any(TOKEN in line for line in lines)
    assert any("?code=one-time" in line for line in lines)
    assert not any("code" in line for line in cli._urls("127.0.0.1", 8501, TOKEN))  # the watch URL: no code


# --------------------------------------------------------------------------- what a viewer's widgets cost


def test_a_viewers_compare_reads_at_most_a_few_runs_whatever_it_sends(open_app):
    from app.panels import compare
    from app.serving.shared import shared

    for i in range(12):
        make_run(open_app.root, f"sweep/t{i:02d}", epochs_done=2)
    at = open_app(query={"run": "sweep/t00"})
    key = "compare_runs-" + at.session_state["run"]
    everything = at.multiselect(key=key).options
    assert len(everything) == 12
    at.multiselect(key=key).set_value(everything).run()  # what no browser sends past max_selections
    assert "at most 8" in str(at.exception)  # the forger's own page says no; nobody else's
    store = shared("run store", str(open_app.root), lambda: None)
    assert sum(store.is_open(open_app.root / name) for name in everything) <= compare.VIEWER_MOST + 1  # + the run shown
    presenter = open_app(query={"code": "c", "run": "sweep/t00"}, code="c")
    presenter.multiselect(key=key).set_value(everything).run()
    assert sum(store.is_open(open_app.root / name) for name in everything) == 12
