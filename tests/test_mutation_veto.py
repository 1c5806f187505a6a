"""``veto``'s value, the autopilot stage it takes back: every rule of :func:`check_stage` pinned (the
mutation run of trainer/contract/commands.py uses this file; see pyproject's [tool.panda.mutation])."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from trainer.contract.commands import COMMANDS, CommandError, check_stage

PREFIX = "veto needs the number of an autopilot stage: autopilot stage "


@pytest.mark.parametrize("value, number", [(1, 1), ("1", 1), ("3", 3), (2**31 - 1, 2**31 - 1)])
def test_a_stage_number_from_one_to_the_int32_limit_is_taken(value, number):
    assert check_stage(value) == number and type(check_stage(value)) is int


@pytest.mark.parametrize("value, why", [
    (0, "must be at least 1, got 0"),
    (-1, "must be at least 1, got -1"),
    (2**31, "2147483648 is absurd (the limit is 2.14748e+09)"),
    (1.5, "must be a whole number, got 1.5"),
    ("x", "must be a number, got 'x'"),
    (True, "must be a number, got True"),
    (None, "needs a value"),
])
def test_anything_else_is_rejected_with_the_stage_named_in_the_reason(value, why):
    with pytest.raises(CommandError) as caught:
        check_stage(value)
    assert str(caught.value) == PREFIX + why
    assert caught.value.__cause__ is None and caught.value.__suppress_context__  # one clear line, no chain


def test_veto_is_a_command_whose_value_is_checked_by_check_stage():
    assert COMMANDS["veto"] is check_stage


@given(st.one_of(st.integers(), st.floats(allow_nan=True), st.text(alphabet=st.characters(blacklist_categories=())),
                 st.sampled_from(["\udfff", "\ud800x", "１", "1e3", " 2 "])))
def test_hostile_values_are_a_stage_or_a_clear_rejection(value):
    try:
        number = check_stage(value)
    except CommandError as e:
        assert str(e).startswith(PREFIX)
    else:
        assert type(number) is int and 1 <= number <= 2**31 - 1
