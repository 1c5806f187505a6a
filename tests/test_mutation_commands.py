"""What a running trainer accepts, at every limit: exactly the limit, one past it (trainer/contract/commands.py).

The mutation-testing selection for trainer/contract/commands.py (pyproject.toml [tool.panda.mutation]).
"""

from __future__ import annotations

import pytest

from trainer.contract import commands as cmds
from trainer.contract.commands import (COMMANDS, MAX_BATCH_SIZE, MAX_EXPLORE_STEPS, MAX_FORK_CANDIDATES, MAX_LR, MAX_SCALE,
                              VALUED, Command, CommandError, check_adopt, check_candidate, check_checkpoint_name,
                              check_find_lr, check_fork, check_note, check_switch, valid_id, validate)


def refused(check, value, *args) -> str:
    with pytest.raises(CommandError) as e:
        check(value, *args)
    assert type(e.value) is CommandError
    return str(e.value)


# --- ids and the envelope ---------------------------------------------------------------------

@pytest.mark.parametrize("good", ["c", "c-1", "x" * 128, "a.b:c@d+e=f_g", "A9"])
def test_valid_ids(good):
    assert valid_id(good) == good
    assert validate({"id": good, "cmd": "pause"}) == Command(good, "pause", None)


@pytest.mark.parametrize("bad", ["", "x" * 129, "é ü ✓", "a b", "~!@#", "h\n", "a\x00b", "a\tb", "a\x1fb", "a\x7fb",
                                 "\nid", None, 7, 1.5, ["c"],
                                 {"id": "c"}, True])
def test_invalid_ids(bad):
    assert valid_id(bad) is None
    assert "needs an 'id'" in refused(validate, {"id": bad, "cmd": "pause"})


@pytest.mark.parametrize("record", [None, [], "pause", 7, ["id", "cmd"]])
def test_a_command_is_an_object(record):
    assert "JSON object" in refused(validate, record)


@pytest.mark.parametrize("name", [None, 7, "", "PAUSE", "pause ", "set-lr", "nope", ["pause"]])
def test_unknown_commands_are_refused(name):
    assert "unknown command" in refused(validate, {"id": "c", "cmd": name})


def test_every_command_by_whether_it_takes_a_value():
    assert set(VALUED) == set(COMMANDS) - {"pause", "resume", "stop", "checkpoint", "undo"}
    for name in COMMANDS:
        if name in VALUED:
            assert refused(validate, {"id": "c", "cmd": name}) == f"{name} needs a value"
            assert refused(validate, {"id": "c", "cmd": name, "value": None}) == f"{name} needs a value"
        else:
            assert validate({"id": "c", "cmd": name}) == Command("c", name, None)
            assert validate({"id": "c", "cmd": name, "value": None}) == Command("c", name, None)
            for value in (0, False, "", "x", [], {}):
                assert refused(validate, {"id": "c", "cmd": name, "value": value}) == "this command takes no value"


def test_a_valued_command_keeps_its_checked_value():
    assert validate({"id": "c", "cmd": "set_lr", "value": "0.5"}) == Command("c", "set_lr", 0.5)
    assert validate({"id": "c", "cmd": "set_autopilot", "value": "off"}) == Command("c", "set_autopilot", False)
    assert validate({"id": "c", "cmd": "rewind", "value": 3}) == Command("c", "rewind", "3")


# --- the hyperparameter commands --------------------------------------------------------------

def test_learning_rate_limits():
    assert cmds.check_lr(MAX_LR) == MAX_LR
    assert cmds.check_lr(1e-12) == 1e-12
    for bad in (0, -1e-9, MAX_LR * 1.0001, float("nan"), float("inf"), True, "fast", [0.1]):
        refused(cmds.check_lr, bad)
    assert "learning rate" in refused(cmds.check_lr, 0)


def test_scale_factor_limits():
    assert cmds.check_scale(MAX_SCALE) == MAX_SCALE
    assert cmds.check_scale("0.5") == 0.5
    for bad in (0, -2, MAX_SCALE * 1.0001, "nan", None):
        refused(cmds.check_scale, bad)
    assert validate({"id": "c", "cmd": "scale_lr", "value": 2}) == Command("c", "scale_lr", 2.0)
    refused(validate, {"id": "c", "cmd": "scale_lr", "value": 0})


def test_beta_and_batch_size_limits():
    assert cmds.check_beta(0) == 0 and cmds.check_beta(0.999) == 0.999
    for bad in (1, -0.01, 1.5):
        refused(cmds.check_beta, bad)
    assert cmds.check_batch_size(1) == 1 and cmds.check_batch_size(MAX_BATCH_SIZE) == MAX_BATCH_SIZE
    for bad in (0, MAX_BATCH_SIZE + 1, 2.5, "many"):
        refused(cmds.check_batch_size, bad)


# --- rewind and set_autopilot -----------------------------------------------------------------

@pytest.mark.parametrize("value, name", [("ckpt-00007", "ckpt-00007"), ("7", "7"), (7, "7"), (0, "0"),
                                         (" ckpt-1 ", "ckpt-1"), ("123456789", "123456789"),
                                         ("ckpt-123456789", "ckpt-123456789")])
def test_rewind_targets(value, name):
    assert check_checkpoint_name(value) == name


@pytest.mark.parametrize("bad", ["7abc", "ckpt-1/../x", "../ckpt-1", "ckpt-", "ckpt-x", "1234567890", "ckpt-1234567890",
                                 "", " ", "-1", -1, "²", "٣", "1.5", 1.5, True, False, None, ["ckpt-1"], "CKPT-1"])
def test_rewind_refuses_anything_else(bad):
    assert "rewind needs a checkpoint name" in refused(check_checkpoint_name, bad)


@pytest.mark.parametrize("value, on", [(True, True), (False, False), ("true", True), ("on", True), ("false", False),
                                       ("off", False), (" ON ", True), ("Off", False), ("TRUE", True)])
def test_switch_values(value, on):
    assert check_switch(value) is on
    assert validate({"id": "c", "cmd": "set_autopilot", "value": value}).value is on


@pytest.mark.parametrize("bad", ["yes", "no", "1", "0", 1, 0, "", "onn", None, [], {"on": True}])
def test_switch_refuses_anything_else(bad):
    assert "expected true or false" in refused(check_switch, bad)


# --- find_lr --------------------------------------------------------------------------------------

def test_find_lr_defaults_and_overrides():
    assert check_find_lr({}) == {"steps": 100, "min": 1e-6, "max": 1.0}
    assert check_find_lr({"steps": None, "min": None, "max": None}) == {"steps": 100, "min": 1e-6, "max": 1.0}
    assert check_find_lr({"steps": 2, "min": 0.001, "max": MAX_LR}) == {"steps": 2, "min": 0.001, "max": MAX_LR}
    assert check_find_lr({"steps": MAX_EXPLORE_STEPS})["steps"] == MAX_EXPLORE_STEPS


@pytest.mark.parametrize("bad, says", [
    ({"steps": 1}, "steps"), ({"steps": MAX_EXPLORE_STEPS + 1}, "steps"), ({"steps": 2.5}, "steps"),
    ({"min": 0}, "find_lr range"), ({"max": MAX_LR * 2}, "find_lr range"),
    ({"min": 0.1, "max": 0.1}, "min must be below max"), ({"min": 0.2, "max": 0.1}, "min must be below max"),
    ({"stepz": 5}, "unknown field"), ([], "needs an object"), ("100", "needs an object"), (None, "needs an object"),
])
def test_find_lr_refuses(bad, says):
    assert says in refused(check_find_lr, bad)


# --- fork -----------------------------------------------------------------------------------------

def test_fork_of_one_to_eight_candidates():
    one = check_fork({"candidates": [{"lr": "0.01"}], "steps": 1})
    assert one == {"candidates": [{"lr": 0.01}], "steps": 1, "pick": "ask"}
    eight = [{"lr": 0.001 * (i + 1)} for i in range(MAX_FORK_CANDIDATES)]
    out = check_fork({"candidates": eight, "steps": MAX_EXPLORE_STEPS, "pick": "best"})
    assert out == {"candidates": eight, "steps": MAX_EXPLORE_STEPS, "pick": "best"}
    assert check_fork({"candidates": [{"beta": 0.5}], "steps": 3, "pick": None})["pick"] == "ask"
    assert check_fork({"candidates": [{"beta": 0.5}], "steps": 3, "pick": "ask"})["pick"] == "ask"


@pytest.mark.parametrize("bad, says", [
    ({"candidates": [{"lr": 0.01}] * (MAX_FORK_CANDIDATES + 1), "steps": 5}, f"at most {MAX_FORK_CANDIDATES}"),
    ({"candidates": [], "steps": 5}, "at least one candidate"),
    ({"candidates": None, "steps": 5}, "at least one candidate"),
    ({"candidates": {"lr": 0.1}, "steps": 5}, "at least one candidate"),
    ({"steps": 5}, "at least one candidate"),
    ({"candidates": [{"lr": 0.01}]}, "needs steps"),
    ({"candidates": [{"lr": 0.01}], "steps": None}, "needs steps"),
    ({"candidates": [{"lr": 0.01}], "steps": 0}, "steps"),
    ({"candidates": [{"lr": 0.01}], "steps": MAX_EXPLORE_STEPS + 1}, "steps"),
    ({"candidates": [{"lr": 0.01}], "steps": 5, "pick": "worst"}, "pick must be"),
    ({"candidates": [{"lr": 0.01}], "steps": 5, "pick": "BEST"}, "pick must be"),
    ({"candidates": [{"lr": 0.01}], "steps": 5, "extra": 1}, "unknown field"),
    ({"candidates": [{"lr": 0.01}, {"lr": 0}], "steps": 5}, "fork candidate 2"),
    ({"candidates": [{"lr": 0.01}, {}], "steps": 5}, "fork candidate 2 sets nothing"),
    ({"candidates": [{"lr": None, "beta": None}], "steps": 5}, "fork candidate 1 sets nothing"),
    ({"candidates": [{"momentum": 0.9}], "steps": 5}, "unknown field"),
    ({"candidates": ["0.1"], "steps": 5}, "fork candidate 1 needs an object"),
])
def test_fork_refuses(bad, says):
    assert says in refused(check_fork, bad)


def test_a_candidate_checks_each_setting_with_its_own_limits():
    full = check_candidate({"lr": "0.1", "beta": 0, "batch_size": "32"}, 0)
    assert full == {"lr": 0.1, "beta": 0, "batch_size": 32}
    assert check_candidate({"batch_size": MAX_BATCH_SIZE}, 3) == {"batch_size": MAX_BATCH_SIZE}
    assert refused(check_candidate, {"beta": 1}, 2).startswith("fork candidate 3: ")
    assert refused(check_candidate, {"batch_size": 0}, 0).startswith("fork candidate 1: ")


# --- adopt ----------------------------------------------------------------------------------------

def test_adopt_takes_a_path_and_optional_checkpoint_and_settings():
    assert check_adopt("runs/a") == {"run": "runs/a", "checkpoint": None, "lr": None, "beta": None}
    full = check_adopt({"run": "runs/a", "checkpoint": "ckpt-00003", "lr": "0.5", "beta": 0.9})
    assert full == {"run": "runs/a", "checkpoint": "ckpt-00003", "lr": 0.5, "beta": 0.9}
    assert check_adopt({"run": "r", "checkpoint": 4})["checkpoint"] == "4"
    assert check_adopt({"run": "x" * 4096})["run"] == "x" * 4096
    nones = check_adopt({"run": "r", "checkpoint": None, "lr": None, "beta": None})
    assert nones == {"run": "r", "checkpoint": None, "lr": None, "beta": None}


@pytest.mark.parametrize("bad, says", [
    ({"run": "x" * 4097}, "needs the path"), ({"run": "a\x00b"}, "needs the path"), ({"run": ""}, "needs the path"),
    ({"run": "   "}, "needs the path"), ({"run": 7}, "needs the path"), ({}, "needs the path"),
    ("a\x00b", "needs the path"), ({"run": "r", "checkpoint": "ckpt-1/../x"}, "rewind needs a checkpoint"),
    ({"run": "r", "lr": 0}, "adopt lr: "), ({"run": "r", "beta": 1}, "adopt beta: "),
    ({"run": "r", "what": 1}, "unknown field"), (7, "needs an object"),
])
def test_adopt_refuses(bad, says):
    assert says in refused(check_adopt, bad)


# --- note -----------------------------------------------------------------------------------------

def test_note_keeps_its_text_and_tags():
    assert check_note("hello") == {"text": "hello"}
    full = {"text": "t", "kind": "pbt_source", "proposal": "p", "source": "s", "target": "g", "checkpoint": "c"}
    assert check_note(full) == full
    assert check_note({"text": "x" * 500, "kind": None}) == {"text": "x" * 500}
    assert check_note({"text": "tab-free é ✓ \x7f"})["text"] == "tab-free é ✓ \x7f"


@pytest.mark.parametrize("bad, says", [
    ({"text": "x" * 501}, "note text"), ({"text": "a\nb"}, "note text"), ({"text": "a\x1fb"}, "note text"),
    ({"text": "ok", "kind": 7}, "note kind"), ({"text": "ok", "source": "x" * 501}, "note source"),
    ({"text": ""}, "needs a text"), ({"text": "   "}, "needs a text"), ({"kind": "k"}, "needs a text"),
    ("", "needs a text"), ({"text": "t", "mood": "x"}, "unknown field"), (5, "needs an object"),
])
def test_note_refuses(bad, says):
    assert says in refused(check_note, bad)


def test_object_errors_name_the_fields():
    message = refused(check_find_lr, 3)
    assert "'steps': ..." in message and "'max': ..." in message and "got 3" in message
    message = refused(check_fork, {"candidates": [], "nope": 1})
    assert "unknown field 'nope'" in message and "candidates, steps, pick" in message


def test_object_errors_list_the_fields_a_command_takes():
    assert "{'steps': ..., 'min': ..., 'max': ...}" in refused(check_find_lr, 3)


@pytest.mark.parametrize("check, value, starts", [
    (check_find_lr, {"x": 1}, "find_lr: unknown field 'x'"), (check_fork, {"x": 1}, "fork: unknown field 'x'"),
    (check_adopt, {"x": 1}, "adopt: unknown field 'x'"), (check_note, {"x": 1}, "note: unknown field 'x'"),
    (check_find_lr, 5, "find_lr needs an object"), (check_fork, 5, "fork needs an object"),
    (check_adopt, 5, "adopt needs an object"), (check_note, 5, "note needs an object"),
])
def test_errors_name_the_command(check, value, starts):
    assert refused(check, value).startswith(starts)


@pytest.mark.parametrize("check, value, says", [
    (check_find_lr, {"steps": 1}, "find_lr steps must be at least 2, got 1"),
    (check_find_lr, {"steps": MAX_EXPLORE_STEPS + 1}, f"find_lr steps {MAX_EXPLORE_STEPS + 1} is absurd"),
    (check_fork, {"candidates": [{"lr": 0.1}], "steps": 0}, "fork steps must be at least 1, got 0"),
    (check_fork, {"candidates": [{"lr": 0.1}], "steps": 5, "pick": "worst"}, "got 'worst'"),
    (check_switch, "yes", "got 'yes'"),
    (check_adopt, {"run": 7}, "got 7"),
    (check_note, {"text": "a\nb"}, "got 'a\\nb'"),
    (validate, {"id": "c", "cmd": "jump"}, "unknown command 'jump' (known: set_lr, scale_lr, set_beta,"),
])
def test_errors_say_what_was_wrong(check, value, says):
    """A refusal echoes the offending value and the limit: the user reads it to fix the command."""
    assert says in refused(check, value)


def test_rewind_takes_text_or_whole_numbers_only():
    from decimal import Decimal
    from fractions import Fraction
    for printable_as_a_number in (Decimal(7), Fraction(7), 7.0):
        refused(check_checkpoint_name, printable_as_a_number)


def test_a_hyperparameter_check_turns_option_errors_into_command_errors():
    from trainer.contract.hparams import STEERABLE
    check = cmds._checked(STEERABLE["set_lr"])
    assert check.__name__ == "check_lr"
    assert check("0.25") == 0.25
    assert refused(check, 0) == "learning rate must be > 0, got 0.0"


# --- text that is not Unicode, and what a refusal echoes ---------------------------------------

@pytest.mark.parametrize("record, where", [
    ({"id": "c", "cmd": "pause", "note": "x\udfff"}, '"note"'),
    ({"id": "c\ud800", "cmd": "pause"}, '"id"'),
    ({"id": "c", "cmd": "set_lr", "value": {"k\udfff": 1}}, 'a key of "value"'),
])
def test_a_lone_surrogate_anywhere_is_refused_naming_where(record, where):
    assert refused(validate, record) == (f"{where} holds a lone UTF-16 surrogate (like \\udfff), "
                                         "which is not valid Unicode text")


def test_a_bad_id_is_echoed_in_its_first_40_characters():
    bad = "a b" * 30
    message = refused(validate, {"id": bad, "cmd": "pause"})
    echo = cmds.text_of(bad)
    assert message.endswith(f"got {echo[:40]}") and not message.endswith(echo[:41])


# --- the command table ------------------------------------------------------------------------

#: What each command is, written out by hand: a flag flipped in trainer/contract/commands.py's TABLE fails here.
#: (name, hparam, undoable, replayed, obeyed by PandaCallback)
EXPECTED = [
    ("set_lr", True, True, True, True), ("scale_lr", True, True, True, True),
    ("set_beta", True, True, True, False), ("set_batch_size", True, True, True, False),
    ("pause", False, False, False, True), ("resume", False, False, False, True), ("stop", False, False, False, True),
    ("checkpoint", False, False, True, True), ("rewind", False, True, True, True),
    ("set_autopilot", False, False, False, False), ("find_lr", False, False, False, True),
    ("fork", False, True, False, False), ("undo", False, False, False, True), ("adopt", False, False, False, False),
    ("note", False, False, False, True), ("veto", True, True, True, False),
]


def test_the_table_names_every_command_once_in_order():
    assert [spec.name for spec in cmds.TABLE] == [row[0] for row in EXPECTED] == list(COMMANDS)
    assert cmds.TRAINER_KINDS == ("panda-train", "keras-callback")


def test_each_hyperparameter_command_names_the_knob_it_changes_in_the_hyperparameter_table():
    from trainer.contract.hparams import HYPERPARAMETERS
    assert cmds.CHANGERS == {"lr": ("set_lr", "scale_lr", "veto"), "beta": ("set_beta",), "batch_size": ("set_batch_size",)}
    for name, changers in cmds.CHANGERS.items():
        assert HYPERPARAMETERS[name].steer in changers  # the two tables agree on who sets each knob
    assert all(bool(spec.changes) is spec.hparam for spec in cmds.TABLE)


def test_describe_with_the_value_replaced_keeps_the_tables_words():
    assert cmds.describe("set_beta", 0.95, before=0.9) == "β 0.9 → 0.95"
    assert cmds.describe("set_batch_size", 64, before=32) == "batch size 32 → 64"
    assert cmds.describe("rewind", "ckpt-3", before="x") == "rewind to ckpt-3"  # no arrow: nothing replaced


@pytest.mark.parametrize("row", EXPECTED, ids=[row[0] for row in EXPECTED])
def test_each_command_entry(row):
    name, hparam, undoable, replayed, callback = row
    spec = cmds.SPECS[name]
    assert (spec.hparam, spec.undoable, spec.replayed) == (hparam, undoable, replayed)
    assert (name in cmds.HPARAM_COMMANDS, name in cmds.UNDOABLE, name in cmds.REPLAYED) == (hparam, undoable, replayed)
    assert cmds.supported(name, cmds.PANDA_TRAIN) is True
    assert cmds.supported(name, cmds.KERAS_CALLBACK) is callback
    assert cmds.supported(name, "another-trainer") is False
    if callback:
        assert spec.refusal == ""
    else:  # the refusal a PandaCallback run answers with names the command or the missing part
        error = cmds.unsupported(name)
        assert type(error) is CommandError and str(error) == spec.refusal
        assert name in spec.refusal or "advisor" in spec.refusal
    assert spec.valued == (name in VALUED)


def test_unknown_commands_are_supported_nowhere():
    assert not any(cmds.supported(name, kind) for name in (None, "", "nope", "SET_LR") for kind in cmds.TRAINER_KINDS)


def test_refusals_say_which_trainer_refuses():
    assert cmds.SPECS["set_beta"].refusal == ("set_beta is not supported in a Keras model.fit (PandaCallback): "
                                              "the optimizer's beta is a constant in its compiled step")
    assert cmds.SPECS["set_batch_size"].refusal.endswith("the batch size belongs to the data given to fit")
    assert cmds.SPECS["set_autopilot"].refusal == "this trainer has no advisor (panda train has one)"
    assert cmds.SPECS["fork"].refusal.startswith("fork is not supported in a Keras model.fit (PandaCallback): the "
                                                 "callback never holds")
    assert cmds.SPECS["adopt"].refusal.endswith("; run it with panda train")


@pytest.mark.parametrize("cmd, value, words", [
    ("set_lr", 0.01, "learning rate → 0.01"), ("scale_lr", 0.5, "learning rate ×0.5"), ("set_beta", 0.9, "β → 0.9"),
    ("set_batch_size", 64, "batch size → 64"), ("pause", None, "pause"), ("resume", None, "resume"),
    ("stop", None, "stop"), ("checkpoint", None, "checkpoint"), ("rewind", "ckpt-00003", "rewind to ckpt-00003"),
    ("set_autopilot", True, "autopilot True"), ("find_lr", {}, "find α"), ("fork", {}, "fork"),
    ("undo", None, "undo the last change"), ("adopt", {"run": "r"}, "adopt another run's checkpoint"),
    ("note", {"text": "x"}, "note"), ("nope", 1, "nope 1"), ("nope", None, "nope"),
])
def test_the_journal_words(cmd, value, words):
    assert cmds.describe(cmd, value) == words


def test_the_journal_words_take_a_formatter():
    assert cmds.describe("set_lr", 0.012345, fmt=lambda v: f"{v:.2g}") == "learning rate → 0.012"
    assert cmds.describe("nope", 0.012345, fmt=lambda v: f"{v:.2g}") == "nope 0.012"


def test_a_handler_table_must_match_the_command_table():
    handlers = {name: print for name in COMMANDS}
    assert cmds.handler_table(handlers) is handlers
    with pytest.raises(TypeError, match=r"missing \['note'\], unknown \[\]"):
        cmds.handler_table({k: v for k, v in handlers.items() if k != "note"})
    with pytest.raises(TypeError, match=r"missing \[\], unknown \['extra'\]"):
        cmds.handler_table({**handlers, "extra": print})
