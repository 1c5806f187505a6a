"""The trainer's inbox: every appended command is delivered once, in order, and wakes the loop."""

from __future__ import annotations

from trainer.contract.inbox import CommandInbox
from trainer.contract.rundir import RunDir, append_jsonl


def make_run(tmp_path) -> RunDir:
    return RunDir(tmp_path / "r").create()


def test_a_line_landing_right_after_the_read_still_wakes_the_loop(tmp_path):
    run = make_run(tmp_path)
    inbox = CommandInbox(run, lambda: 7)
    read_file = inbox.poll

    def read_then_a_line_lands():
        read_file()
        append_jsonl(run.commands_path, {"id": "late", "cmd": "pause"})
        inbox._on_change()  # the watcher's notification for that line

    inbox.poll = read_then_a_line_lands
    assert inbox.drain() == []
    assert inbox.ready.is_set(), "the late line must not wait for the next heartbeat"
    inbox.poll = read_file
    assert [item.record["id"] for item in inbox.drain()] == ["late"]


def test_delivers_each_line_once_in_order_and_skips_what_was_answered_before(tmp_path):
    run = make_run(tmp_path)
    append_jsonl(run.commands_path, {"id": "old", "cmd": "pause"})
    with open(run.commands_path, "a") as f:
        f.write("garbage\n")
    append_jsonl(run.commands_path, {"id": "new", "cmd": "resume"})
    step = 3
    inbox = CommandInbox(run, lambda: step, {(1, "old")})
    items = inbox.drain()
    assert [(i.line, i.record and i.record["id"]) for i in items] == [(2, None), (3, "new")]
    assert all(i.step == 3 for i in items)
    assert inbox.drain() == []
    resumed = CommandInbox(run, lambda: 0, {(1, "old"), (2, None), (3, "new")})
    assert resumed.drain() == [], "a restarted trainer does not answer twice"


def test_the_watcher_sets_ready_when_a_command_is_appended(tmp_path):
    run = make_run(tmp_path)
    inbox = CommandInbox(run, lambda: 0).start()
    try:
        assert not inbox.ready.is_set()
        run.send_command("set_lr", 0.01)
        assert inbox.wait(10), "watchdog noticed the append"
        assert [i.record["cmd"] for i in inbox.drain()] == ["set_lr"]
    finally:
        inbox.stop()
