"""The options table at its edges: each bound inclusive or open, each spelling of a choice (trainer/contract/options.py).

The mutation-testing selection for trainer/contract/options.py (pyproject.toml [tool.panda.mutation]).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import pytest

from trainer.contract.options import (MAX_INT, Option, OptionError, add_flags, argparse_type, defaults_of, option,
                             options_of, short_repr, to_flags)


@dataclass
class Knobs:
    rate: float = option(0.1, "float", "how fast", label="rate of learning", low=0, low_open=True, high=10,
                         search=True)
    keep: float = option(0.5, "float", "kept share", low=0, high=1, high_open=True)
    both: float = option(0.5, "float", "open both ends", low=0, low_open=True, high=1, high_open=True)
    count: int = option(4, "int", "how many", low=1, high=MAX_INT, search=True, metavar="N")
    size: int = option(8, "int", "a size", low=2, high=9)
    free: float = option(1.0, "float", "no bounds")
    mode: str = option("fast", "choice", "how", choices=("fast", "slow"), search=True)
    flag_on: bool = option(True, "bool", "a switch", search=True)
    name: str = option("x", "text", "a name")
    beta: float | None = option(None, "float", "optional", low=0, high=1, optional=True)
    tags: list = option(["a"], "text", "a list default")


T = options_of(Knobs)


def why(opt: Option, value) -> OptionError:
    with pytest.raises(OptionError) as e:
        opt.check(value)
    return e.value


# --- numbers and their bounds -----------------------------------------------------------------

def test_inclusive_bounds_take_exactly_the_bound():
    assert T["rate"].check(10) == 10.0 and T["rate"].check("10") == 10.0
    assert T["keep"].check(0) == 0.0
    assert T["count"].check(1) == 1 and T["count"].check(MAX_INT) == MAX_INT
    assert T["size"].check(2) == 2 and T["size"].check(9) == 9


def test_open_bounds_refuse_exactly_the_bound():
    assert str(why(T["rate"], 0)) == "rate of learning must be > 0, got 0.0"
    assert str(why(T["keep"], 1)) == "keep must be in [0, 1), got 1.0"
    assert str(why(T["both"], 0)) == "both must be in (0, 1), got 0.0"
    assert str(why(T["both"], 1)) == "both must be in (0, 1), got 1.0"
    assert T["both"].check(0.5) == 0.5 and T["keep"].check(0.999) == 0.999 and T["rate"].check(1e-9) == 1e-9


def test_one_past_a_bound_is_refused_and_says_which():
    assert str(why(T["rate"], 10.001)) == "rate of learning 10.001 is absurd (the limit is 10)"
    assert str(why(T["count"], MAX_INT + 1)) == f"count {MAX_INT + 1} is absurd (the limit is {MAX_INT:g})"
    assert str(why(T["size"], 1)) == "size must be at least 2, got 1"
    assert str(why(T["size"], 10)) == "size 10 is absurd (the limit is 9)"
    assert str(why(T["keep"], -0.5)) == "keep must be in [0, 1), got -0.5"
    assert str(why(Option("float", "", name="floor", low=0), -0.5)) == "floor must be >= 0, got -0.5"
    assert str(why(T["beta"], 1.5)) == "beta 1.5 is absurd (the limit is 1)"


def test_an_error_names_the_option_and_the_reason():
    e = why(T["size"], 1)
    assert (e.what, e.reason) == ("size", "must be at least 2, got 1")
    assert isinstance(e, ValueError)
    choice = why(T["mode"], "medium")
    assert choice.what == "mode" and choice.reason == "must be one of fast, slow, got 'medium'"
    assert str(choice) == "unknown mode 'medium' (choose from fast, slow)"


def test_unbounded_numbers_are_any_finite_number():
    assert T["free"].check(-1e300) == -1e300 and T["free"].check("1e300") == 1e300
    for bad, says in ((float("inf"), "must be finite"), ("nan", "must be finite"), ("-inf", "must be finite"),
                      ("1e999", "must be finite"), ("ten", "must be a number"), (True, "must be a number"),
                      ([1], "must be a number"), (None, "needs a value"), (10 ** 400, "must be a number")):
        assert says in str(why(T["free"], bad))


def test_whole_numbers_take_no_fractions():
    assert T["size"].check("5") == 5 and type(T["size"].check(5.0)) is int
    assert T["count"].check(" 7 ") == 7
    assert str(why(T["size"], 2.5)) == "size must be a whole number, got 2.5"
    assert str(why(T["size"], "3.5")) == "size must be a whole number, got '3.5'"


def test_numbers_as_text_are_stripped():
    assert T["rate"].check(" 0.5\n") == 0.5
    assert str(why(T["rate"], "0.5x")) == "rate of learning must be a number, got '0.5x'"


def test_optional_takes_none_and_required_does_not():
    assert T["beta"].check(None) is None
    assert str(why(T["rate"], None)) == "rate of learning needs a value"
    assert T["beta"].check(0) == 0 and T["beta"].check(1) == 1


# --- choices, switches and text -----------------------------------------------------------------

@pytest.mark.parametrize("text, value", [("true", True), ("on", True), ("yes", True), ("1", True), (1, True),
                                         ("false", False), ("off", False), ("no", False), ("0", False), (0, False),
                                         (" YES ", True), ("Off", False), ("TRUE", True), (True, True),
                                         (False, False)])
def test_switch_spellings(text, value):
    assert T["flag_on"].check(text) is value


@pytest.mark.parametrize("bad", ["2", 2, "y", "", "tru", 1.0, [True], "none"])
def test_switch_refuses_other_values(bad):
    assert str(why(T["flag_on"], bad)) == f"flag_on must be true or false, got {short_repr(bad)}"


def test_choices_in_any_case_and_spacing():
    assert T["mode"].check("slow") == "slow" and T["mode"].check(" FAST ") == "fast"
    for bad in ("medium", "", 1, None, ["fast"]):
        with pytest.raises(OptionError):
            T["mode"].check(bad)


def test_text_is_text():
    assert T["name"].check("anything, even 1") == "anything, even 1"
    assert T["name"].check("") == ""
    assert str(why(T["name"], 5)) == "name must be text, got 5"


# --- what the table derives ---------------------------------------------------------------------

def test_flags_names_and_scales():
    assert [o.name for o in T.values()] == list(Knobs.__dataclass_fields__)
    assert T["flag_on"].flag == "--flag-on" and T["rate"].flag == "--rate"
    assert T["rate"].scales == ("log", "log1m", "float", "choice")
    assert T["count"].scales == ("int", "choice") and T["mode"].scales == ("choice",)
    assert T["flag_on"].scales == ("choice",) and T["keep"].scales == ()


def test_range_text():
    assert T["rate"].range_text == "(0, 10]"
    assert T["keep"].range_text == "[0, 1)"
    assert T["both"].range_text == "(0, 1)"
    assert T["size"].range_text == "[2, 9]"
    assert T["free"].range_text == "(-inf, inf)"
    assert T["mode"].range_text == "one of fast, slow"
    assert Option("float", "", high=5).range_text == "(-inf, 5]"
    assert Option("float", "", low=5).range_text == "[5, inf)"


def test_defaults_and_list_defaults_are_copies():
    assert defaults_of(Knobs) == {"rate": 0.1, "keep": 0.5, "both": 0.5, "count": 4, "size": 8, "free": 1.0,
                                  "mode": "fast", "flag_on": True, "name": "x", "beta": None, "tags": ["a"]}
    a, b = Knobs(), Knobs()
    a.tags.append("b")
    assert b.tags == ["a"] and Knobs().tags == ["a"]


def test_unknown_kinds_are_refused():
    with pytest.raises(ValueError, match="unknown option kind 'number'"):
        option(1, "number", "help")


def test_short_repr_cuts_at_its_limit():
    assert short_repr("ab") == "'ab'"
    assert short_repr("x" * 38) == "'" + "x" * 38 + "'"           # exactly 40 characters: kept whole
    assert short_repr("x" * 39) == "'" + "x" * 38 + "…"           # 41: cut to 40
    assert short_repr("abcdef", limit=5) == "'abc…"
    assert len(short_repr("y" * 10_000)) == 40


def test_argparse_type_turns_errors_into_argparse_errors():
    parse = argparse_type(T["size"].check, "int")
    assert parse.__name__ == "int" and parse("4") == 4
    with pytest.raises(argparse.ArgumentTypeError, match="^size must be at least 2, got 1$"):
        parse("1")
    assert argparse_type(int).__name__ == "int"

    def my_check(text):
        return text

    assert argparse_type(my_check).__name__ == "my_check"
    assert argparse_type(lambda t: t).__name__ == "<lambda>"


def parser_for(skip=()):
    parser = argparse.ArgumentParser(prog="t")
    add_flags(parser, T, defaults_of(Knobs), skip=skip)
    return parser


def test_add_flags_defaults_and_parsing():
    args = parser_for().parse_args([])
    assert vars(args) == {**defaults_of(Knobs), "beta": None}
    args = parser_for().parse_args(["--rate", "10", "--count", str(MAX_INT), "--no-flag-on", "--mode", "slow",
                                    "--beta", "0.5", "--name", "n"])
    assert (args.rate, args.count, args.flag_on, args.mode, args.beta, args.name) == (10.0, MAX_INT, False, "slow",
                                                                                       0.5, "n")
    assert parser_for().parse_args(["--flag-on"]).flag_on is True


def test_add_flags_refuses_bad_values_with_the_check_message(capsys):
    with pytest.raises(SystemExit):
        parser_for().parse_args(["--size", "1"])
    assert "argument --size: size must be at least 2, got 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser_for().parse_args(["--mode", "medium"])
    assert "invalid choice: 'medium'" in capsys.readouterr().err


def test_add_flags_help_shows_defaults_and_metavars():
    text = " ".join(parser_for().format_help().split())
    assert "--count N how many (default 4)" in text
    assert "--size SIZE a size (default 8)" in text
    assert "--flag-on, --no-flag-on a switch (default True)" in text
    assert "--mode {fast,slow} how (default fast)" in text
    assert "--beta BETA optional " in text and "(default None)" not in text


def test_add_flags_skips_what_it_is_told_to():
    parser = parser_for(skip=("rate", "mode"))
    assert "rate" not in vars(parser.parse_args([])) and "mode" not in vars(parser.parse_args([]))
    assert "size" in vars(parser.parse_args([]))


def test_to_flags_round_trips_through_add_flags():
    values = {"rate": 0.1 + 0.2, "count": 12, "flag_on": False, "mode": "slow", "beta": None, "name": "a b"}
    flags = to_flags(T, values)
    assert flags == ["--rate", repr(0.1 + 0.2), "--count", "12", "--no-flag-on", "--mode", "slow", "--name", "a b"]
    back = vars(parser_for().parse_args(flags))
    assert {k: back[k] for k in values} == values
    assert to_flags(T, {"flag_on": True}) == ["--flag-on"]


def test_option_declares_a_field_with_its_default_and_spec():
    """Declared inside the test, so that the declaration itself is checked (not only its import-time result)."""
    @dataclass
    class Local:
        n: int = option(3, "int", "n's help", low=1)
        items: list = option([1, 2], "text", "a list")
        table: dict = option({"a": 1}, "text", "a dict")

    one, two = Local(), Local()
    assert (one.n, one.items, one.table) == (3, [1, 2], {"a": 1})
    one.items.append(3)
    one.table["b"] = 2
    assert (two.items, two.table) == ([1, 2], {"a": 1})
    assert type(Local().items) is list and type(Local().table) is dict
    table = options_of(Local)
    assert (table["n"].kind, table["n"].help, table["n"].low, table["n"].name) == ("int", "n's help", 1, "n")
    assert (table["items"].kind, table["items"].help) == ("text", "a list")
    assert defaults_of(Local) == {"n": 3, "items": [1, 2], "table": {"a": 1}}


def test_an_optional_flag_defaults_to_none_whatever_the_table_says():
    parser = argparse.ArgumentParser(prog="t")
    add_flags(parser, {"beta": T["beta"]}, {"beta": 0.9})
    assert parser.parse_args([]).beta is None
    assert "(default" not in parser.format_help()


def test_argparse_type_names_a_check_without_a_name_value():
    from functools import partial
    assert argparse_type(partial(int)).__name__ == "value"


@pytest.mark.parametrize("bad, message", [
    (float("inf"), "free must be finite, got inf"), ("nan", "free must be finite, got 'nan'"),
    ("ten", "free must be a number, got 'ten'"), ([1], "free must be a number, got [1]"),
    (True, "free must be a number, got True"),
])
def test_number_errors_name_the_option_and_echo_the_value(bad, message):
    assert str(why(T["free"], bad)) == message


def test_a_switch_takes_only_bools_whole_numbers_or_text():
    from decimal import Decimal
    for printable_as_one in (Decimal(1), 1.0):
        with pytest.raises(OptionError):
            T["flag_on"].check(printable_as_one)
