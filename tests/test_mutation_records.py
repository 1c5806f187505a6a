"""The typed readers of the run directory, field by field, at each limit (trainer/contract/records.py).

The mutation-testing selection for trainer/contract/records.py (pyproject.toml [tool.panda.mutation]).
"""

from __future__ import annotations

import pytest

from trainer.contract.jsonsafe import MAX_ECHO_CHARS
from trainer.contract.records import (FLOAT_FIELDS, INT_FIELDS, TABLE_FIELDS, TEXT_FIELDS, Answer, Status, log_record, number,
                             table, text)

LONG = 10 * MAX_ECHO_CHARS


@pytest.mark.parametrize("value, out", [
    (0, 0), (-5, -5), (2 ** 63 - 1, 2 ** 63 - 1), (-(2 ** 63) + 1, -(2 ** 63) + 1), (1.5, 1.5), (-0.0, 0.0),
    (1e308, 1e308),
    (2 ** 63, None), (-(2 ** 63), None), (True, None), (False, None), (float("nan"), None), (float("inf"), None),
    (float("-inf"), None), ("1", None), (None, None), ([1], None), ({"a": 1}, None),
])
def test_number(value, out):
    assert number(value) == out
    if out is not None:
        assert type(number(value)) is type(value)


def test_text_keeps_strings_up_to_its_bound_and_cuts_one_past():
    assert text(None) is None and text("") == "" and text("abc") == "abc"
    assert text("x" * LONG) == "x" * LONG
    assert text("x" * (LONG + 1)) == "x" * LONG + "…"


@pytest.mark.parametrize("value, out", [
    (7, "7"), (True, "true"), (["x"], '["x"]'), ({"a": 1}, '{"a":1}'), (float("nan"), '"nan"'),
])
def test_text_of_other_values_is_their_json(value, out):
    assert text(value) == out


def test_text_of_a_big_value_is_bounded():
    out = text(list(range(1000)))
    assert len(out) == MAX_ECHO_CHARS and out.startswith("[0,1,2,")


def test_table_keeps_flat_entries_with_string_names():
    raw = {"lr": 0.1, "n": 3, "opt": "adam", "bn": True, "beta": None, "bad": float("nan"), "big": 10 ** 30,
           "list": [1], "sub": {"a": 1}, 7: 1, "flag": False}
    assert table(raw) == {"lr": 0.1, "n": 3, "opt": "adam", "bn": True, "beta": None, "flag": False}
    for not_a_table in (None, [], "x", 3, [("lr", 0.1)]):
        assert table(not_a_table) is None
    assert table({}) == {}


def test_log_record_types_every_kind_of_field():
    raw = {"epoch": 3, "step": "7", "line": 2.0, "pid": True, "time": 5, "lr": "0.1", "heartbeat": float("inf"),
           "id": "c-1", "cmd": {"a": 1}, "reason": None, "hparams": {"lr": 0.1, "x": [1]}, "metrics": "no",
           "value": [float("nan"), 1], "other": "x" * 500, 5: "five"}
    out = log_record(raw)
    assert out == {"epoch": 3, "step": None, "line": None, "pid": None, "time": 5.0, "lr": None, "heartbeat": None,
                   "id": "c-1", "cmd": '{"a":1}', "reason": None, "hparams": {"lr": 0.1}, "metrics": None,
                   "value": [None, 1], "other": {"preview": '"' + "x" * (MAX_ECHO_CHARS - 1), "truncated": True},
                   "5": "five"}
    assert type(out["time"]) is float
    assert log_record({"epoch": 2 ** 63}) == {"epoch": None}
    assert log_record({"received_step": -1, "to_epoch": 0}) == {"received_step": -1, "to_epoch": 0}


@pytest.mark.parametrize("key", INT_FIELDS)
def test_every_int_field_takes_whole_numbers_only(key):
    assert log_record({key: 4})[key] == 4
    for bad in (4.0, "4", True, None, 2 ** 64):
        assert log_record({key: bad})[key] is None


@pytest.mark.parametrize("key", FLOAT_FIELDS)
def test_every_float_field_takes_finite_numbers_as_floats(key):
    assert log_record({key: 4})[key] == 4.0 and type(log_record({key: 4})[key]) is float
    for bad in ("4", True, float("nan"), None, [4]):
        assert log_record({key: bad})[key] is None


@pytest.mark.parametrize("key", TEXT_FIELDS)
def test_every_text_field_is_text(key):
    assert log_record({key: "t"})[key] == "t"
    assert log_record({key: 5})[key] == "5"


@pytest.mark.parametrize("key", TABLE_FIELDS)
def test_every_table_field_is_a_flat_table(key):
    assert log_record({key: {"a": 1, "b": [1]}})[key] == {"a": 1}
    assert log_record({key: [1]})[key] is None


def test_status_reads_the_documented_types_and_defaults_the_rest():
    full = {"name": "r", "state": "running", "epoch": 3, "epochs": 10, "step": 30, "branch": 1, "pid": 99,
            "host": "h", "heartbeat": 5, "started": 1.5, "hparams": {"lr": 0.1}, "last": {"loss": 0.5},
            "message": "m", "checkpoint": "ckpt-3", "activity": {"kind": "fork", "done": 2}, "ending": "stopped",
            "explore_steps": 40}
    status = Status.from_json(full)
    assert status.to_json() == {**full, "heartbeat": 5.0}
    assert Status.from_json(status.to_json()) == status
    assert Status.from_json({}) == Status() == Status.from_json(None) == Status.from_json([1, 2])
    assert Status().to_json() == {"name": "", "state": "unknown", "epoch": 0, "epochs": None, "step": 0, "branch": 0,
                                  "pid": None, "host": None, "heartbeat": 0.0, "started": None, "hparams": {},
                                  "last": None, "message": None, "checkpoint": None, "activity": None,
                                  "ending": None, "explore_steps": 0}
    wrong = Status.from_json({"state": 5, "epoch": "3", "hparams": [1], "heartbeat": "now", "name": None,
                              "extra": 1})
    assert (wrong.state, wrong.epoch, wrong.hparams, wrong.heartbeat, wrong.name) == ("unknown", 0, {}, 0.0, "")


def test_answers_are_applied_or_rejected_events_only():
    applied = Answer.from_json({"event": "applied", "command_id": "c", "cmd": "set_lr", "time": 1, "epoch": 2,
                                "step": 3, "line": 4, "extra": "x"})
    assert applied == Answer("applied", "c", "set_lr", 1.0, 2, 3, None, 4) and applied.applied is True
    rejected = Answer.from_json({"event": "rejected", "reason": "bad", "epoch": "2"})
    assert rejected == Answer("rejected", reason="bad") and rejected.applied is False
    for other in ({"event": "started"}, {"event": "APPLIED"}, {}, None, "applied", {"event": ["applied"]}):
        assert Answer.from_json(other) is None
    assert Answer("applied ").applied is False


def test_the_typed_readers_keep_their_type_and_refuse_others():
    from trainer.contract.records import flag, obj, real, string, strings, whole, wholes
    assert flag(True) is True and flag(False) is False
    assert [flag(v) for v in (1, 0, "true", None, [])] == [None] * 5
    assert obj({"a": 1}) == {"a": 1} and obj({}) == {}
    assert [obj(v) for v in ([1], "x", 1, None)] == [None] * 4
    assert real(3) == 3.0 and type(real(3)) is float and real(-0.5) == -0.5 and real(0) == 0.0
    assert [real(v) for v in (float("nan"), True, "1", None, 2 ** 63)] == [None] * 5
    assert whole(2 ** 63 - 1) == 2 ** 63 - 1 and whole(0) == 0
    assert [whole(v) for v in (2 ** 63, -(2 ** 63), 1.0, True, "1", None)] == [None] * 6
    assert string("ok") == "ok" and string("") == "" and string("\udfff") is None and string(1) is None
    assert strings(["a", "b"]) == ["a", "b"] and strings([]) == []
    assert strings(["a", "\udfff"]) is None and strings(["a", 1]) is None and strings("ab") is None
    assert wholes([1, None, 3]) == [1, None, 3] and wholes([]) == [] and wholes([None]) == [None]
    assert wholes([1, 2 ** 63]) is None and wholes([1.5]) is None and wholes([True]) is None
    assert wholes("12") is None


def test_checkpoint_meta_fills_its_defaults_and_keeps_what_was_written():
    from trainer.contract.records import checkpoint_meta
    assert checkpoint_meta({"seq": 3, "epoch": 2, "step": 40}) == {
        "seq": 3, "epoch": 2, "step": 40, "branch": 0, "hparams": {}, "metrics": None, "reason": None}
    full = {"seq": 3, "epoch": 2, "step": 40, "branch": 1, "hparams": {"lr": 0.1}, "metrics": {"loss": 1.0},
            "reason": "best", "time": 5.0}
    assert checkpoint_meta(full) == full
    for bad in ([], "meta", None, 3):
        with pytest.raises(ValueError, match="^meta.json is not a JSON object$"):
            checkpoint_meta(bad)


def test_a_checkpoint_meta_reads_its_folder_and_writes_back_what_checkpoint_meta_gives():
    from trainer.contract.records import CheckpointMeta, checkpoint_meta
    bare = {"seq": 3, "epoch": 2, "step": 40}
    meta = CheckpointMeta.from_json(bare)
    assert (meta.seq, meta.epoch, meta.step, meta.branch, meta.name, meta.path) == (3, 2, 40, 0, None, None)
    assert meta.to_json() == checkpoint_meta(bare)  # no time, name or path written when unknown
    full = {"seq": 3, "epoch": 2, "step": 40, "branch": 1, "hparams": {"lr": 0.1}, "metrics": {"loss": 1.0},
            "reason": "best", "time": 5.0, "name": "ckpt-00003", "path": "/runs/a/checkpoints/ckpt-00003"}
    listed = CheckpointMeta.from_json(full)
    assert (listed.name, listed.path, listed.time, listed.reason) == (full["name"], full["path"], 5.0, "best")
    assert listed.to_json() == full and CheckpointMeta.from_json(listed.to_json()) == listed
    assert CheckpointMeta.from_json({**bare, "name": 3, "path": ["x"]}).to_json() == checkpoint_meta(bare)
    with pytest.raises(ValueError, match="^meta.json has no whole-number epoch$"):
        CheckpointMeta.from_json({"seq": 3, "epoch": "2", "step": 40, "name": "ckpt-00003"})


# --- epoch and batch records ------------------------------------------------------------------

from trainer.contract.records import EPOCH_COLUMNS, EPOCH_FIELDS, BatchRecord, EpochRecord  # noqa: E402

CORE = ("epoch", "branch", "step", "lr", "beta", "batch_size", "loss", "accuracy", "val_loss", "val_accuracy",
        "grad_norm", "epoch_seconds", "samples_per_second", "wall_seconds", "wall_samples_per_second", "time")
FULL = {"epoch": 4, "branch": 2, "step": 120, "lr": 0.01, "beta": 0.9, "batch_size": 32, "loss": 0.5, "accuracy": 0.8,
        "val_loss": 0.6, "val_accuracy": 0.75, "grad_norm": 1.5, "epoch_seconds": 2.0, "samples_per_second": 500.0,
        "wall_seconds": 2.5, "wall_samples_per_second": 400.0, "time": 1700000000.0, "checkpoint": "ckpt-00004",
        "explored_batches": 3, "logs": {"loss": 0.5, "accuracy": 0.8}}


def test_the_epoch_record_fields_in_order():
    assert EPOCH_COLUMNS == CORE
    assert EPOCH_FIELDS == CORE + ("checkpoint", "explored_batches", "logs")
    assert EpochRecord.OPTIONAL == ("checkpoint", "explored_batches", "logs")


def test_an_epoch_record_round_trips():
    record = EpochRecord.from_json(FULL)
    assert record == EpochRecord(**FULL)
    assert record.to_json() == FULL and list(record.to_json()) == list(FULL)


def test_an_epoch_record_with_only_its_epoch():
    record = EpochRecord.from_json({"epoch": 1})
    assert record == EpochRecord(1) and (record.branch, record.step) == (0, 0)
    assert record.to_json() == {"epoch": 1, "branch": 0, "step": 0, **{k: None for k in CORE[3:]}}


@pytest.mark.parametrize("key", ["checkpoint", "explored_batches", "logs"])
def test_an_optional_field_is_written_only_with_a_value(key):
    assert EpochRecord.from_json({"epoch": 1, key: FULL[key]}).to_json() == {
        "epoch": 1, "branch": 0, "step": 0, **{k: None for k in CORE[3:]}, key: FULL[key]}
    assert EpochRecord.from_json({"epoch": 1, key: FULL[key]}).to_json()[key] == FULL[key]


@pytest.mark.parametrize("key, bad", [
    ("branch", 1.5), ("step", "7"), ("step", True), ("lr", "0.1"), ("lr", float("nan")), ("beta", [0.9]),
    ("batch_size", 32.0), ("loss", None), ("time", {"t": 1}), ("checkpoint", 4), ("checkpoint", "\udfff"),
    ("explored_batches", "3"), ("logs", [1]), ("logs", "x"),
])
def test_a_field_of_the_wrong_type_reads_as_missing(key, bad):
    record = EpochRecord.from_json({**FULL, key: bad})
    default = {"branch": 0, "step": 0}.get(key)
    assert getattr(record, key) == default
    assert {k: v for k, v in record.to_json().items() if k != key} == {k: v for k, v in FULL.items() if k != key}


def test_logs_keep_their_plain_entries():
    assert EpochRecord.from_json({"epoch": 1, "logs": {"loss": 0.5, "x": [1], "y": "a"}}).logs == {"loss": 0.5, "y": "a"}


@pytest.mark.parametrize("data", [None, [], "x", 7, {}, {"epoch": "1"}, {"epoch": 1.0}, {"epoch": True},
                                  {"loss": 0.5}, {"epoch": 2 ** 63}])
def test_no_epoch_no_epoch_record(data):
    assert EpochRecord.from_json(data) is None


def test_a_batch_record():
    assert BatchRecord(3, 40, 0.25, 1).to_json() == {"epoch": 3, "step": 40, "loss": 0.25, "branch": 1}
    assert BatchRecord.from_json({"epoch": 3, "step": 40, "loss": 0.25, "branch": 1}) == BatchRecord(3, 40, 0.25, 1)
    nonfinite = BatchRecord.from_json({"epoch": 3, "step": 40, "loss": None})
    assert nonfinite == BatchRecord(3, 40) and nonfinite.to_json() == {"epoch": 3, "step": 40, "loss": None, "branch": 0}
    assert BatchRecord.from_json({"epoch": 3, "step": 40, "loss": "low", "branch": "b"}) == BatchRecord(3, 40, None, 0)


@pytest.mark.parametrize("data", [None, {"epoch": 3}, {"step": 40, "loss": 0.1}, {"epoch": 3, "step": 4.0}])
def test_no_epoch_and_step_no_batch_record(data):
    assert BatchRecord.from_json(data) is None


def test_a_status_says_how_a_finished_run_ended():
    assert Status.from_json({"state": "finished", "ending": "stopped"}).ending == "stopped"
    assert Status.from_json({"state": "finished", "ending": ["stopped"]}).ending is None
    assert Status.from_json({"state": "running"}).ending is None
    assert Status(state="finished", ending="interrupted").to_json()["ending"] == "interrupted"


def test_a_status_written_before_ending_existed_is_read_by_its_message():
    old = {"name": "r", "state": "finished", "epoch": 3, "message": "stopped by the user"}
    assert Status.from_json(old).ending == "stopped"
    assert Status.from_json({**old, "message": "interrupted by Ctrl-C or SIGTERM"}).ending == "interrupted"
    assert Status.from_json({**old, "message": "done"}).ending is None
    assert Status.from_json({**old, "state": "running"}).ending is None, "only a finished run has an ending"
    assert Status.from_json({**old, "ending": "completed"}).ending == "completed", "a written ending wins"
