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
from trainer.contract.records import CheckpointMeta
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


# --------------------------------------------------------------------------- the pages that draw these records


@FAST
@given(json_values, json_values, json_values)
def test_figures_of_hostile_finder_fork_and_internals_lines_never_raise(finder, fork, epoch):
    from app.figures import lessons
    from app.panels.explore import finder_figure
    from app.panels.fork import commands_for, describe, fork_figure

    record = FinderRecord.from_json({"points": [finder, {"lr": 0.1, "loss": finder}], "suggestion": finder})
    assert finder_figure(record) is not None and record.lr is None or record.lr > 0
    forked = ForkRecord.from_json({"candidates": [fork, {"candidate": fork, "curve": [fork]}], "best": fork})
    assert fork_figure(forked) is not None
    for i, candidate in enumerate(forked.candidates):
        assert isinstance(describe(i, candidate), str) and commands_for(candidate)[-1] == ("resume", None)
    line = InternalsEpoch.from_json({"epoch": 1, "batch_norm": [epoch, {"layer": "bn", "hist_z": epoch}],
                                     "softmax": epoch, "confusion": epoch, "bn_accuracy": epoch})
    probes = Probes.from_json({"examples": epoch, "labels": epoch})
    internals = lessons.Internals(probes, [line])
    for layer in internals.bn_layers():
        assert lessons.bn_figure(internals, layer) is not None
    lessons.bn_modes_figure(internals), lessons.softmax_figure(internals), lessons.confusion_figure(internals)


def test_the_sweeps_page_shows_a_hostile_sweep_json_and_pbt_jsonl(tmp_path):
    """A space of the wrong shape, rounds of junk and a proposal with text for numbers: a page, no traceback."""
    from streamlit.testing.v1 import AppTest

    from test_search_page import make_sweep
    from trainer.contract.atomic import atomic_write_json
    from trainer.contract.rundir import append_jsonl, read_json

    root = tmp_path / "runs"
    sweep = make_sweep(root, n=3)
    spec = read_json(sweep.spec_path)
    spec["space"]["lr"] = {"scale": "log", "min": "tiny", "max": [1]}
    spec["space"]["units"] = 64
    spec.update(rounds=[{"round": "one", "space": {"lr": 5}, "around": [1]}, "junk"], param_order={"lr": 1},
                settings={"scheduler": "pbt", "trials": "many"}, seed=[0], state={"x": 1})
    atomic_write_json(sweep.spec_path, spec)
    append_jsonl(sweep.path / "pbt.jsonl",
                 {"event": "proposed", "proposal": "p-0001", "target": ["t"], "target_score": "high", "lr": "0.1",
                  "beta": "x", "deadline": "soon", "time": 1.0},
                 {"event": "proposed", "proposal": "p-0002", "target": "trial-0002", "source": "trial-0001",
                  "target_score": 0.5, "source_score": 0.9, "lr": 0.01, "beta": 0.9, "checkpoint": "ckpt-00002",
                  "deadline": None, "time": 2.0})

    def app(path: str, runs_root: str) -> None:
        from pathlib import Path

        from app.views.sweep_page import render_sweep

        render_sweep(Path(path), runs_root=Path(runs_root))

    at = AppTest.from_function(app, args=(str(sweep.path), str(root)), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    text = " ".join(m.value for m in [*at.markdown, *at.caption])
    assert "`p-0001` **None** (0.0000)" in text and "α 0" in text  # the hostile proposal: blanks, its buttons
    assert "`p-0002` **trial-0002** (0.5000) → copy **trial-0001** (0.9000, ckpt-00002) with α 0.01, β 0.9" in text
    assert "`lr=log:?:?`" in text and "**Round None** (around —): `lr=None:?:?`" in text  # as far as it can be read


def _checkpoint_meta_or_refused(value) -> None:
    """A hostile ``meta.json`` is a :class:`CheckpointMeta` of the declared types, or refused with ``ValueError``."""
    try:
        meta = CheckpointMeta.from_json(value)
    except ValueError:
        assert not isinstance(value, dict) or not all(isinstance(value.get(k), int) for k in ("seq", "epoch", "step")) \
            or any(isinstance(value.get(k), bool) or abs(value.get(k)) >= 2 ** 63 for k in ("seq", "epoch", "step"))
        return
    assert all(type(getattr(meta, k)) is int for k in ("seq", "epoch", "step", "branch"))
    assert meta.reason is None or isinstance(meta.reason, str) and meta.reason.encode("utf-8")
    assert meta.name is None or isinstance(meta.name, str) and meta.name.encode("utf-8")
    assert isinstance(meta.hparams, dict) and (meta.metrics is None or isinstance(meta.metrics, dict))
    assert CheckpointMeta.from_json(meta.to_json()) == meta


@FAST
@given(json_values)
def test_any_json_value_reads_as_a_checkpoint_meta_or_is_refused(value):
    _checkpoint_meta_or_refused(value)


@FAST
@given(st.dictionaries(st.sampled_from([f.name for f in fields(CheckpointMeta)]) | texts,
                       json_values | st.integers(min_value=-5, max_value=10 ** 20), max_size=12))
def test_a_meta_json_with_its_own_field_names_and_hostile_values(value):
    _checkpoint_meta_or_refused(value)


@FAST
@given(texts)
def test_a_checkpoint_text_field_with_a_lone_surrogate_is_no_text(value):
    meta = CheckpointMeta.from_json({"seq": 1, "epoch": 1, "step": 3, "reason": value, "name": value, "path": value})
    ok = not any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    assert (meta.reason == value) is ok and (meta.name == value) is ok and (meta.path == value) is ok
    json.dumps(meta.to_json(), ensure_ascii=False).encode("utf-8")
