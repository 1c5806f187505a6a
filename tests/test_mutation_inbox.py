"""The inbox's promises, each checked by what it returns: once, in order, stamped, waking the loop (trainer/contract/inbox.py).

The mutation-testing selection for trainer/contract/inbox.py (pyproject.toml [tool.panda.mutation]).
"""

from __future__ import annotations

import os
import time

from trainer.contract.inbox import CommandInbox, Received
from trainer.contract.jsonsafe import MAX_ECHO_CHARS
from trainer.contract.rundir import RunDir, append_jsonl


def make_run(tmp_path) -> RunDir:
    return RunDir(tmp_path / "r").create()


def write_line(run: RunDir, text: str) -> None:
    with open(run.commands_path, "a", encoding="utf-8") as f:
        f.write(text + "\n")


class Calls:
    def __init__(self, inbox_ref=None):
        self.count, self.ready_seen = 0, []
        self.inbox = inbox_ref

    def __call__(self):
        self.count += 1
        if self.inbox is not None:
            self.ready_seen.append(self.inbox.ready.is_set())


def test_received_id_and_key():
    assert Received(3, {"id": "c-1"}, 1.0, 2).id == "c-1"
    assert Received(3, {"id": "c-1"}, 1.0, 2).key == (3, "c-1")
    for bad in ({"id": ""}, {"id": 7}, {"id": "a\x00"}, {}, None):
        assert Received(4, bad, 1.0, 2).id is None
        assert Received(4, bad, 1.0, 2).key == (4, None)


def test_each_line_is_delivered_once_in_file_order_with_its_line_number(tmp_path):
    run = make_run(tmp_path)
    append_jsonl(run.commands_path, {"id": "a", "cmd": "pause"}, {"id": "b", "cmd": "resume"})
    write_line(run, "not json")
    inbox = CommandInbox(run, lambda: 5)
    items = inbox.drain()
    assert [(i.line, i.record) for i in items] == [(1, {"id": "a", "cmd": "pause"}), (2, {"id": "b", "cmd": "resume"}),
                                                   (3, None)]
    assert inbox.drain() == []
    append_jsonl(run.commands_path, {"id": "c", "cmd": "stop"})
    assert [(i.line, i.id) for i in inbox.drain()] == [(4, "c")]


def test_answered_lines_are_skipped_by_line_and_id(tmp_path):
    run = make_run(tmp_path)
    append_jsonl(run.commands_path, {"id": "a", "cmd": "pause"}, {"id": "a", "cmd": "pause"}, {"id": "", "cmd": "x"})
    answered = {(1, "a"), (3, None)}
    inbox = CommandInbox(run, lambda: 0, answered)
    answered.add((2, "a"))  # the inbox keeps its own copy
    assert [(i.line, i.id) for i in inbox.drain()] == [(2, "a")], "a repeated id on a new line is still delivered"
    assert [i.line for i in CommandInbox(run, lambda: 0, {(1, "b")}).drain()] == [1, 2, 3], "the id must match too"
    assert [i.line for i in CommandInbox(run, lambda: 0, {(2, "a")}).drain()] == [1, 3], "the line must match too"
    assert len(CommandInbox(run, lambda: 0).drain()) == 3


def test_a_poll_without_a_notice_stamps_now_and_the_current_step(tmp_path):
    run = make_run(tmp_path)
    append_jsonl(run.commands_path, {"id": "a", "cmd": "pause"})
    before = time.time()
    [item] = CommandInbox(run, lambda: 11).drain()
    assert item.step == 11 and before <= item.time <= time.time()


def test_lines_are_stamped_with_the_first_notice_of_their_change(tmp_path):
    run = make_run(tmp_path)
    steps = iter([40, 41, 42, 43])
    inbox = CommandInbox(run, lambda: next(steps))
    append_jsonl(run.commands_path, {"id": "a", "cmd": "pause"})
    before = time.time()
    inbox._on_change()          # noticed at step 40
    noticed = time.time()
    inbox._on_change()          # a second notice before the read keeps the first stamp
    [item] = inbox.drain()
    assert item.step == 40 and before <= item.time <= noticed
    append_jsonl(run.commands_path, {"id": "b", "cmd": "resume"})
    [item] = inbox.drain()      # the stamp was used up: this read stamps its own step
    assert item.step == 41



def test_after_a_read_the_next_notice_stamps_again(tmp_path):
    run = make_run(tmp_path)
    step = {"now": 1}
    inbox = CommandInbox(run, lambda: step["now"])
    assert inbox.drain() == []
    append_jsonl(run.commands_path, {"id": "c", "cmd": "stop"})
    step["now"] = 50
    inbox._on_change()
    step["now"] = 51
    [item] = inbox.drain()
    assert item.step == 50


def test_a_late_notice_of_a_line_already_read_does_not_stamp_the_next_line(tmp_path):
    # watchdog reports one append as a write and then a close; when the loop read the line
    # between the two, the close must not leave a stamp behind for the client's next command
    # (CI saw "received at step 5992, applied at 5995" from such a stale stamp).
    run = make_run(tmp_path)
    step = {"now": 10}
    inbox = CommandInbox(run, lambda: step["now"])
    append_jsonl(run.commands_path, {"id": "a", "cmd": "pause"})
    inbox._on_change()                  # the write, noticed at step 10
    [item] = inbox.drain()
    assert item.step == 10
    step["now"] = 11
    inbox._on_change()                  # the close of the same line, after the read
    step["now"] = 14
    append_jsonl(run.commands_path, {"id": "b", "cmd": "resume"})
    step["now"] = 15
    [item] = inbox.drain()              # read before its own notice came: stamped now
    assert item.step == 15, "the stale notice of line 1 stamped line 2"


def test_a_read_without_a_notice_stamps_the_step_after_telling_the_loop(tmp_path):
    # The heartbeat's safety-net read can find a line before watchdog reports it. Its stamp must
    # be the step at which the loop was told (CI saw a stamp taken before the read, 3 steps early).
    run = make_run(tmp_path)
    step = {"now": 20}

    def loop_told():
        step["now"] += 1  # the graph finishes the step in progress, then sees its interrupt

    inbox = CommandInbox(run, lambda: step["now"], on_ready=loop_told)
    append_jsonl(run.commands_path, {"id": "a", "cmd": "pause"})
    inbox.poll()
    [item] = inbox.drain()
    assert item.step == 21


def test_a_notice_of_a_replaced_file_stamps_it(tmp_path):
    run = make_run(tmp_path)
    step = {"now": 1}
    inbox = CommandInbox(run, lambda: step["now"])
    append_jsonl(run.commands_path, {"id": "a", "cmd": "pause"})
    assert len(inbox.drain()) == 1
    copy = run.commands_path.with_name("saved-by-an-editor")
    copy.write_bytes(run.commands_path.read_bytes())
    append_jsonl(copy, {"id": "b", "cmd": "resume"})
    os.replace(copy, run.commands_path)  # replaced (a new inode), one line longer
    step["now"] = 5
    inbox._on_change()
    step["now"] = 6
    [item] = inbox.drain()              # the old line is not answered again
    assert (item.id, item.step) == ("b", 5)


def test_a_notice_sets_ready_before_telling_the_loop(tmp_path):
    run = make_run(tmp_path)
    calls = Calls()
    inbox = CommandInbox(run, lambda: 0, on_ready=calls)
    calls.inbox = inbox
    assert not inbox.ready.is_set() and calls.count == 0
    inbox._on_change()
    assert inbox.ready.is_set() and calls.ready_seen == [True]
    inbox.wake()
    assert calls.ready_seen == [True, True]


def test_a_read_that_finds_commands_sets_ready_and_an_empty_one_does_not(tmp_path):
    run = make_run(tmp_path)
    calls = Calls()
    inbox = CommandInbox(run, lambda: 0, on_ready=calls)
    inbox.poll()
    assert not inbox.ready.is_set() and calls.count == 0
    append_jsonl(run.commands_path, {"id": "a", "cmd": "pause"})
    inbox.poll()
    assert inbox.ready.is_set() and calls.count == 1
    assert [i.id for i in inbox.drain()] == ["a"]
    assert inbox.drain() == [] and not inbox.ready.is_set(), "drain clears the flag when nothing is left"
    answered_only = CommandInbox(run, lambda: 0, {(1, "a")}, on_ready=calls)
    answered_only.poll()
    assert not answered_only.ready.is_set(), "skipped lines wake nobody"


def test_wait_returns_whether_a_command_arrived(tmp_path):
    run = make_run(tmp_path)
    inbox = CommandInbox(run, lambda: 0)
    assert inbox.wait(0.01) is False
    inbox.wake()
    assert inbox.wait(0.01) is True


def test_the_watcher_delivers_appended_lines_and_lines_written_before_it_started(tmp_path):
    run = make_run(tmp_path)
    append_jsonl(run.commands_path, {"id": "early", "cmd": "pause"})
    calls = Calls()
    inbox = CommandInbox(run, lambda: 0, on_ready=calls).start()
    try:
        assert inbox.ready.is_set() and calls.count >= 1, "start reads what was written before"
        assert [i.id for i in inbox.drain()] == ["early"]
        assert inbox.drain() == [] and not inbox.ready.is_set()
        append_jsonl(run.commands_path, {"id": "late", "cmd": "resume"})
        assert inbox.wait(60), "the watcher noticed the appended line"
        assert [i.id for i in inbox.drain()] == ["late"]
    finally:
        inbox.stop()


def test_describe_echoes_bounded_fields():
    item = Received(7, {"id": "c", "cmd": "set_lr", "value": float("nan")}, 1.0, 0)
    assert CommandInbox.describe(item) == {"command_id": "c", "cmd": "set_lr", "value": None, "line": 7}
    assert CommandInbox.describe(Received(2, None, 1.0, 0)) == {"command_id": None, "cmd": None, "value": None,
                                                               "line": 2}
    big = CommandInbox.describe(Received(3, {"id": 5, "cmd": "x" * 1000, "value": [1] * 1000}, 1.0, 0))
    assert big["command_id"] is None and big["line"] == 3
    assert big["cmd"]["truncated"] is True and len(big["cmd"]["preview"]) == MAX_ECHO_CHARS
    assert big["value"]["truncated"] is True


def test_only_the_commands_file_wakes_the_inbox(tmp_path):
    """The trainer writes status.json at every heartbeat: that must not interrupt its own epoch graph."""
    from trainer.contract.watch import FileWatcher
    run = make_run(tmp_path)
    step = {"now": 1}
    inbox = CommandInbox(run, lambda: step["now"]).start()
    try:
        with FileWatcher(run.path, ["other.txt"]) as other:
            (run.path / "other.txt").write_text("x")
            assert other.wait(60), "the test's own watcher saw the other file change"
        step["now"] = 2
        append_jsonl(run.commands_path, {"id": "a", "cmd": "pause"})
        assert inbox.wait(60)
        [item] = inbox.drain()
        assert item.step == 2, "a notice of another file stamped the command"
    finally:
        inbox.stop()


def test_client_text_is_read_raw_so_a_lone_surrogate_reaches_validation(tmp_path):
    run = make_run(tmp_path)
    write_line(run, '{"id": "s", "cmd": "pause", "note": "\\udfff"}')
    [item] = CommandInbox(run, lambda: 0).drain()
    assert item.record == {"id": "s", "cmd": "pause", "note": "\udfff"}, "not scrubbed into U+FFFD"


def test_a_line_over_the_limit_is_delivered_with_its_problem_and_a_normal_one_without(tmp_path):
    from trainer.contract.inbox import TOO_LONG
    from trainer.contract.rundir import MAX_LINE_BYTES
    run = make_run(tmp_path)
    write_line(run, '{"id": "ok", "cmd": "pause"}')
    write_line(run, '"' + "x" * MAX_LINE_BYTES + '"')
    items = CommandInbox(run, lambda: 0).drain()
    assert [(i.line, i.record, i.problem) for i in items] == [(1, {"id": "ok", "cmd": "pause"}, None),
                                                             (2, None, TOO_LONG)]


def replace_file(run: RunDir, *records: dict) -> None:
    """An editor's save: a new file (a new inode) renamed over commands.jsonl."""
    new = run.commands_path.with_name("commands.new")
    append_jsonl(new, *records)
    new.replace(run.commands_path)


def test_after_a_replace_no_line_or_id_delivered_or_answered_before_is_delivered_again(tmp_path):
    run = make_run(tmp_path)
    append_jsonl(run.commands_path, {"id": "old", "cmd": "pause"}, {"id": "b", "cmd": "pause"}, {"cmd": "no id"})
    inbox = CommandInbox(run, lambda: 0, answered={(1, "old")})
    assert [(i.line, i.id) for i in inbox.drain()] == [(2, "b"), (3, None)]
    # the same lines at new places, an answered id, a delivered id, and one new id
    replace_file(run, {"id": "b", "cmd": "pause"}, {"id": "old", "cmd": "pause"}, {"cmd": "no id"},
                 {"id": "new", "cmd": "resume"})
    assert [(i.line, i.id) for i in inbox.drain()] == [(4, "new")]
    assert inbox.drain() == []


def test_before_any_replace_a_repeated_id_is_delivered_to_be_rejected(tmp_path):
    run = make_run(tmp_path)
    append_jsonl(run.commands_path, {"id": "a", "cmd": "pause"})
    inbox = CommandInbox(run, lambda: 0, answered={(1, "a")})
    assert inbox.drain() == []
    append_jsonl(run.commands_path, {"id": "a", "cmd": "pause"})
    assert [(i.line, i.id) for i in inbox.drain()] == [(2, "a")]


def test_a_second_replace_still_skips_what_was_delivered(tmp_path):
    run = make_run(tmp_path)
    append_jsonl(run.commands_path, {"id": "a", "cmd": "pause"})
    inbox = CommandInbox(run, lambda: 0)
    assert [i.id for i in inbox.drain()] == ["a"]
    replace_file(run, {"id": "x", "cmd": "pause"})
    assert [i.id for i in inbox.drain()] == ["x"]
    replace_file(run, {"id": "y", "cmd": "pause"}, {"id": "a", "cmd": "pause"}, {"id": "x", "cmd": "pause"})
    assert [(i.line, i.id) for i in inbox.drain()] == [(1, "y")]
