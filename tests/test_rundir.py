"""The run-directory contract: crash-safe writes, tolerant incremental reads."""

from __future__ import annotations

import json
import os

import pytest

from trainer.contract.rundir import (
    JsonlTail, RunDir, RunDirError, SCHEMA_VERSION, append_jsonl, atomic_write_json, current_line,
    iter_runs, read_jsonl, repair_jsonl_tail,
)


def test_tail_reads_only_new_whole_lines_and_waits_for_a_torn_one(tmp_path):
    path = tmp_path / "m.jsonl"
    tail = JsonlTail(path)
    assert tail.read_new() == [], "a missing file is simply empty"
    append_jsonl(path, {"epoch": 1}, {"epoch": 2})
    with open(path, "a") as f:
        f.write('{"epoch": 3, "lo')  # a writer mid-append
    assert tail.read_new() == [{"epoch": 1}, {"epoch": 2}]
    with open(path, "a") as f:
        f.write('ss": 0.5}\n')
    assert tail.read_new() == [{"epoch": 3, "loss": 0.5}]
    assert tail.read_new() == []


def test_tail_counts_and_skips_malformed_lines(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"a": 1}\nnot json\n[1, 2]\n\n{"a": 2}\n')
    tail = JsonlTail(path)
    assert tail.read_new() == [{"a": 1}, {"a": 2}]
    assert tail.malformed == 2
    lines = JsonlTail(path).read_new_lines()
    assert [n for n, r in lines] == [1, 2, 3, 5] and lines[1][1] is None


def test_tail_starts_over_when_the_file_is_replaced_or_truncated(tmp_path):
    path = tmp_path / "m.jsonl"
    append_jsonl(path, {"a": 1}, {"a": 2})
    tail = JsonlTail(path)
    assert len(tail.read_new()) == 2
    assert tail.restarts == 0
    path.unlink()
    append_jsonl(path, {"b": 1})
    assert tail.read_new() == [{"b": 1}]
    assert tail.restarts == 1
    with open(path, "w") as f:  # cut short
        f.write("{}\n")
    assert tail.read_new() == [{}]
    assert tail.restarts == 2


def test_non_finite_numbers_are_written_as_null_so_lines_stay_strict_json(tmp_path):
    path = tmp_path / "m.jsonl"
    append_jsonl(path, {"loss": float("nan"), "x": float("inf"), "ok": 1.5})
    line = path.read_text()
    assert json.loads(line) == {"loss": None, "x": None, "ok": 1.5}
    assert "NaN" not in line


def test_atomic_write_never_leaves_a_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "status.json"
    atomic_write_json(path, {"state": "running"})

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        atomic_write_json(path, {"state": "paused"})
    assert json.loads(path.read_text()) == {"state": "running"}


def test_repair_cuts_only_a_torn_tail(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a"')
    assert repair_jsonl_tail(path) == 4
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]
    assert repair_jsonl_tail(path) == 0


def test_create_refuses_an_existing_folder_and_config_is_versioned(tmp_path):
    run = RunDir(tmp_path / "r").create()
    run.write_config({"name": "r"})
    assert run.read_config()["schema_version"] == SCHEMA_VERSION
    with pytest.raises(RunDirError, match="already exists"):
        RunDir(tmp_path / "r").create()
    atomic_write_json(run.config_path, {"schema_version": 99})
    with pytest.raises(RunDirError, match="schema 99"):
        run.read_config()


def test_current_line_follows_the_newest_branch():
    records = [{"epoch": e, "branch": 0} for e in (1, 2, 3, 4)] + [{"epoch": e, "branch": 1} for e in (3, 4, 5)]
    assert [(r["epoch"], r["branch"]) for r in current_line(records)] == [(1, 0), (2, 0), (3, 1), (4, 1), (5, 1)]


def test_liveness_spots_a_trainer_that_stopped_answering(tmp_path):
    run = RunDir(tmp_path / "r").create()
    run.write_config({"name": "r"})
    run.write_status({"state": "running", "pid": os.getpid(), "heartbeat": 1000.0})
    assert run.liveness(at=1001.0) == "running"
    assert run.liveness(at=1100.0) == "not answering"
    run.write_status({"state": "running", "pid": 2**22 + 12345, "heartbeat": 1000.0})
    assert run.liveness(at=1001.0) == "not answering", "a dead pid is not running"
    run.write_status({"state": "finished", "pid": 1, "heartbeat": 0.0})
    assert run.liveness() == "finished"


def test_iter_runs_finds_runs_and_sweep_trials(tmp_path):
    for path in ("a", "sweep/trial-0", "sweep/trial-1"):
        RunDir(tmp_path / path).create().write_config({"name": path})
    (tmp_path / "not-a-run").mkdir()
    assert [r.path.relative_to(tmp_path).as_posix() for r in iter_runs(tmp_path)] == ["a", "sweep/trial-0", "sweep/trial-1"]


def test_send_command_and_answer_to(tmp_path):
    run = RunDir(tmp_path / "r").create()
    first = run.send_command("set_lr", 0.1)
    second = run.send_command("pause")
    assert first != second
    assert [c["cmd"] for c in run.read_commands()] == ["set_lr", "pause"]
    assert run.answer_to(first) is None
    run.append_event("rejected", command_id=first, reason="no")
    assert run.answer_to(first)["reason"] == "no"
