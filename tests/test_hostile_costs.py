"""Costs a client can impose through commands.jsonl (issue 18): torn and huge lines, a replaced file.

Recovering a torn line is linear work, a line is read once, a line over the limit is skipped
without being held whole, a read is bounded, and lines already answered are never answered again
after the file is replaced (an editor's save), cut, or the trainer restarts.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import answer, wait_for
from hostile import lines
from trainer.contract import commands as cmds
from trainer.contract import jsonl
from trainer.contract import jsonsafe
from trainer.contract import rundir
from trainer.contract.inbox import TOO_LONG, CommandInbox
from trainer.contract.jsonl import MAX_LINE_BYTES, READ_BLOCK, JsonlTail, read_jsonl
from trainer.contract.rundir import RunDir, append_jsonl
from trainer.steering.steerable import check_command

MB = 2**20
BRACES = b"{" * 300 + b'"' + b"x" * (3 * MB)  # 300 later starts of an object, none of them whole


class CountingDecoder:
    """``json.JSONDecoder`` that counts the characters each ``raw_decode`` could read (the rest of the line)."""

    def __init__(self):
        self.calls, self.chars = 0, 0

    def raw_decode(self, text, start):
        self.calls += 1
        self.chars += len(text) - start
        return json.JSONDecoder().raw_decode(text, start)


@pytest.mark.parametrize("line", [
    BRACES,
    b'{"a": ' * 300 + b'"' + b"x" * MB,  # nested, torn: every try decodes to the end of the line
    b'{"id": "a", "cmd": "se' + b"{" * 1000 + b'{"id": "b", "cmd": "pause"}',
])
def test_torn_line_recovery_is_linear_work(monkeypatch, line):
    counter = CountingDecoder()
    monkeypatch.setattr(jsonsafe, "_DECODER", counter)
    records = jsonsafe.parse_line(line)
    assert counter.calls <= jsonsafe.MAX_RECOVERY_TRIES + 2
    assert counter.chars <= (jsonsafe.RECOVERY_WORK_FACTOR + 2) * len(line), "at most a few passes over the line"
    if line.endswith(b'"pause"}'):
        assert records == [None, {"id": "b", "cmd": "pause"}], "the whole object that ends a torn line survives"


class CountingReads:
    def __init__(self, monkeypatch):
        self.bytes = 0
        real = os.pread

        def pread(fd, n, offset):
            data = real(fd, n, offset)
            self.bytes += len(data)
            return data

        monkeypatch.setattr(os, "pread", pread)

    def since(self) -> int:
        n, self.bytes = self.bytes, 0
        return n


def test_a_line_over_the_limit_is_skipped_unheld_and_a_torn_line_is_not_read_again(tmp_path, monkeypatch):
    path = tmp_path / "commands.jsonl"
    path.write_bytes(BRACES * 14)  # 42 MB, no newline yet
    reads = CountingReads(monkeypatch)
    tail = JsonlTail(path)
    tracemalloc.start()
    try:
        assert tail.read_entries() == []
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert reads.since() == path.stat().st_size
    assert peak < MAX_LINE_BYTES + 4 * READ_BLOCK, f"held {peak / MB:.0f} MB of a {path.stat().st_size / MB:.0f} MB line"
    assert tail.read_entries() == [] and reads.since() == 0, "the torn line is not read again on every poll"
    append_jsonl(path, {"id": "after", "cmd": "pause"})  # its newline ends the huge line first
    assert tail.read_entries() == [(1, None, True), (1, {"id": "after", "cmd": "pause"}, False)]
    assert reads.since() < 100 and tail.too_long == 1


def test_a_torn_line_under_the_limit_is_read_once_and_parsed_once(tmp_path, monkeypatch):
    path = tmp_path / "m.jsonl"
    line = json.dumps({"id": "big", "cmd": "note", "value": "y" * (2 * MB)}).encode() + b"\n"
    reads = CountingReads(monkeypatch)
    tail = JsonlTail(path)
    for part in (line[:MB], line[MB:-1], line[-1:]):
        with open(path, "ab") as f:
            f.write(part)
        got = tail.read_new()
    assert got == [json.loads(line)] and reads.since() == len(line)


def test_one_read_is_bounded_and_the_rest_comes_next(tmp_path, monkeypatch):
    path = tmp_path / "m.jsonl"
    append_jsonl(path, *({"i": i, "pad": "z" * 1000} for i in range(5000)))  # 5 MB
    monkeypatch.setattr(jsonl, "MAX_READ_PER_CALL", MB)
    reads = CountingReads(monkeypatch)
    tail, seen, calls = JsonlTail(path), [], 0
    while True:
        seen += tail.read_new()
        calls += 1
        assert reads.since() <= MB + READ_BLOCK
        if not tail.behind:
            break
    assert [r["i"] for r in seen] == list(range(5000)) and calls >= 5
    assert len(read_jsonl(path)) == 5000, "a one-shot reader reads to the end"


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(lines, max_size=6), st.lists(st.integers(1, 40), max_size=8), st.integers(3, 64))
def test_reading_in_any_pieces_and_blocks_gives_what_one_read_gives(tmp_path, garbage, cuts, block):
    data = b"".join(garbage)
    path = tmp_path / f"p{len(list(tmp_path.iterdir()))}.jsonl"
    path.write_bytes(b"")
    tail, got, at = JsonlTail(path, max_line=100), [], 0
    saved = jsonl.READ_BLOCK
    jsonl.READ_BLOCK = block  # lines cross block boundaries
    try:
        for cut in [*cuts, len(data)]:
            with open(path, "ab") as f:
                f.write(data[at:at + cut])
            at += cut
            got += tail.read_entries()
        assert at >= len(data)
    finally:
        jsonl.READ_BLOCK = saved
    assert got == JsonlTail(path, max_line=100).read_entries()
    assert tail.offset == data.rfind(b"\n") + 1


def test_a_fifo_in_place_of_a_log_reads_as_empty_without_blocking(tmp_path):
    run = RunDir(tmp_path / "r").create()
    run.commands_path.unlink()
    os.mkfifo(run.commands_path)
    got = []
    reader = threading.Thread(target=lambda: got.append((JsonlTail(run.commands_path).read_new(),
                                                         CommandInbox(run, lambda: 0).drain(),
                                                         jsonl.repair_jsonl_tail(run.commands_path))), daemon=True)
    reader.start()
    reader.join(20)
    assert not reader.is_alive() and got == [([], [], 0)]


def test_a_line_over_the_limit_is_rejected_with_its_reason(tmp_path):
    run = RunDir(tmp_path / "r").create()
    run.commands_path.write_bytes(b'{"id": "huge", "cmd": "note", "value": "' + b"x" * MAX_LINE_BYTES + b'"}\n')
    append_jsonl(run.commands_path, {"id": "ok", "cmd": "pause"})
    items = CommandInbox(run, lambda: 0).drain()
    assert [(i.line, i.id, i.problem) for i in items] == [(1, None, TOO_LONG), (2, "ok", None)]
    with pytest.raises(cmds.CommandError, match="over 4194304 bytes"):
        check_command(items[0], set())


def test_lines_are_never_delivered_again_after_a_replace_or_a_cut(tmp_path):
    run = RunDir(tmp_path / "r").create()
    append_jsonl(run.commands_path, *({"id": f"c-{i}", "cmd": "pause"} for i in range(3)))
    with open(run.commands_path, "ab") as f:
        f.write(b"garbage\n")
    inbox = CommandInbox(run, lambda: 0)
    assert len(inbox.drain()) == 4
    copy = tmp_path / "copy"
    shutil.copyfile(run.commands_path, copy)
    os.replace(copy, run.commands_path)  # an editor's save: the same lines, a new inode
    assert inbox.drain() == []
    append_jsonl(run.commands_path, {"id": "new", "cmd": "pause"})
    assert [i.id for i in inbox.drain()] == ["new"]
    lines = run.commands_path.read_bytes().splitlines(keepends=True)
    run.commands_path.write_bytes(lines[1] + lines[0])  # cut shorter and reordered, same inode
    append_jsonl(run.commands_path, {"id": "newer", "cmd": "pause"})
    assert [i.id for i in inbox.drain()] == ["newer"]
    resumed = CommandInbox(run, lambda: 0, {(1, "c-1"), (2, "c-0"), (3, "newer")})
    assert resumed.drain() == [], "a restart skips what the journal answered"


# ----------------------------------------------------------------------------- live trainers


def test_a_40_mb_line_of_braces_neither_wedges_the_trainer_nor_stales_its_heartbeat(start_trainer):
    t = start_trainer(epochs=100000, pace=0.05)
    run = t.run
    wait_for(lambda: run.read_metrics(), run.path, what="a first epoch")
    ages, beats = [], set()

    def heartbeat_age() -> float:
        status = run.status()
        ages.append(time.time() - status.heartbeat)
        beats.add(status.heartbeat)
        return ages[-1]

    with open(run.commands_path, "ab") as f:
        f.write(b"{" * 300 + b"x" * (40 * MB) + b"\n")
    run.send_command("set_lr", 0.002, command_id="probe")
    probe = wait_for(lambda: heartbeat_age() is not None and run.answer_to("probe"), run.path, what="the probe's answer")
    assert probe["event"] == "applied"
    with open(run.commands_path, "ab") as f:  # a torn line of 40 MB that stays open for a few heartbeats
        f.write(b'{"id": "torn", "cmd": "set_l' + b"x" * (40 * MB))
    seen = len(beats)
    wait_for(lambda: heartbeat_age() is not None and len(beats) >= seen + 3, run.path, what="three heartbeats")
    assert max(ages) < rundir.STALE_AFTER_SECONDS / 2, f"the heartbeat was {max(ages):.1f}s old while reading"
    with open(run.commands_path, "ab") as f:
        f.write(b"\n")
    assert t.send("stop")["event"] == "applied" and t.join() == "finished"
    too_long = [e["line"] for e in run.read_events() if e.get("event") == "rejected" and e.get("reason") == TOO_LONG]
    assert too_long == [1, 3]


def test_a_commands_file_replaced_by_an_identical_copy_is_not_answered_again(start_trainer):
    t = start_trainer(epochs=100000, pace=0.05)
    run = t.run
    wait_for(lambda: run.read_metrics(), run.path, what="a first epoch")
    for i in range(15):
        kind = ("set_lr", 0.001 + i * 1e-5) if i % 3 else ("note", f"note {i}")
        answer(run, run.send_command(*kind, command_id=f"c-{i}"))
    copy = run.path / ".commands.copy"
    shutil.copyfile(run.commands_path, copy)
    os.replace(copy, run.commands_path)  # what an editor's save does
    assert answer(run, run.send_command("set_lr", 0.002, command_id="probe"))["event"] == "applied"
    assert t.send("stop")["event"] == "applied" and t.join() == "finished"
    answers = [e for e in run.read_events() if e.get("event") in ("applied", "rejected")]
    assert [e["command_id"] for e in answers] == [f"c-{i}" for i in range(15)] + ["probe", answers[-1]["command_id"]]
    assert all(e["event"] == "applied" for e in answers)
