"""What the JSON-safety functions return, at each limit: exactly the limit, one past it (trainer/contract/jsonsafe.py).

The mutation-testing selection for trainer/contract/jsonsafe.py (pyproject.toml [tool.panda.mutation]).
tests/test_hostile_pure.py fuzzes them for "never raises"; this file pins what they answer.
"""

from __future__ import annotations

import io
import json
import math
import sys

import pytest

from trainer.contract.jsonsafe import (MAX_DEPTH, MAX_ECHO_CHARS, MAX_RECOVERY_TRIES, _strict, _text, clean, parse_line,
                              preview, text_of)

B = {"id": "b", "cmd": "pause"}
TORN = b'{"id": "a", "cmd": "pa'


def lists(n: int, inner=1):
    for _ in range(n):
        inner = [inner]
    return inner


def dicts(n: int, inner=1):
    for _ in range(n):
        inner = {"k": inner}
    return inner


# --- parse_line ---------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, records", [
    (b'{"id": "a"}', [{"id": "a"}]),
    (b'  {"id": "a"}\n', [{"id": "a"}]),
    (TORN + json.dumps(B).encode(), [None, B]),
    (b'{"id": "a"}{"id": "b"}', [{"id": "a"}, {"id": "b"}]),       # only the newline was lost
    (b'garbage{"id": "b"}', [None, {"id": "b"}]),
    (b'x{"id": "b"}', [None, {"id": "b"}]),                           # the object starts at the second byte
    (b'[1]{"id": "b"}', [None, {"id": "b"}]),                         # a prefix that is JSON but no object
    (b'{"id": "b", "inner": {"x": 1}}{"bad', [None]),
    (b'{"id": "a", "cm', [None]), (b"", [None]), (b"{", [None]), (b"[1, 2]", [None]), (b"7", [None]),
    (b'"{}"', [None]), (b"null", [None]), (b"\xff\xfe{}", [None, {}]),
])
def test_parse_line(raw, records):
    assert parse_line(raw) == records


def test_a_line_with_nan_is_a_record():
    """Python's parser takes NaN; the record is kept (what is written back goes through clean())."""
    [record] = parse_line(b'{"a": NaN}')
    assert math.isnan(record["a"])


def test_a_torn_line_whose_own_first_brace_is_at_the_start_is_malformed():
    assert parse_line(b'{"id": "a", "x": {"y": ') == [None]


def test_recovery_finds_the_last_complete_object_within_its_tries():
    """Each '{' inside the surviving object's text is one failed try before its own start brace.

    The torn prefix is long, so the work budget (a multiple of the line's length) is not what stops it.
    """
    def line(braces: int) -> tuple[bytes, dict]:
        record = {"id": "b", "text": "{" * braces}
        return TORN + b"x" * 200_000 + json.dumps(record).encode(), record

    raw, record = line(MAX_RECOVERY_TRIES - 1)   # found on the last try allowed
    assert parse_line(raw) == [None, record]
    raw, _ = line(MAX_RECOVERY_TRIES)            # one brace more: the work stops, the line is malformed
    assert parse_line(raw) == [None]


def test_too_deep_or_bad_lines_are_malformed_not_errors():
    assert parse_line(b"[" * 100_000) == [None]
    assert parse_line(b'{"a": ' * 50_000) == [None]
    # bytes that are not UTF-8 decode as lone surrogates (kept, so validation rejects them with a reason) ...
    assert parse_line(TORN + b'{"a": "\xff"}') == [None, {"a": "\udcff"}]
    # ... and a reader of client text gets them escaped
    assert parse_line(TORN + b'{"a": "\xff"}', scrub_text=True) == [None, {"a": "\\udcff"}]


# --- clean ------------------------------------------------------------------------------------

def test_clean_replaces_non_finite_floats_at_any_depth():
    value = {"a": float("nan"), "b": [1.5, float("inf"), (float("-inf"), 2)], "c": {"d": float("nan")}}
    assert clean(value) == {"a": None, "b": [1.5, None, [None, 2]], "c": {"d": None}}
    assert clean(float("nan")) is None and clean(-0.0) == 0.0 and clean(1e308) == 1e308
    for same in ("text", 7, True, None, 10 ** 300):
        assert clean(same) == same and type(clean(same)) is type(same)
    assert clean((1, 2)) == [1, 2] and type(clean((1, 2))) is list


@pytest.mark.parametrize("nest", [lists, dicts])
def test_clean_keeps_the_deepest_allowed_container_and_cuts_the_next(nest):
    assert clean(nest(MAX_DEPTH)) == nest(MAX_DEPTH)             # innermost container at depth 63: kept
    assert clean(nest(MAX_DEPTH + 1)) == nest(MAX_DEPTH, None)   # at depth 64: cut
    assert clean(nest(3), depth=MAX_DEPTH - 1) == nest(1, None)
    assert clean(nest(1), depth=MAX_DEPTH) is None


# --- text_of ----------------------------------------------------------------------------------

@pytest.mark.parametrize("value, text", [
    ({"a": 1, 2: [True, None, "x"]}, '{"a":1,"2":[true,null,"x"]}'),
    ((1, 2.5), "[1,2.5]"), ([], "[]"), ({}, "{}"), ("é\n", '"\\u00e9\\n"'), (False, "false"),
    (float("nan"), '"nan"'), (float("-inf"), '"-inf"'), (0.1, "0.1"), (-3, "-3"),
    (10 ** (MAX_ECHO_CHARS - 1), "1" + "0" * (MAX_ECHO_CHARS - 1)),         # exactly the limit's digits
    (-(10 ** (MAX_ECHO_CHARS - 1)), "-1" + "0" * (MAX_ECHO_CHARS - 1)),
    (10 ** MAX_ECHO_CHARS, f"<integer of {MAX_ECHO_CHARS + 1} digits>"),    # one digit more
    (b"x", '"b\'x\'"'), ({1, 2}, '"{1, 2}"'),
])
def test_text_of(value, text):
    assert text_of(value) == text


def test_text_of_huge_integers():
    assert text_of(10 ** 3999) == "<integer of 4000 digits>"
    assert text_of(10 ** 4000 - 1) == "<integer of 4000 digits>"
    assert text_of(10 ** 4000) == "<integer of over 4000 digits>"
    assert text_of(-(10 ** 5000)) == "<integer of over 4000 digits>"


@pytest.mark.parametrize("nest, cut", [(lists, "[…]"), (dicts, "{…}")])
def test_text_of_stops_at_the_depth_limit(nest, cut):
    deep = text_of(nest(MAX_DEPTH + 1))
    assert deep.count(cut) == 1 and cut in deep
    assert "…" not in text_of(nest(MAX_DEPTH))
    assert _text(nest(1), depth=MAX_DEPTH) == cut
    assert _text(nest(1), depth=MAX_DEPTH - 1) in ("[1]", '{"k":1}')


def test_an_unprintable_value_says_so():
    class Bad:
        def __str__(self):
            raise ValueError("no")

    assert text_of({Bad(): 1}) == "<unprintable value>"
    assert text_of(Bad()) == "<unprintable value>"


# --- preview ------------------------------------------------------------------------------------

def test_a_short_value_is_echoed_itself_cleaned():
    assert preview({"lr": float("nan"), "x": [1, "a"]}) == {"lr": None, "x": [1, "a"]}
    assert preview(None) is None and preview("short") == "short" and preview(3) == 3


def test_the_echo_limit_is_inclusive():
    at = "x" * (MAX_ECHO_CHARS - 2)      # its JSON, with the quotes, is exactly the limit
    assert preview(at) == at
    over = at + "y"
    assert preview(over) == {"preview": json.dumps(over)[:MAX_ECHO_CHARS], "truncated": True}
    assert len(preview(over)["preview"]) == MAX_ECHO_CHARS and preview(over)["preview"].startswith('"xxx')


def test_a_short_value_without_strict_json_is_previewed_untruncated():
    assert preview({1, 2}) == {"preview": '"{1, 2}"', "truncated": False}
    assert preview({float("nan"): 1}) == {"preview": '{"nan":1}', "truncated": False}


def test_a_huge_integer_is_previewed_by_its_size():
    assert preview(10 ** 5000) == {"preview": "<integer of over 4000 digits>", "truncated": False}


def test_strict_json():
    assert _strict({"a": [1, 2.5]}) == '{"a":[1,2.5]}'
    assert _strict(float("nan")) is None and _strict({1, 2}) is None and _strict(lists(100_000)) is None


# --- decoding, the recovery's work cap ------------------------------------------------------------

def test_a_line_is_read_from_text_or_bytes_without_an_editors_byte_order_mark():
    assert parse_line('{"id": "a"}') == [{"id": "a"}]
    assert parse_line(b'\xef\xbb\xbf{"id": "a"}') == [{"id": "a"}]
    assert parse_line('\ufeff{"id": "a"}') == [{"id": "a"}]
    assert parse_line(b'{"id": "\xff"}') == [{"id": "\udcff"}], "bytes that are not UTF-8 become lone surrogates"


def recovery_cost(text: str) -> int:
    """What the recovery of ``text``'s last object decodes at most: every try from a later '{' to its start."""
    return sum(len(text) - i for i, c in enumerate(text) if c == "{" and i > 0)


def test_the_recovery_work_cap_is_inclusive():
    """A few failed tries from braces far from the end cost more than the line's length each."""
    from trainer.contract.jsonsafe import RECOVERY_WORK_FACTOR
    for tail in range(400, 420):  # a tail that makes the cost a multiple of the factor
        body = '{"p": "' + "{" * 8 + '", "q": "' + "x" * tail + '"}'
        cost = recovery_cost("g" + body)
        if cost % RECOVERY_WORK_FACTOR == 0:
            break
    garbage = cost // RECOVERY_WORK_FACTOR - len(body)  # exactly the budget: the last try is allowed
    assert garbage > 1 and recovery_cost("g" * garbage + body) == RECOVERY_WORK_FACTOR * (garbage + len(body))
    assert parse_line("g" * garbage + body) == [None, json.loads(body)]
    assert parse_line("g" * (garbage - 1) + body) == [None], "one character shorter: the budget is spent"


# --- text: safe_text, scrub, find_surrogate, terminal_text, say ------------------------------------

def test_safe_text_escapes_only_lone_surrogates():
    from trainer.contract.jsonsafe import safe_text
    assert safe_text("ok α 😀") == "ok α 😀"
    assert safe_text("a\udfffb\ud800") == "a\\udfffb\\ud800"


def test_scrub_cleans_strings_and_keys_at_every_depth_and_keeps_other_keys():
    from trainer.contract.jsonsafe import scrub
    assert scrub("x\udfff") == "x\\udfff"
    value = [["\udfff", {"k": ["\ud800"]}], {"a": {"b\udfff": "c\udfff"}}, 1, None]
    assert scrub(value) is value and value == [["\\udfff", {"k": ["\\ud800"]}], {"a": {"b\\udfff": "c\\udfff"}}, 1, None]
    assert scrub({1: "\udfff", "k\udfff": 2, None: "ok"}) == {1: "\\udfff", "k\\udfff": 2, None: "ok"}
    assert scrub({1: "a", 2.5: ["b"]}) == {1: "a", 2.5: ["b"]}


def test_find_surrogate_says_where():
    from trainer.contract.jsonsafe import find_surrogate
    assert find_surrogate("ok") is None and find_surrogate({"a": [1, "b", {"c": None}]}) is None
    assert find_surrogate("\udfff") == "the text"
    assert find_surrogate({"k\udfff": 1}) == "a key of the object"
    assert find_surrogate({"value": "\udfff"}) == '"value"'
    assert find_surrogate({"a": {"b": ["x", "\udfff"]}}) == '"a" → "b" → [1]'
    assert find_surrogate(["x", {"k\ud800": 1}]) == "a key of [1]"
    assert find_surrogate({"a": {"k\ud800": 1}}) == 'a key of "a"'
    assert find_surrogate({7: "\udfff"}) == '"7"', "a key that is not a string is named by its text"
    assert find_surrogate({"x" * 50: "\udfff"}) == '"' + "x" * 39, "a long key is cut at 40 characters"


def test_terminal_text_escapes_only_what_is_unprintable():
    from trainer.contract.jsonsafe import terminal_text
    assert terminal_text("plain α") == "plain α"
    assert terminal_text("α\x1b[2J\udfff\n") == "α\\x1b[2J\\udfff\\n"


class Sink:
    """A stream without an encoding attribute that counts its flushes."""

    def __init__(self):
        self.text, self.flushes = "", 0

    def write(self, s):
        self.text += s

    def flush(self):
        self.flushes += 1


def ascii_stream():
    raw = io.BytesIO()
    return raw, io.TextIOWrapper(raw, encoding="ascii")


def test_say_prints_one_escaped_line_in_the_streams_encoding_and_flushes():
    from trainer.contract.jsonsafe import say
    buf = io.StringIO()  # its encoding is None: UTF-8
    say("α\x1b", file=buf)
    assert buf.getvalue() == "α\\x1b\n"
    raw, stream = ascii_stream()
    say("α ok", file=stream)
    assert raw.getvalue() == b"\\u03b1 ok\n", "flushed at once, α as its escape"
    sink = Sink()
    say("α", file=sink)
    assert sink.text == "α\n" and sink.flushes == 1


def test_say_defaults_to_stdout_in_its_encoding(monkeypatch):
    from trainer.contract.jsonsafe import say
    raw, stream = ascii_stream()
    monkeypatch.setattr(sys, "stdout", stream)
    say("α")
    assert raw.getvalue() == b"\\u03b1\n"


def test_say_drops_the_line_on_a_closed_stream():
    from trainer.contract.jsonsafe import say
    buf = io.StringIO()
    buf.close()
    say("x", file=buf)  # no error: the line is lost, the caller goes on
    raw, stream = ascii_stream()
    stream.close()
    say("x", file=stream)
