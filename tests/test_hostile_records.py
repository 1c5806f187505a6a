"""Every typed record's ``from_json`` on hostile input: no exception, the declared types, and a ``to_json`` it reads back.

Fuzzed with Hypothesis over any JSON value (lone surrogates, NaN, huge integers included) and over
objects that carry the record's own field names with such values (the likelier hostile file).
"""

from __future__ import annotations

import json
from dataclasses import fields

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hostile import json_values, texts
from trainer.contract.file_records import (Dataset, FinderRecord, ForkCandidate, ForkRecord, ParamSpec, RunConfig,
                                           SweepRound, SweepSpec, Trial)
from trainer.contract.event_records import Advice, Proposal
from trainer.contract.internals_records import BatchNormStats, Histogram, InternalsEpoch, Probes

RECORDS = (RunConfig, Dataset, Trial, FinderRecord, ForkRecord, ForkCandidate, InternalsEpoch, BatchNormStats,
           Histogram, Probes, SweepSpec, SweepRound, ParamSpec, Advice, Proposal)
#: Records whose ``from_json`` always gives a value (every field has a default).
ALWAYS = (Dataset, ForkCandidate, SweepRound, ParamSpec)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def shaped(cls) -> st.SearchStrategy:
    """Objects with ``cls``'s field names (and nested ones' too) holding any JSON value, plus strangers."""
    names = [f.name for f in fields(cls)] + ["points", "candidates", "suggestion", "candidate", "curve", "kind",
                                             "edges", "counts", "layer", "examples", "labels", "space", "rounds",
                                             "param_order", "values", "scale", "min", "max", "around", "event",
                                             "proposal", "target_score", "deadline"]
    inner = st.dictionaries(st.sampled_from(names) | texts, json_values, max_size=6)
    values = json_values | st.lists(inner | json_values, max_size=4) | inner
    return st.dictionaries(st.sampled_from(names) | texts, values, max_size=len(names))


def _checked_round_trip(cls, value) -> None:
    record = cls.from_json(value)
    if record is None:
        assert cls not in ALWAYS
        return
    assert isinstance(record, cls)
    data = record.to_json()
    text = json.dumps(data, allow_nan=False)  # strict JSON: no NaN or Infinity survives reading
    assert cls.from_json(json.loads(text)) == record


@FAST
@given(st.sampled_from(RECORDS), json_values)
def test_any_json_value_reads_as_a_record_or_none(cls, value):
    _checked_round_trip(cls, value)


@FAST
@given(st.data())
def test_objects_with_the_fields_names_and_hostile_values(data):
    cls = data.draw(st.sampled_from(RECORDS))
    _checked_round_trip(cls, data.draw(shaped(cls)))


@FAST
@given(texts)
def test_a_text_field_with_a_lone_surrogate_is_no_text(value):
    config = RunConfig.from_json({"name": value, "trainer": value, "dataset": {"name": value}})
    ok = not any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    assert (config.name == value) is ok and (config.dataset.name == value) is ok
    if ok:
        config.to_json()["name"].encode("utf-8")
    trial = Trial.from_json({"trial": "trial-0001", "state": value, "reason": value})
    assert (trial.state == value) is ok and (trial.reason == value) is ok


def test_a_record_names_the_fields_its_checks_table_names():
    """One list of fields per file: the record and the table of checks agree (the module asserts it too)."""
    from trainer.contract.records import CONFIG_FIELDS, DATASET_FIELDS, TRIAL_FIELDS

    assert [f.name for f in fields(RunConfig)] == list(CONFIG_FIELDS)
    assert [f.name for f in fields(Dataset)] == list(DATASET_FIELDS)
    assert [f.name for f in fields(Trial)] == list(TRIAL_FIELDS)
