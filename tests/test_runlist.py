"""The run list is built once per change for the whole server, however many sessions read it (issue 21)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app.data.runstore import RunStore
from app.serving.shared import shared
from conftest_app import make_run, wait_until, write_status
from trainer.contract.rundir import RunDir

pytestmark = pytest.mark.timeout(180)

DASHBOARD = Path(__file__).resolve().parent.parent / "app" / "dashboard.py"


@pytest.fixture
def store(tmp_path):
    for i in range(30):
        make_run(tmp_path, f"old-{i:02d}", epochs_done=2, state="finished")
    store = RunStore(tmp_path)
    yield store
    store.close()


def test_reads_share_one_build_until_a_file_changes(store, tmp_path):
    first = store.runs()
    assert len(first) == 30 and store.builds == 1
    for _ in range(200):
        assert store.runs() == first
    assert store.builds == 1  # 200 reads, no change: no rebuild
    write_status(RunDir(tmp_path / "old-05"), state="stopped", epoch=2)  # a finished run's status: seen within seconds
    assert wait_until(lambda: {r.name: r.state for r in store.runs()}["old-05"] == "stopped", timeout=10)
    assert {r.name: r.state for r in store.runs()}["old-04"] == "finished"
    assert store.builds == 2  # the change, once
    for _ in range(50):
        store.runs()
    assert store.builds == 2


def test_new_and_deleted_runs_show_without_a_reader_rescanning(store, tmp_path):
    store.runs()
    make_run(tmp_path, "sweep/trial-1", epochs_done=1, state="finished")
    assert wait_until(lambda: "sweep/trial-1" in {r.name for r in store.runs()}, timeout=10)
    shutil.rmtree(tmp_path / "old-00")
    assert wait_until(lambda: "old-00" not in {r.name for r in store.runs()}, timeout=10)
    assert len(store.runs()) == 30


def test_a_live_run_whose_trainer_died_turns_not_answering_without_a_file_event(store, tmp_path):
    trainer = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        make_run(tmp_path, "live", pid=trainer.pid)
        assert wait_until(lambda: {r.name: r.state for r in store.runs()}.get("live") == "running", timeout=10)
    finally:
        trainer.kill()
        trainer.wait()
    assert wait_until(lambda: {r.name: r.state for r in store.runs()}["live"] == "not answering", timeout=10)


def test_without_a_watcher_every_read_sees_the_files(tmp_path):
    run = make_run(tmp_path, "a", state="running")
    store = RunStore(tmp_path, watch=False)
    assert store.runs()[0].state == "running"
    write_status(run, state="paused", epoch=10)
    assert store.runs()[0].state == "paused"


@pytest.mark.parametrize("sessions", [6])
def test_the_real_page_builds_the_list_once_per_change_however_many_sessions(tmp_path, monkeypatch, sessions):
    """N sessions of the dashboard (AppTest, this process: the server's shared store), each refreshed
    three times: one build. A list built per session or per refresh would count N × 3."""
    for i in range(40):
        make_run(tmp_path, f"run-{i:02d}", epochs_done=3, state="finished")
    monkeypatch.setenv("PANDA_RUN_DIR", str(tmp_path))
    monkeypatch.delenv("PANDA_TOKEN", raising=False)
    apps = [AppTest.from_file(str(DASHBOARD), default_timeout=60) for _ in range(sessions)]
    for _ in range(3):
        for at in apps:
            at.run()
            assert not at.exception, at.exception
    store = shared("run store", str(tmp_path), lambda: None)
    assert isinstance(store, RunStore)
    assert store.builds == 1
    assert "run-39" in apps[-1].sidebar.selectbox[0].options[0]
    write_status(RunDir(tmp_path / "run-39"), state="stopped", epoch=3)
    assert wait_until(lambda: store.runs()[0].state == "stopped", timeout=10)
    for _ in range(2):
        for at in apps:
            at.run()
    assert store.builds == 2
    assert all("stopped" in at.sidebar.selectbox[0].options[0] for at in apps)
