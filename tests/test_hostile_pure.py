"""Hostile input against the pure parts: validation, the JSONL reader, JSON writing, the dashboard's readers."""

from __future__ import annotations

import threading

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostile import DEEP, HOSTILE_LINES, command_like, json_values, lines
from trainer.contract import commands as cmds
from trainer.contract.inbox import CommandInbox, Received
from trainer.contract.journal import answered_in, state_at_end
from trainer.contract.jsonsafe import MAX_ECHO_CHARS, parse_line, preview
from trainer.contract.rundir import JsonlTail, RunDir, append_jsonl, dumps

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(json_values | command_like)
def test_validate_raises_only_command_error(record):
    try:
        cmds.validate(record)
    except cmds.CommandError:
        pass


@SETTINGS
@given(json_values)
def test_dumps_always_writes_strict_json(value):
    text = dumps({"value": value, "echo": preview(value)})
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON: {c}"))


@SETTINGS
@given(st.lists(lines, max_size=5), st.integers(0, 2**31))
def test_jsonl_tail_never_raises_and_keeps_the_valid_line_after_garbage(tmp_path, garbage, n):
    path = tmp_path / f"c-{n}.jsonl"
    path.write_bytes(b"".join(garbage))
    tail = JsonlTail(path)
    tail.read_new_lines()
    append_jsonl(path, {"id": f"ok-{n}", "cmd": "pause"})
    assert {"id": f"ok-{n}", "cmd": "pause"} in [r for _, r in tail.read_new_lines()] + JsonlTail(path).read_new()
    path.unlink()


@SETTINGS
@given(st.lists(lines, max_size=6))
def test_the_dashboard_reads_any_command_file(tmp_path, garbage):
    from app.data import journal_view as journal
    from app.figures.run_charts import interventions, learning_rate_series
    from app.data import RunData

    run = RunDir(tmp_path / f"r{len(list(tmp_path.iterdir()))}").create()
    run.write_config({"name": run.name, "epochs": 3})
    run.commands_path.write_bytes(b"".join(garbage) + b"\n")
    for _, record in JsonlTail(run.commands_path).read_new_lines():  # the trainer's echo of each line
        item = Received(1, record, 0.0, 0)
        append_jsonl(run.events_path, {"event": "rejected", "reason": "r", **CommandInbox.describe(item),
                                       "hparams": (record or {}).get("value")})
    data = RunData(run.path, watch=False)
    data.refresh(force=True)
    view = data.view()
    journal.commands_table(view)
    journal.events_table(view)
    interventions(view)
    learning_rate_series(view)
    data.close()


# ----------------------------------------------------------------------------- one test per bullet


def test_a_list_id_does_not_crash_the_inbox(tmp_path):
    run = RunDir(tmp_path / "r").create()
    run.commands_path.write_bytes(b'{"id": ["x"], "cmd": "pause"}\n{"id": {"a": 1}, "cmd": "pause"}\n')
    inbox = CommandInbox(run, lambda: 0, {(9, "old")})
    items = inbox.drain()
    assert [i.key for i in items] == [(1, None), (2, None)]
    assert CommandInbox.describe(items[0])["command_id"] is None


@pytest.mark.parametrize("cmd", ["set_lr", "set_batch_size", "scale_lr", "set_beta"])
def test_integers_of_hundreds_of_digits_are_rejected(cmd):
    with pytest.raises(cmds.CommandError):
        cmds.validate({"id": "x", "cmd": cmd, "value": 10**400})


def test_a_rejection_of_nested_non_finite_numbers_can_be_written():
    record = json.loads(HOSTILE_LINES[5])
    text = dumps({"event": "rejected", **CommandInbox.describe(Received(1, record, 0.0, 0))})
    assert json.loads(text)["value"] == [None, {"x": None}]


def test_unicode_digits_are_not_a_rewind_target():
    with pytest.raises(cmds.CommandError):
        cmds.validate({"id": "x", "cmd": "rewind", "value": "²"})


def test_unicode_digits_do_not_crash_checkpoint_lookup(tmp_path):
    from trainer.training.checkpoints import CheckpointStore
    from trainer.contract.rundir import CheckpointError

    folder = tmp_path / "ckpt-00001"  # find() reads the index and the found one's meta.json: no TensorFlow objects
    folder.mkdir()
    (folder / "meta.json").write_text('{"seq": 1, "epoch": 2, "step": 9}')
    (folder / "ckpt.index").write_bytes(b"")
    store = object.__new__(CheckpointStore)
    store._index, store.skipped, store.on_skip = [{"name": "ckpt-00001", "epoch": 2, "path": str(folder)}], [], None
    store._idle, store._pending, store._error = threading.Condition(), 0, None
    with pytest.raises(CheckpointError):
        store.find("²")
    assert store.find("2")["name"] == "ckpt-00001"


def test_json_nested_thousands_deep_is_one_malformed_line_and_loses_nothing_after_it(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_bytes(DEEP + b"[" * 100000 + b"\n" + b'{"id": "after", "cmd": "pause"}\n')
    assert [r and r["id"] for _, r in JsonlTail(path).read_new_lines()] == [None, None, "after"]
    assert len(dumps({"v": preview(json.loads(b"[" * 500 + b"]" * 500))})) < 4 * MAX_ECHO_CHARS


def test_a_torn_line_costs_only_itself(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_bytes(b'{"id": "torn", "cmd": "set_l')
    append_jsonl(path, {"id": "good", "cmd": "pause"})
    assert JsonlTail(path).read_new_lines() == [(1, None), (1, {"id": "good", "cmd": "pause"})]
    assert parse_line(b'{"id": "a"}{"id": "b"}') == [{"id": "a"}, {"id": "b"}], "only the newline was lost"


def test_every_id_is_answered_once_across_restarts():
    events = [{"event": "applied", "command_id": "a", "line": 1},
              {"event": "rejected", "command_id": None, "line": 2},  # the empty id
              {"event": "rejected", "command_id": None, "duplicate_id": "a", "line": 3}]
    ids, keys = answered_in(events)
    assert ids == {"a"}
    assert Received(3, {"id": "a"}, 0, 0).key in keys, "a duplicate is not answered again after a restart"
    assert Received(2, {"id": ""}, 0, 0).key in keys, "nor a line with an empty id"
    assert Received(4, {"id": "a"}, 0, 0).key not in keys, "a new duplicate after a restart is answered (rejected)"
    assert cmds.valid_id("") is None and cmds.valid_id("a" * 129) is None and cmds.valid_id("c-1") == "c-1"


def test_a_rejection_echoes_at_most_a_bounded_preview():
    big = json.loads(HOSTILE_LINES[10])
    echo = CommandInbox.describe(Received(1, big, 0.0, 0))["value"]
    assert echo["truncated"] is True and len(echo["preview"]) <= MAX_ECHO_CHARS
    assert len(dumps(echo)) < 4 * MAX_ECHO_CHARS
    assert CommandInbox.describe(Received(1, {"value": 0.5}, 0.0, 0))["value"] == 0.5


def test_a_paused_or_diverged_run_comes_back_that_way():
    assert state_at_end([{"event": "paused"}]) == "paused"
    assert state_at_end([{"event": "diverged"}, {"event": "finished", "reason": "interrupted"}]) == "diverged"
    assert state_at_end([{"event": "paused"}, {"event": "finished", "reason": "stopped"}]) is None
    assert state_at_end([{"event": "paused"}, {"event": "resumed"}]) is None


def test_a_label_of_two_billion_classes_is_refused(tmp_path):
    from trainer.training.datasets import DataError, load_dataset

    csv = tmp_path / "big.csv"
    csv.write_text("a,label\n" + "".join(f"{i},{2**31 - 2 if i == 0 else i % 2}\n" for i in range(20)))
    with pytest.raises(DataError, match="class"):
        load_dataset(str(csv), 0.2, 0)


def test_numbers_too_big_for_a_float_do_not_break_the_charts():
    from app.data import _number

    assert math.isnan(_number(10**400))


def test_a_reader_that_leaves_early_is_not_an_error(tmp_path):
    """`panda status RUN | head -1`: the pipe closes under the writer; panda exits quietly."""
    import subprocess
    import sys

    from tests.conftest_app import make_run

    run = make_run(tmp_path, "r", epochs_done=3)
    reader = subprocess.Popen(["head", "-c", "1"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    code = f"import sys; from app.serving.panda_cli import main; sys.stdout.write('x' * 200_000); sys.exit(main(['status', {str(run.path)!r}]))"
    panda = subprocess.run([sys.executable, "-c", code], stdout=reader.stdin, stderr=subprocess.PIPE, text=True,
                           timeout=60)
    reader.stdin.close()
    reader.wait(timeout=10)
    assert panda.returncode == 0 and "error" not in panda.stderr
