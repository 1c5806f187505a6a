"""Who may steer, tried as a hostile viewer would: Streamlit's own websocket protocol against a real
``panda app --token-file`` (:mod:`st_client`), and the server process's life.

A viewer's client sends whatever it likes: a ``clear_cache`` back-message, a click on a button its
page shows disabled, a widget value no browser would send. None of it may revive a spent presenter
code, void a presenter's key, write a command, run TensorFlow or show a traceback; the presenter's
own session, doing the same, does steer (each test's positive control).
"""

from __future__ import annotations

import os
import re
import signal
import stat
import time

import psutil
import pytest
from streamlit.proto.WidgetStates_pb2 import WidgetState

from conftest_app import make_run, wait_until, write_status
from trainer.contract.rundir import RunDir
from st_client import PandaApp, Session, listening, session

pytestmark = pytest.mark.timeout(240)

PATH = re.compile(r"/(?:tmp|home|work|root|usr)/")


@pytest.fixture(scope="module")
def room(tmp_path_factory):
    """``panda app --token-file`` over one running run, and the presenter's key (the code spent on it)."""
    tmp = tmp_path_factory.mktemp("room")
    root = tmp / "runs"
    make_run(root, "demo")
    app = PandaApp(tmp, root)
    app.run = root / "demo"
    try:
        with session(app.port) as presenter:
            presenter.run(query=f"code={app.code()}")
            assert not presenter.is_viewer(), "the steer link's code made this session the presenter"
            app.key = presenter.presenter_key()
            assert app.key
        yield app
    finally:
        app.stop()


def commands(app) -> list[str]:
    return [c["cmd"] for c in RunDir(app.run).read_commands()]


def beat(app) -> None:
    """The run's heartbeat, as its trainer writes it: a run silent for 10 s is not steered."""
    write_status(RunDir(app.run), state="running", epoch=10)


def server_pid(app) -> int:
    (child,) = psutil.Process(app.process.pid).children()
    return child.pid


def tensorflow_loaded(pid: int) -> bool:
    """Whether TensorFlow's shared libraries are mapped into the server process (what a measurement loads)."""
    with open(f"/proc/{pid}/maps") as f:
        return "tensorflow" in f.read()


# --------------------------------------------------------------------------- security state a client cannot clear


def test_a_clear_cache_message_neither_revives_a_spent_code_nor_voids_a_presenter_key(room):
    with session(room.port) as viewer:
        viewer.run()
        assert viewer.is_viewer()
        viewer.send(clear_cache=True)  # "Clear cache": Streamlit clears st.cache_* for every session
        viewer.run()  # processed in order: the cache is cleared before this run
    with session(room.port) as late:
        late.run(query=f"code={room.code()}")  # the steer URL from a lecture PC's history, after the clear
        assert late.is_viewer(), "a spent code came back to life"
    with session(room.port, cookie=f"panda_presenter={room.key}") as presenter:
        beat(room)
        presenter.run(query="run=demo")
        assert not presenter.is_viewer(), "the presenter's key stopped working"
        checkpoint = next(e.button for e in presenter.elements if e.WhichOneof("type") == "button"
                          and e.button.id.endswith("-checkpoint"))
        assert not checkpoint.disabled


def test_a_viewers_forged_steering_click_writes_no_command(room):
    trigger = None
    with session(room.port) as viewer:
        beat(room)
        viewer.run(query="presenter&run=demo")  # the full page, its controls disabled
        trigger = viewer.widget_id("checkpoint")
        assert trigger
        before = commands(room)
        viewer.run(query="presenter&run=demo", widgets=[WidgetState(id=trigger, trigger_value=True)])
        viewer.send(clear_cache=True)
        viewer.run(query="presenter&run=demo", widgets=[WidgetState(id=trigger, trigger_value=True)])
        assert commands(room) == before, "a viewer's forged click wrote a command"
    with session(room.port, cookie=f"panda_presenter={room.key}") as presenter:  # the same message, the presenter's
        beat(room)
        presenter.run(query="run=demo")
        presenter.run(query="run=demo", widgets=[WidgetState(id=presenter.widget_id("checkpoint"), trigger_value=True)])
        assert commands(room) == before + ["checkpoint"]


def test_a_viewers_measure_it_now_runs_no_tensorflow_and_the_presenters_does_once_for_all(room):
    pid = server_pid(room)
    with session(room.port) as viewer:
        viewer.run()
        viewer.run(page="lessons")
        go = next(e.button for e in viewer.elements if e.WhichOneof("type") == "button"
                  and e.button.id.endswith("-lesson-tracing-go"))
        assert go.disabled  # display-only for a viewer
        for _ in range(3):
            viewer.run(page="lessons", widgets=[WidgetState(id=go.id, trigger_value=True)])
        assert "traced" not in viewer.text()
        assert not tensorflow_loaded(pid), "a viewer's click made the server load TensorFlow"
        with session(room.port, cookie=f"panda_presenter={room.key}") as presenter:  # the positive control
            presenter.run()
            presenter.run(page="lessons")
            go_id = presenter.widget_id("lesson-tracing-go")
            presenter.run(page="lessons", widgets=[WidgetState(id=go_id, trigger_value=True)], timeout=180)
            assert "traced" in presenter.text() and tensorflow_loaded(pid)
        viewer.run(page="lessons")
        assert "traced" in viewer.text(), "the presenter's measurement is shown to every viewer"


# --------------------------------------------------------------------------- what a viewer sees


def test_a_viewer_sees_no_paths_with_presenter_and_no_traceback_of_a_forged_value(room):
    with session(room.port) as viewer:
        viewer.run(query="presenter&run=demo")
        assert viewer.widget_id("token_input"), "?presenter: the token box"
        assert not PATH.search(viewer.text()), PATH.search(viewer.text())
        viewer.run(page="lessons")
        seed = viewer.widget_id("lesson-seed")
        viewer.run(page="lessons", widgets=[WidgetState(id=seed, double_value=float("inf"))])  # no browser sends this
        (error,) = [e.exception for e in viewer.elements if e.WhichOneof("type") == "exception"]
        assert not error.stack_trace and not PATH.search(str(error)) and "OverflowError" not in str(error)
    assert wait_until(lambda: "OverflowError" in room.terminal()), "the traceback goes to the server's log"


# --------------------------------------------------------------------------- the steer link


def test_the_steer_link_goes_to_a_private_file_not_the_terminal(room, tmp_path):
    code = room.code()
    path = room.steer_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    terminal = room.terminal()
    assert code not in terminal and "s3cret-token" not in terminal
    assert str(path) in terminal and f"http://127.0.0.1:{room.port}/" in terminal  # where it is; the watch URL
    shown = PandaApp(tmp_path, tmp_path / "runs", "--print-steer")  # asked for: printed, no file
    try:
        assert "?code=" in shown.terminal() and not shown.steer_file().exists()
    finally:
        shown.stop()


# --------------------------------------------------------------------------- the server's life


def test_kill_9_of_panda_app_leaves_nothing_listening(tmp_path):
    app = PandaApp(tmp_path, tmp_path / "runs")
    child = server_pid(app)
    assert listening(app.port)
    os.kill(app.process.pid, signal.SIGKILL)
    app.process.wait()
    assert wait_until(lambda: not listening(app.port), timeout=10), "the Streamlit child still serves"
    assert wait_until(lambda: not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE,
                      timeout=10)


def test_sigterm_stops_panda_app_within_5_s_with_100_viewers_connected(tmp_path):
    root = tmp_path / "runs"
    make_run(root, "demo")
    app = PandaApp(tmp_path, root)
    viewers = []
    try:
        for _ in range(100):
            viewers.append(Session(app.port))
        for viewer in viewers[:10]:
            viewer.run()  # ten pages drawn; ninety still being drawn when the signal comes
        for viewer in viewers[10:]:
            viewer.send(rerun_script={"query_string": ""})
        start = time.monotonic()
        app.process.send_signal(signal.SIGTERM)
        app.process.wait(timeout=10)
        took = time.monotonic() - start
        assert took < 5.0, f"panda app took {took:.1f} s to stop"
        assert not listening(app.port)
    finally:
        for viewer in viewers:
            viewer.close()
        app.stop()
