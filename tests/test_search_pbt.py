"""Population-based training: the scheduler on a fake population (veto, approve, timeout, auto), its
refusals before anything starts, and a tiny real PBT sweep on digits where an exploit is applied."""

from __future__ import annotations

import random
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from trainer.contract.rundir import RunDir
from trainer.search.pbt import (
    PBT_LOG, Member, PbtError, PbtScheduler, append_decision, check_pbt, perturb, proposals, read_log,
)
from trainer.search.runner import SweepSettings
from trainer.search.space import parse_param_args
from trainer.search.sweepdir import SweepDir

PANDA = [sys.executable, "-m", "app"]


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def population(tmp_path, scores=(0.2, 0.5, 0.6, 0.9), epochs=2):
    sweep = SweepDir(tmp_path / "s").create()
    members = []
    for i, score in enumerate(scores, start=1):
        run = RunDir(sweep.path / f"trial-000{i}").create()
        run.write_config({"name": run.name})
        members.append(Member(run.name, run, [score / 2] * (epochs - 1) + [score],
                              {"lr": 0.01 * i, "beta": 0.9}, f"ckpt-0000{epochs}"))
    return sweep, members


def scheduler(sweep, clock, auto=False, timeout=60.0):
    return PbtScheduler(sweep.path, perturb_every=2, quantile=0.25, auto=auto, approve_timeout=timeout, seed=0,
                        clock=clock)


def adopts(member):
    return [c for c in member.run.read_commands() if c["cmd"] == "adopt"]


def test_the_bottom_trial_is_proposed_to_copy_the_top_one_and_a_veto_leaves_it_untouched(tmp_path):
    sweep, members = population(tmp_path)
    clock = Clock()
    pbt = scheduler(sweep, clock)
    pbt.step(members)
    (proposal,) = [r for r in read_log(sweep.path) if r["event"] == "proposed"]
    assert (proposal["target"], proposal["source"], proposal["checkpoint"]) == ("trial-0001", "trial-0004", "ckpt-00002")
    assert proposal["lr"] in (pytest.approx(0.04 * 0.8), pytest.approx(0.04 * 1.25))
    assert 1 - proposal["beta"] in (pytest.approx(0.1 * 0.8), pytest.approx(0.1 * 1.25))  # on 1 - β's scale
    assert proposal["deadline"] == pytest.approx(1060.0)
    pbt.step(members)
    assert len([r for r in read_log(sweep.path) if r["event"] == "proposed"]) == 1, "one open proposal per trial"

    append_decision(sweep.path, proposal["proposal"], "vetoed")
    append_decision(sweep.path, proposal["proposal"], "approved")  # too late: the first decision wins
    clock.now += 3600  # long past the deadline
    pbt.step(members)
    assert all(not adopts(m) for m in members), "a vetoed exploit touches no trial"
    assert [r["event"] for r in read_log(sweep.path)] == ["proposed", "vetoed", "approved"]
    assert proposals(read_log(sweep.path))[proposal["proposal"]]["state"] == "vetoed"


def test_an_approved_proposal_appends_one_adopt_command_to_the_target(tmp_path):
    sweep, members = population(tmp_path)
    pbt = scheduler(sweep, Clock())
    pbt.step(members)
    pid = read_log(sweep.path)[0]["proposal"]
    append_decision(sweep.path, pid, "approved")
    pbt.step(members)
    pbt.step(members)
    (command,) = adopts(members[0])
    assert command["source"] == "pbt" and command["value"]["run"] == str(members[3].run.path.resolve())
    assert command["value"]["lr"] == pytest.approx(read_log(sweep.path)[0]["lr"])
    assert all(not adopts(m) for m in members[1:])
    (note,) = [c for c in members[3].run.read_commands() if c["cmd"] == "note"]  # the source hears of it
    assert note["source"] == "pbt" and note["value"]["target"] == "trial-0001" and note["value"]["kind"] == "pbt_source"
    assert proposals(read_log(sweep.path))[pid]["state"] == "applied"


def test_without_a_decision_the_proposal_expires_and_is_applied(tmp_path):
    sweep, members = population(tmp_path)
    clock = Clock()
    pbt = scheduler(sweep, clock, timeout=30)
    pbt.step(members)
    clock.now += 29
    pbt.step(members)
    assert not adopts(members[0]), "not before the timeout"
    clock.now += 1
    pbt.step(members)
    assert len(adopts(members[0])) == 1
    assert [r["event"] for r in read_log(sweep.path)] == ["proposed", "expired", "applied"]


def test_auto_applies_at_once_and_a_refused_adopt_is_logged_failed(tmp_path):
    sweep, members = population(tmp_path)
    pbt = scheduler(sweep, Clock(), auto=True)
    pbt.step(members)
    assert [r["event"] for r in read_log(sweep.path)] == ["proposed", "approved", "applied"]
    (command,) = adopts(members[0])
    members[0].run.append_event("rejected", command_id=command["id"], reason="adopt: incompatible shapes")
    pbt.step(members)
    assert read_log(sweep.path)[-1]["event"] == "failed" and "incompatible" in read_log(sweep.path)[-1]["reason"]


def test_nothing_is_proposed_before_four_trials_are_scored_or_between_perturbation_epochs(tmp_path):
    sweep, members = population(tmp_path)
    pbt = scheduler(sweep, Clock(), auto=True)
    pbt.step(members[:3])
    members[0].curve = members[0].curve[:1]  # epoch 1 of perturb-every 2
    pbt.step(members)
    assert not (sweep.path / PBT_LOG).exists() or not read_log(sweep.path)


def test_perturb_is_seeded_and_keeps_beta_in_range():
    a = [perturb(0.01, 0.99, random.Random(7)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    for seed in range(20):
        lr, beta = perturb(0.01, 0.99, random.Random(seed))
        assert lr in (pytest.approx(0.008), pytest.approx(0.0125))
        assert 1 - beta in (pytest.approx(0.01 * 0.8), pytest.approx(0.01 * 1.25))  # 1 - β's scale, never 0.792
    assert perturb(0.01, None, random.Random(0))[1] is None


def test_pbt_refusals_before_anything_starts(tmp_path):
    fixed = parse_param_args(["lr=log:1e-3:1e-1", "units=16", "layers=1"])
    for settings, words in [(dict(trials=3, parallel=3), "at least 4 trials"),
                            (dict(trials=4, parallel=2), "--parallel (2) must be at least --trials (4)")]:
        with pytest.raises(PbtError, match=words.replace("(", r"\(").replace(")", r"\)")):
            SweepSettings(scheduler="pbt", **settings).validate()
    with pytest.raises(PbtError, match="fix units"):
        check_pbt(SweepSettings(scheduler="pbt", trials=4, parallel=4), parse_param_args(["units=int:16:32"]))
    check_pbt(SweepSettings(scheduler="pbt", trials=4, parallel=4), fixed)
    with pytest.raises(ValueError, match="with --scheduler pbt"):
        SweepSettings(auto=True).validate()

    result = subprocess.run([*PANDA, "sweep", "--run-dir", str(tmp_path), "--name", "few", "--scheduler", "pbt",
                             "--trials", "3", "--parallel", "3", "--epochs", "2", "--param", "units=16",
                             "--param", "layers=1", "--param", "batch_norm=false"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "at least 4 trials" in result.stderr, result.stderr
    assert not (tmp_path / "few").exists(), "nothing was written"


def tensors(checkpoint_path):
    reader = tf.train.load_checkpoint(str(checkpoint_path) + "/ckpt")
    return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map() if n.startswith("model/")}


@pytest.mark.timeout(300)
def test_a_real_pbt_sweep_with_auto_applies_an_exploit(tmp_path):
    result = subprocess.run(
        [*PANDA, "sweep", "--run-dir", str(tmp_path), "--name", "pbt", "--trials", "4", "--parallel", "4",
         "--epochs", "6", "--pace", "1", "--checkpoint-every", "1", "--seed", "1", "--scheduler", "pbt",
         "--perturb-every", "1", "--auto", "--param", "lr=log:1e-4:1e-1", "--param", "units=16",
         "--param", "layers=1", "--param", "batch_norm=false", "--quiet"],
        capture_output=True, text=True, timeout=290)
    assert result.returncode == 0, result.stdout + result.stderr
    sweep = SweepDir(tmp_path / "pbt")
    log = read_log(sweep.path)
    applied = [p for p in proposals(log).values() if p["state"] == "applied"]
    assert applied, log
    p = applied[0]
    target, source = RunDir(sweep.path / p["target"]), RunDir(sweep.path / p["source"])
    (answer,) = [e for e in target.read_events() if e.get("command_id") == p["command_id"] and e["event"] != "adopted"]
    assert answer["event"] == "applied", answer
    adopted = [e for e in target.read_events() if e.get("event") == "adopted" and e.get("command_id") == p["command_id"]]
    assert len(adopted) == 1 and adopted[0]["source_run"] == str(source.path.resolve())
    # journaled in the sources too (a source that finished meanwhile refuses the note, so: at least one)
    notes = [(q, e) for q in applied for e in RunDir(sweep.path / q["source"]).read_events()
             if e.get("event") == "note" and e.get("proposal") == q["proposal"]]
    assert notes and all(e["target"] == q["target"] and e["kind"] == "pbt_source" for q, e in notes)
    assert adopted[0]["lr"] == pytest.approx(p["lr"])
    checkpoints = {m["name"]: m for m in target.list_checkpoints()}
    theirs = {m["name"]: m for m in source.list_checkpoints()}[adopted[0]["source_checkpoint"]]
    ours = tensors(checkpoints[adopted[0]["checkpoint"]]["path"])
    for name, value in tensors(theirs["path"]).items():
        np.testing.assert_array_equal(ours[name], value, err_msg=name)
    assert all(t["state"] == "finished" for t in sweep.trials().values()), sweep.trials()


def test_a_resumed_sweep_closes_the_proposals_left_open_and_numbers_on(tmp_path):
    sweep, members = population(tmp_path)
    scheduler(sweep, Clock()).step(members)
    again = scheduler(sweep, Clock())  # the sweep was interrupted, then resumed
    assert [r["event"] for r in read_log(sweep.path)] == ["proposed", "failed"]
    assert proposals(read_log(sweep.path))["p-0001"]["state"] == "failed"
    append_decision(sweep.path, "p-0001", "approved")  # a late click changes nothing
    again.step(members)
    assert not adopts(members[0])
    assert [r["proposal"] for r in read_log(sweep.path) if r["event"] == "proposed"] == ["p-0001", "p-0002"]
