"""The typed records of config.json, trials, the finder, forks and internals.jsonl, field by field.

The mutation-testing selection for trainer/contract/file_records.py, event_records.py and
trainer/contract/internals_records.py (pyproject.toml [tool.panda.mutation]).
"""

from __future__ import annotations

import pytest

from trainer.contract.file_records import (Dataset, FinderRecord, ForkCandidate, ForkRecord, ParamSpec, RunConfig,
                                           SweepRound, SweepSpec, Trial)
from trainer.contract.event_records import Advice, Proposal
from trainer.contract.internals_records import BatchNormStats, Histogram, InternalsEpoch, Probes, matrix

CONFIG = {"schema_version": 1, "name": "r", "trainer": "panda-train", "model": "mlp", "created": 5, "epochs": 30,
          "seed": 7, "pace": 0.5, "checkpoint_every": 2, "hparams": {"lr": 0.1, "optimizer": "adam"},
          "dataset": {"name": "digits", "n_train": 10, "n_val": 5, "n_features": 64, "n_classes": 10,
                      "source": "sklearn", "input_shape": [8, 8], "class_names": ["0", "1"]},
          "dataset_spec": "digits", "versions": {"tensorflow": "2.16", "bad": 3}, "devices": ["CPU:0"],
          "argv": ["panda", "train"], "model_signature": {"layers": 2}, "autopilot": True, "tensorboard": False,
          "internals": True, "lr_schedule": "kept for the trainer"}


def test_a_config_keeps_every_documented_field():
    c = RunConfig.from_json(CONFIG)
    assert (c.schema_version, c.name, c.trainer, c.model, c.created, c.epochs, c.seed, c.pace, c.checkpoint_every) \
        == (1, "r", "panda-train", "mlp", 5.0, 30, 7, 0.5, 2)
    assert c.hparams == {"lr": 0.1, "optimizer": "adam"} and c.versions == {"tensorflow": "2.16"}
    assert c.dataset == Dataset("digits", 10, 5, 64, 10, "sklearn", [8, 8], ["0", "1"])
    assert (c.dataset_spec, c.devices, c.argv, c.model_signature) == ("digits", ["CPU:0"], ["panda", "train"],
                                                                      {"layers": 2})
    assert (c.autopilot, c.tensorboard, c.internals) == (True, False, True)
    assert RunConfig.from_json(c.to_json()) == c
    assert "lr_schedule" not in c.to_json()  # the trainer's own options: TrainConfig reads them on resume


@pytest.mark.parametrize("bad", [None, [], "config", 3])
def test_no_object_no_config(bad):
    assert RunConfig.from_json(bad) is None


def test_a_config_of_wrong_types_reads_as_defaults():
    c = RunConfig.from_json({"epochs": 2.5, "trainer": 1, "hparams": [1], "dataset": "digits", "versions": [1],
                             "autopilot": 1, "created": "now"})
    assert c == RunConfig()
    assert c.dataset == Dataset() and c.hparams == {} and c.versions == {}
    assert RunConfig().to_json() == {"hparams": {}, "dataset": {}, "versions": {}}


def test_dataset_written_only_with_its_values():
    assert Dataset.from_json({"name": "x", "n_classes": "10"}).to_json() == {"name": "x"}
    assert Dataset.from_json(None) == Dataset()


def test_a_trial_names_a_valid_run():
    t = Trial.from_json({"trial": "trial-0002", "round": 1, "state": "running", "params": {"lr": 0.1}, "pid": "7"})
    assert (t.trial, t.round, t.state, t.params, t.pid) == ("trial-0002", 1, "running", {"lr": 0.1}, None)
    assert t.to_json() == {"trial": "trial-0002", "round": 1, "state": "running", "params": {"lr": 0.1}}
    assert Trial.from_json(t.to_json()) == t
    assert Trial.from_json({"trial": "../../private/run"}) is None and Trial.from_json(None) is None
    assert Trial.from_json({"trial": "t"}).params == {}


def test_a_finder_record():
    raw = {"kind": "lr_finder", "command_id": "c-1", "stopped": "max",
           "points": [{"lr": 1e-3, "loss": 2.0, "smoothed": 2.1}, "junk", {"lr": "x", "loss": float("nan")}],
           "suggestion": {"lr": 0.01, "steepest": 0.005, "min_lr": 0.1, "min_over_10": 0.01, "reason": None}}
    f = FinderRecord.from_json(raw)
    assert f.points == [{"lr": 1e-3, "loss": 2.0, "smoothed": 2.1, "step": None},
                        {"lr": None, "loss": None, "smoothed": None, "step": None}]
    assert f.suggestion == {"lr": 0.01, "steepest": 0.005, "min_lr": 0.1, "min_over_10": 0.01}
    assert (f.command_id, f.stopped, f.lr) == ("c-1", "max", 0.01)
    assert FinderRecord.from_json(f.to_json()) == f
    assert FinderRecord.from_json({"points": "x"}) is None and FinderRecord.from_json([]) is None


@pytest.mark.parametrize("lr, out", [(0.01, 0.01), (0, None), (-1, None), (None, None), ("0.1", None), (True, None)])
def test_a_finder_suggests_a_positive_alpha_only(lr, out):
    assert FinderRecord.from_json({"points": [], "suggestion": {"lr": lr}}).lr == out


def test_a_fork_record():
    raw = {"kind": "fork", "command_id": "c-2", "pick": "ask", "best": 1, "candidates": [
        {"candidate": {"lr": 0.1, "beta": "x", "batch_size": 64}, "hparams": {"lr": 0.1}, "val_loss": 0.4,
         "val_accuracy": 0.9, "final_loss": 0.5, "steps": 20, "curve": [{"step": 1, "loss": 2.0}, 3]},
        "junk"]}
    f = ForkRecord.from_json(raw)
    assert (f.command_id, f.pick, f.best, len(f.candidates)) == ("c-2", "ask", 1, 2)
    first = f.candidates[0]
    assert first.candidate == {"lr": 0.1, "batch_size": 64} and first.hparams == {"lr": 0.1}
    assert (first.val_loss, first.val_accuracy, first.final_loss, first.steps) == (0.4, 0.9, 0.5, 20)
    assert first.curve == [{"lr": None, "loss": 2.0, "smoothed": None, "step": 1}]
    assert f.candidates[1] == ForkCandidate()
    assert ForkRecord.from_json(f.to_json()) == f
    assert f.to_json()["candidates"][1] == {"candidate": {}, "hparams": {}, "curve": []}  # no null fields written
    assert set(f.to_json()) == {"candidates", "best", "command_id", "pick"}
    assert ForkRecord.from_json({"candidates": {}}) is None and ForkRecord.from_json(None) is None
    assert ForkRecord.from_json({"candidates": [], "best": True}).best is None
    auto = ForkRecord.from_json({"pick": "autopilot", "autopilot_stage": 3, "candidates": [
        {"predicted_loss": 0.2, "fit": {"a": 0.1, "b": 2.0, "c": "x"}}, {"predicted_loss": True, "fit": [1]}]})
    assert (auto.pick, auto.autopilot_stage) == ("autopilot", 3)
    assert (auto.candidates[0].predicted_loss, auto.candidates[0].fit) == (0.2, {"a": 0.1, "b": 2.0})
    assert (auto.candidates[1].predicted_loss, auto.candidates[1].fit) == (None, None)
    assert ForkRecord.from_json(auto.to_json()) == auto


def test_matrix_reads_rows_of_cells():
    assert matrix([[1, "x"], []]) == [[1.0, None], []]
    assert matrix([[1], 2]) is None and matrix("x") is None and matrix([]) == []


@pytest.mark.parametrize("raw, ok", [
    ({"edges": [0, 1], "counts": [1, 2]}, True), ({"edges": [0], "counts": [1]}, False),
    ({"edges": [0, 1, 2], "counts": [1]}, False), ({"edges": [0, "1"], "counts": [1]}, False),
    ({"edges": "01", "counts": [1]}, False), ({"edges": [0, 1], "counts": []}, False),
    ({"edges": [0, 1], "counts": [1, None]}, False), ({"edges": [0, 1], "counts": [1.5]}, False), ([0, 1], False),
])
def test_a_histogram_has_two_edges_and_whole_counts(raw, ok):
    h = Histogram.from_json(raw)
    assert (h is not None) is ok
    if ok:
        assert h == Histogram([0.0, 1.0], [1, 2]) and Histogram.from_json(h.to_json()) == h


def test_a_batch_norm_layer():
    raw = {"layer": "bn", "moving_mean": 0.1, "moving_var": 1, "gap_var": "x",
           "hist_z": {"edges": [-1, 1], "counts": [3]}, "hist_normalized": {"edges": [0, 1]}}
    b = BatchNormStats.from_json(raw)
    assert (b.layer, b.moving_mean, b.moving_var, b.gap_var) == ("bn", 0.1, 1.0, None)
    assert b.hist_z == Histogram([-1.0, 1.0], [3]) and b.hist_normalized is None
    assert BatchNormStats.from_json(b.to_json()) == b
    both = BatchNormStats.from_json({"layer": "bn", "hist_normalized": {"edges": [-4, 4], "counts": [1, 2]}})
    assert both.hist_normalized == Histogram([-4.0, 4.0], [1, 2]) and both.hist_z is None
    assert BatchNormStats.from_json({"moving_mean": 1}) is None and BatchNormStats.from_json(["bn"]) is None


def test_an_internals_epoch():
    raw = {"kind": "epoch", "epoch": 4, "step": 40, "branch": 1, "time": 9, "bn_accuracy": {"test_mode": 0.9},
           "batch_norm": [{"layer": "a"}, {"layer": 2}, None], "softmax": [[0.1, 0.9]], "confusion": [[1, 0], [0, 2]],
           "tracing": {"traces": 1, "hparam_changes": 3}}
    e = InternalsEpoch.from_json(raw)
    assert (e.epoch, e.step, e.branch, e.time) == (4, 40, 1, 9.0)
    assert e.batch_norm == [BatchNormStats("a")] and e.bn_accuracy == {"test_mode": 0.9}
    assert e.softmax == [[0.1, 0.9]] and e.confusion == [[1, 0], [0, 2]]
    assert e.tracing == {"traces": 1, "hparam_changes": 3}
    assert e.to_json()["kind"] == "epoch" and InternalsEpoch.from_json(e.to_json()) == e
    assert e.to_json() == {**raw, "time": 9.0, "batch_norm": [{"layer": "a"}]}
    for not_a_list in ("x", 5, {"layer": "a"}):
        assert InternalsEpoch.from_json({"epoch": 1, "batch_norm": not_a_list}).batch_norm == []
    bare = InternalsEpoch.from_json({"epoch": 1, "batch_norm": "x", "bn_accuracy": 1, "tracing": [1]})
    assert bare == InternalsEpoch(1) and bare.branch == 0 and bare.softmax is None
    assert InternalsEpoch.from_json({"epoch": True}) is None and InternalsEpoch.from_json(None) is None


def test_probes():
    p = Probes.from_json({"kind": "probes", "examples": [[0, 0.5]], "labels": [3, "cat", 1.5, None]})
    assert p.examples == [[0.0, 0.5]] and p.labels == [3, "cat", None, None]
    assert Probes.from_json(p.to_json()) == p
    assert p.to_json() == {"kind": "probes", "examples": [[0.0, 0.5]], "labels": [3, "cat", None, None]}
    assert Probes.from_json({"examples": [[0]], "labels": "x"}).labels == []
    assert Probes.from_json({"examples": [1]}) is None and Probes.from_json("x") is None


def test_a_parameter_space():
    p = ParamSpec.from_json({"scale": "choice", "min": "0", "max": 2, "values": [8, "x", True, None, [1], float("nan")]})
    assert (p.scale, p.min, p.max, p.values) == ("choice", None, 2.0, [8, "x", True])
    assert ParamSpec.from_json(p.to_json()) == p and p.to_json() == {"scale": "choice", "max": 2.0, "values": [8, "x", True]}
    assert ParamSpec.from_json({"values": "ab"}).values == [] and ParamSpec.from_json(3) == ParamSpec()
    assert ParamSpec.from_json({"values": ["\udfff", 1]}).values == [1]


def test_a_sweep_spec_in_the_users_order():
    raw = {"name": "s", "created": 1, "seed": 3, "sampler": "tpe", "state": "running", "settings": {"trials": 4, "x": [1]},
           "space": {"lr": {"scale": "log", "min": 1e-4, "max": 1}, "units": {"scale": "int", "min": 8, "max": 64},
                     "beta": 5},
           "param_order": ["units", "gone", "lr"],
           "rounds": [{"round": 1, "around": ["trial-0001"], "space": {"lr": {"scale": "log"}}}, "junk"]}
    s = SweepSpec.from_json(raw)
    assert (s.name, s.created, s.seed, s.sampler, s.state, s.settings) == ("s", 1.0, 3, "tpe", "running", {"trials": 4})
    assert list(s.space) == ["units", "lr", "beta"] and s.space["lr"] == ParamSpec("log", 1e-4, 1.0)
    assert s.space["beta"] == ParamSpec()
    assert s.rounds == [SweepRound(1, ["trial-0001"], {"lr": ParamSpec("log")}), SweepRound()]
    again = SweepSpec.from_json(s.to_json())
    assert again == s and list(again.space) == list(s.space)
    assert s.to_json()["param_order"] == ["units", "lr", "beta"]
    assert s.to_json()["space"]["beta"] == {"values": []}  # no null fields written
    assert s.to_json()["rounds"][1] == {"around": [], "space": {}}
    assert SweepSpec.from_json([]) is None and SweepSpec.from_json({}) == SweepSpec()
    assert SweepSpec.from_json({"space": {"a": {}}, "param_order": "a", "rounds": {}}).rounds == []
    assert SweepRound.from_json({"around": ["a", 1], "round": "1"}) == SweepRound()


def test_advice():
    raw = {"event": "advice", "kind": "plateau", "reason": "flat", "cmd": "scale_lr", "value": 0.1, "autopilot": True,
           "autopilot_command": "c-9", "epoch": 7, "step": 70, "time": 5, "other": 1}
    a = Advice.from_json(raw)
    assert (a.kind, a.reason, a.cmd, a.value, a.autopilot, a.autopilot_command, a.epoch, a.step, a.time) == \
        ("plateau", "flat", "scale_lr", 0.1, True, "c-9", 7, 70, 5.0)
    assert a.to_json() == {k: v for k, v in raw.items() if k != "other"} and Advice.from_json(a.to_json()) == a
    bad = Advice.from_json({"event": "advice", "cmd": ["stop"], "value": "0.1", "autopilot": 1})
    assert bad == Advice() and bad.autopilot is False and bad.to_json() == {"event": "advice", "autopilot": False}
    for other in ({"event": "applied"}, {"kind": "plateau"}, None, ["advice"]):
        assert Advice.from_json(other) is None


def test_a_pbt_proposal():
    raw = {"proposal": "p-0001", "state": "pending", "target": "trial-0002", "source": "trial-0001",
           "checkpoint": "ckpt-00004", "epoch": 4, "target_score": 0.5, "source_score": 0.9, "lr": 0.01, "beta": None,
           "deadline": 100, "event": "proposed", "old": {"lr": 0.1}}
    p = Proposal.from_json(raw)
    assert (p.proposal, p.state, p.target, p.source, p.checkpoint, p.epoch) == \
        ("p-0001", "pending", "trial-0002", "trial-0001", "ckpt-00004", 4)
    assert (p.target_score, p.source_score, p.lr, p.beta, p.deadline) == (0.5, 0.9, 0.01, None, 100.0)
    assert Proposal.from_json(p.to_json()) == p and "beta" not in p.to_json() and p.to_json()["proposal"] == "p-0001"
    hostile = Proposal.from_json({"proposal": "p-2", "target_score": "high", "lr": [1], "deadline": True})
    assert hostile == Proposal("p-2") and hostile.to_json() == {"proposal": "p-2"}
    assert Proposal.from_json({"proposal": 1}) is None and Proposal.from_json(None) is None
