"""The lookahead autopilot's planner, without TensorFlow: fits, choices, stage lengths, the sampler, vetoes, resume."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainer.contract import commands as cmds
from trainer.contract.event_records import AUTOPILOT_ACTIONS, AUTOPILOT_TRIGGERS, AutopilotStage, AutopilotVetoed
from trainer.search.stage_sampler import StageSampler
from trainer.steering import autopilot as ap


@pytest.mark.parametrize("a,b,c", [(0.5, 2.0, 0.3), (0.05, 0.4, 0.08), (1.2, -0.3, 0.5), (0.0, 1.0, 1.5)])
def test_the_fit_recovers_a_b_c_of_an_exponential_curve(a, b, c):
    fit = ap.fit_curve([a + b * math.exp(-c * s) for s in range(1, 31)])
    assert fit["a"] == pytest.approx(a, abs=1e-3) and fit["b"] == pytest.approx(b, rel=1e-2)
    assert fit["c"] == pytest.approx(c, rel=1e-2)


def test_the_fit_on_a_noisy_curve_predicts_near_the_truth_at_the_stage_end():
    rng = random.Random(3)
    losses = [0.4 + 1.5 * math.exp(-0.15 * s) + rng.gauss(0, 0.02) for s in range(1, 21)]
    predicted, fit = ap.predict(losses, 100)
    assert fit is not None and predicted == pytest.approx(0.4, abs=0.05)


def test_no_fit_falls_back_to_the_last_tenths_mean_and_a_diverged_curve_has_no_prediction():
    assert ap.predict([1.0, 0.9, 0.8, 0.7], 50) == (0.7, None)  # too few points to fit
    assert ap.predict([2.0, 1.0, math.inf, 3.0, 3.0], 50) == (None, None)
    assert ap.predict([], 50) == (None, None)
    flat = [0.3] * 20  # no curve: every c fits equally; the prediction is the level
    assert ap.predict(flat, 80)[0] == pytest.approx(0.3)


def test_the_choice_keeps_the_current_alpha_unless_another_is_clearly_better():
    assert ap.choose([0.50, 0.30, 0.40], keep=0) == 1
    assert ap.choose([0.50, 0.49, 0.48], keep=0) == 0  # within 5 %: keep
    assert ap.choose([None, 0.3, 0.2], keep=0) == 2  # the current α diverged: the best other
    assert ap.choose([None, None], keep=0) is None


def test_stage_and_lookahead_lengths_follow_the_epoch():
    assert [ap.stage_length(n) for n in (1, 23, 49, 50, 51, 300)] == [50, 69, 98, 50, 51, 300]
    assert all(ap.stage_length(n) % n == 0 and ap.stage_length(n) >= 50 for n in range(1, 200))
    assert [ap.lookahead_steps(h) for h in (50, 69, 100, 1000)] == [10, 13, 20, 200]


def test_scores_are_relative_to_the_stage_best_and_penalise_divergence():
    assert ap.scores([1.0, 1.5, None]) == [0.0, 0.5, ap.PENALTY]
    assert ap.scores([None]) == [ap.PENALTY]


def test_the_sampler_is_deterministic_with_a_seed_and_learns_from_tells():
    def session(seed, stages=10):
        sampler = StageSampler(1e-3, seed=seed)
        asked = []
        for _ in range(stages):
            lrs = sampler.ask(2)
            asked.append(lrs)
            for lr in lrs:  # a landscape whose best α is 3e-3
                sampler.tell(lr, abs(math.log10(lr) - math.log10(3e-3)))
        return asked, sampler

    first, sampler = session(0)
    assert first == session(0)[0] and first != session(1)[0]
    assert sampler.told == 20
    assert all(1e-6 <= lr <= 1.0 for pair in first for lr in pair)  # the run's first α ÷/× 1000
    # uniform draws over log10 α in [-6, 0] are 1.54 decades from the best on average; TPE, once told, nearer
    for seed in range(3):
        late = [abs(math.log10(lr) - math.log10(3e-3)) for pair in session(seed)[0][-4:] for lr in pair]
        assert sum(late) / len(late) < 1.1, seed


def test_stage_one_tries_a_third_and_three_times_then_the_sampler():
    planner = ap.StagePlanner(StageSampler(0.01, seed=0))
    assert planner.candidates(0.01) == [0.01, 0.00333, 0.03]
    planner.record({"event": "autopilot_stage", "stage": 1, "action": "fork", "from_lr": 0.01, "to_lr": 0.03,
                    "candidates": [{"lr": 0.01, "predicted_loss": 0.5}, {"lr": 0.00333, "predicted_loss": 0.6},
                                   {"lr": 0.03, "predicted_loss": 0.4}]})
    later = planner.candidates(0.03)
    assert later[0] == 0.03 and 2 <= len(later) <= 3, "the current α first, so keeping it is possible"
    assert planner.sampler.told == 3
    for _ in range(8):  # the sampler ranges over 1e-5..10; a stage moves α at most 10× either way
        assert all(0.003 - 1e-12 <= lr <= 0.3 + 1e-12 for lr in planner.candidates(0.03))


def _stages():
    return [{"event": "autopilot_stage", "stage": 1, "step": 69, "action": "find_lr", "from_lr": 1e-5, "to_lr": 0.01,
             "candidates": []},
            {"event": "autopilot_stage", "stage": 2, "step": 138, "action": "fork", "from_lr": 0.01, "to_lr": 0.003,
             "candidates": [{"lr": 0.01, "predicted_loss": 0.3}, {"lr": 0.003, "predicted_loss": 0.2},
                            {"lr": 0.03, "predicted_loss": None}]}]


def test_a_veto_takes_the_latest_stage_only_once_and_tells_the_sampler():
    planner = ap.StagePlanner(StageSampler(1e-5, seed=0))
    with pytest.raises(cmds.CommandError, match="no stage decision"):
        planner.veto(1)
    for event in _stages():
        planner.record(event)
    assert planner.sampler.told == 3
    with pytest.raises(cmds.CommandError, match=r"only the latest autopilot stage \(2\)"):
        planner.veto(1)
    assert planner.veto(2) == 0.01 and planner.hold
    assert planner.sampler.told == 4, "the vetoed α was told as bad"
    with pytest.raises(cmds.CommandError, match="already vetoed"):
        planner.veto(2)


def test_resume_rebuilds_the_planner_from_the_journal():
    events = [*_stages(), {"event": "autopilot_vetoed", "stage": 2, "lr": 0.01}, {"event": "applied"}]
    live = ap.StagePlanner(StageSampler(1e-5, seed=0))
    for event in _stages():
        live.record(event)
    live.veto(2)
    rebuilt = ap.StagePlanner(StageSampler(1e-5, seed=0))
    rebuilt.resumed(events)
    assert (rebuilt.next_stage, rebuilt.vetoed, rebuilt.hold) == (3, {2}, True)
    assert rebuilt.sampler.told == live.sampler.told == 4
    assert rebuilt.candidates(0.01) == live.candidates(0.01), "the same memory asks the same α's"


def test_the_stage_event_record_reads_the_contracts_fields():
    raw = {**_stages()[1], "epoch": 6, "time": 1.5, "trigger": "stage", "chosen": 1, "explore_steps": 39,
           "horizon": 69, "record": "forks.jsonl", "command_id": "c-1"}
    stage = AutopilotStage.from_json(raw)
    assert (stage.stage, stage.trigger, stage.action, stage.chosen, stage.explore_steps) == (2, "stage", "fork", 1, 39)
    assert stage.candidates[2] == {"lr": 0.03}  # a diverged candidate's prediction is null
    assert AutopilotStage.from_json(stage.to_json()) == stage
    assert stage.trigger in AUTOPILOT_TRIGGERS and stage.action in AUTOPILOT_ACTIONS
    assert AutopilotStage.from_json({"event": "advice"}) is None
    vetoed = AutopilotVetoed.from_json({"event": "autopilot_vetoed", "stage": 2, "lr": "x", "command_id": "c-2"})
    assert (vetoed.stage, vetoed.lr, vetoed.command_id) == (2, None, "c-2")


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.integers(), st.floats(allow_nan=True), st.booleans(), st.none(),
                 st.text(alphabet=st.characters(blacklist_categories=())), st.just("\udfff"),
                 st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)))
def test_the_veto_value_is_a_stage_number_or_a_clear_rejection(value):
    record = {"id": "c-1", "cmd": "veto", "value": value}
    try:
        command = cmds.validate(record)
    except cmds.CommandError as e:
        assert str(e)
        return
    assert isinstance(command.value, int) and not isinstance(command.value, bool) and command.value >= 1
    text_ok = isinstance(value, str) and value.strip().isdigit()
    assert (isinstance(value, int) and not isinstance(value, bool)) or text_ok \
        or (isinstance(value, float) and value.is_integer())


def test_a_replay_repeats_a_veto_as_the_alpha_it_set():
    from trainer.steering.replay import plan_of

    events = [{"event": "applied", "cmd": "set_lr", "value": 0.01, "epoch": 3, "step": 69, "hparams": {"lr": 0.01}},
              {"event": "applied", "cmd": "veto", "value": 1, "epoch": 4, "step": 92, "hparams": {"lr": 1e-5}}]
    assert plan_of(events) == [{"epoch": 3, "step": 69, "cmd": "set_lr", "value": 0.01},
                               {"epoch": 4, "step": 92, "cmd": "set_lr", "value": 1e-5}]


def test_a_divergence_the_autopilot_handled_does_not_bring_a_resumed_run_back_waiting():
    from trainer.contract.journal import state_at_end

    assert state_at_end([{"event": "started"}, {"event": "diverged", "autopilot": True}]) is None
    assert state_at_end([{"event": "started"}, {"event": "diverged"}]) == "diverged"
