"""The autopilot on the page under AppTest: its decisions marked on the loss and α charts, the Autopilot panel
(share of compute, the latest decision's lookahead and why), Veto for the presenter only, the fork overlay
leaving the autopilot's lookaheads alone, and hostile decision records that never crash the page."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest_app import HPARAMS, make_run, write_status
from test_app_rights import TOKEN, no_streamlit_wall, open_app  # noqa: F401  (fixtures)
from tests.hostile import json_values, texts
from trainer.contract.rundir import append_jsonl, atomic_write_json
from trainer.training.exploration import FORKS

pytestmark = pytest.mark.timeout(300)

HORIZON = 110
#: (α, predicted loss at the horizon, fit) of each candidate of stage 2's lookahead: the second one wins.
CANDIDATES = [(lr, fit["a"] + fit["b"] * math.exp(-fit["c"] * HORIZON), fit) for lr, fit in (
    (0.001, {"a": 0.5, "b": 0.6, "c": 0.02}), (0.003, {"a": 0.2, "b": 0.9, "c": 0.05}), (0.009, {"a": 0.3, "b": 1.1, "c": 0.02}))]
PRESENTER = {"query": {"code": "one-time"}, "code": "one-time"}


def stage_event(stage: int, **fields) -> dict:
    return {"stage": stage, "epoch": 3 * stage, "step": 60 * stage, "time": 0.0, "trigger": "stage", "action": "fork",
            "from_lr": 0.01, "to_lr": 0.003, "candidates": [], "chosen": 1, "explore_steps": 60, "horizon": HORIZON,
            "record": FORKS, "command_id": None, **fields}


def lookahead_line(stage: int) -> dict:
    return {"kind": "fork", "steps": 20, "pick": "autopilot", "autopilot_stage": stage, "best": 1, "command_id": None,
            "candidates": [{"candidate": {"lr": lr}, "hparams": {**HPARAMS, "lr": lr}, "steps": 20, "final_loss": p,
                            "val_loss": p, "predicted_loss": p, "fit": fit,
                            "curve": [{"step": s, "loss": fit["a"] + fit["b"] * math.exp(-fit["c"] * s)}
                                      for s in range(1, 21)]} for lr, p, fit in CANDIDATES]}


def autopilot_run(root, *, vetoed: bool = False, explore_steps: int = 120, state: str = "running",
                  heartbeat: float | None = None):
    """A run on the lookahead autopilot after two decisions (the second a fork that chose α 0.003)."""
    run = make_run(root, "demo", state=state, heartbeat=heartbeat)
    config = json.loads(run.config_path.read_text())
    atomic_write_json(run.config_path, {**config, "autopilot": True, "autopilot_method": "lookahead"})
    run.append_event("autopilot_stage", **stage_event(1, action="find_lr", trigger="not learning", chosen=None,
                                                      from_lr=1e-5, to_lr=0.01, record="lr_finder.jsonl"))
    run.append_event("autopilot_stage", **stage_event(2))
    append_jsonl(run.path / FORKS, lookahead_line(2))
    if vetoed:
        run.append_event("autopilot_vetoed", stage=2, lr=0.01, command_id="v-1")
    status = json.loads(run.status_path.read_text())
    atomic_write_json(run.status_path, {**status, "explore_steps": explore_steps})  # step 200 + 120 exploring
    return run


def charts(at) -> dict[str, dict]:
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return {(s["layout"].get("title") or {}).get("text", ""): s for s in specs}


def autopilot_markers(spec: dict) -> list[dict]:
    return [t for t in spec["data"] if t.get("name") == "autopilot"]


def panel_text(at) -> str:
    return "\n".join(m.value for m in at.markdown)


def test_each_decision_is_marked_on_the_loss_and_alpha_charts_with_what_it_did(open_app):
    autopilot_run(open_app.root)
    shown = charts(open_app())
    for title in ("Loss", "Learning rate α"):
        (marks,) = autopilot_markers(shown[title])
        assert marks["x"] == pytest.approx([3.0, 6.0])  # steps 60 and 120 at 20 steps an epoch
        assert "not learning → find_lr" in marks["hovertext"][0] and "α 1e-05 → 0.01" in marks["hovertext"][0]
        assert "stage → fork" in marks["hovertext"][1] and "α 0.01 → 0.003" in marks["hovertext"][1]
    assert not autopilot_markers(shown["Accuracy"])


def test_a_rewind_drops_the_markers_of_the_decisions_it_undid(open_app):
    run = autopilot_run(open_app.root)
    run.append_event("rewound", checkpoint="ckpt-00005", to_epoch=5, epoch=5, step=100, branch=1)
    for title, spec in charts(open_app()).items():
        if title in ("Loss", "Learning rate α"):
            assert autopilot_markers(spec)[0]["x"] == pytest.approx([3.0]), title  # stage 2 (epoch 6) was undone


def test_the_panel_shows_the_lookahead_its_fits_to_the_horizon_and_why_it_chose(open_app):
    autopilot_run(open_app.root)
    at = open_app()
    text = panel_text(at)
    assert "Autopilot: 2 decisions · 37.5 % of steps spent exploring" in text  # 120 / (200 + 120)
    assert f"Stage 2 (epoch 6): α 0.01 → 0.003: lowest predicted loss {CANDIDATES[1][1]:.3g} at step 110" in text
    spec = next(s for t, s in charts(at).items() if t.startswith("Autopilot stage 2"))
    curves = [t for t in spec["data"] if t["mode"] == "lines" and t.get("line", {}).get("dash") != "dash"]
    fits = [t for t in spec["data"] if t.get("line", {}).get("dash") == "dash"]
    predicted = [t for t in spec["data"] if t["mode"] == "markers"]
    assert len(curves) == len(fits) == len(predicted) == len(CANDIDATES)
    assert [f["x"][-1] for f in fits] == [HORIZON] * 3
    for fit, (_, p, _) in zip(fits, CANDIDATES):
        assert fit["y"][-1] == pytest.approx(p)  # the fit reaches its predicted loss at the horizon
    assert [m["y"] for m in predicted] == [[p] for _, p, _ in CANDIDATES]
    assert min(range(3), key=lambda i: CANDIDATES[i][1]) == 1  # the chosen one is the lowest predicted
    widths = [c["line"]["width"] for c in curves]
    assert widths[1] > widths[0] and widths[1] > widths[2] and "(chosen)" in curves[1]["name"]


def test_veto_sends_the_stage_for_the_presenter_and_a_vetoed_decision_shows_it(open_app):
    run = autopilot_run(open_app.root)
    at = open_app(**PRESENTER)
    button = at.button(key="veto")
    assert not button.disabled and at.button(key="autopilot-undo")
    button.click().run()
    assert not at.exception, at.exception
    sent = [(c["cmd"], c.get("value"), c["source"]) for c in run.read_commands()]
    assert sent == [("veto", 2, "dashboard")]
    command = run.read_commands()[-1]
    run.append_event("applied", command_id=command["id"], cmd="veto", value=2, epoch=10, step=200,
                     hparams={**HPARAMS, "lr": 0.01})
    run.append_event("autopilot_vetoed", stage=2, lr=0.01, command_id=command["id"])
    at.run()
    assert "vetoed: α back to 0.01" in panel_text(at) and at.button(key="veto").disabled
    (alpha,) = [t for t in charts(at)["Learning rate α"]["data"] if t.get("name") == "learning rate"
                and t.get("mode") == "markers"]  # the veto's α change is marked like any other
    assert "0.003 → 0.01 (veto of autopilot stage 2)" in alpha["hovertext"][-1]
    assert any("applied at epoch 10" in m.value for m in at.sidebar.markdown)  # the answers panel


def test_a_rejected_veto_shows_in_the_answers(open_app):
    run = autopilot_run(open_app.root)
    at = open_app(**PRESENTER)
    at.button(key="veto").click().run()
    command = run.read_commands()[-1]
    run.append_event("rejected", command_id=command["id"], cmd="veto", reason="only the latest stage (3) can be vetoed")
    at.run()
    assert any("rejected — only the latest stage (3) can be vetoed" in m.value for m in at.sidebar.markdown)


def test_viewers_never_see_veto_and_a_forged_one_writes_nothing(open_app, no_streamlit_wall):  # noqa: F811
    run = autopilot_run(open_app.root)
    at = open_app()  # ?presenter without the token: the full page, read-only
    assert "Autopilot: 2 decisions" in panel_text(at)
    assert not [b for b in at.button if b.key in ("veto", "autopilot-undo")]
    assert run.read_commands() == []


def test_the_projector_shows_the_share_the_decision_and_the_lookahead(open_app):
    autopilot_run(open_app.root, vetoed=True)
    at = open_app()
    at.query_params.pop("presenter")
    at.run()
    line = next(m.value for m in at.markdown if 'data-testid="panda-autopilot"' in m.value)
    assert "Autopilot: 2 decisions · 37.5 % of steps spent exploring" in line and "vetoed: α back to 0.01" in line
    assert any(t.startswith("Autopilot stage 2") for t in charts(at)) and not at.button


def test_the_steer_toggle_names_the_method(open_app):
    autopilot_run(open_app.root)
    assert open_app(**PRESENTER).sidebar.button(key="autopilot").label == "Autopilot (lookahead) is on: turn it off"


def fork_buttons(at) -> list:
    return [b for b in at.sidebar.button if b.key and b.key.startswith("fork_pick")]


def test_an_autopilot_lookahead_offers_no_choice_in_the_fork_overlay(open_app):
    run = autopilot_run(open_app.root, state="paused")
    run.append_event("fork_result", command_id=None, best=1, pick="autopilot", record=FORKS, candidates=[])
    at = open_app(**PRESENTER)
    assert not fork_buttons(at) and "fork step" not in json.dumps(charts(at))


def test_a_users_fork_waiting_for_a_choice_is_offered_even_after_an_autopilot_lookahead(open_app):
    run = autopilot_run(open_app.root, state="paused")
    user = lookahead_line(9)
    user.update(pick="ask", candidates=user["candidates"][:2])
    del user["autopilot_stage"]
    append_jsonl(run.path / FORKS, user)  # journaled without a command id, then a newer lookahead line and event
    run.append_event("fork_result", best=0, pick="ask", record=FORKS, candidates=[])
    append_jsonl(run.path / FORKS, lookahead_line(3))
    run.append_event("fork_result", best=1, pick="autopilot", record=FORKS, candidates=[])
    at = open_app(**PRESENTER)
    assert len(fork_buttons(at)) == 2  # the user's two candidates, not the lookahead's three
    at.sidebar.button(key="fork_pick-1").click().run()
    assert [(c["cmd"], c.get("value")) for c in run.read_commands()] == [("set_lr", 0.003), ("resume", None)]


@pytest.mark.parametrize("config", [{}, {"autopilot": True, "autopilot_method": "rules"}, {"autopilot": True}])
def test_a_run_without_the_stage_autopilot_shows_no_panel(open_app, config):
    run = make_run(open_app.root, "demo")
    atomic_write_json(run.config_path, {**json.loads(run.config_path.read_text()), **config})
    at = open_app()
    assert "Autopilot:" not in panel_text(at) and not autopilot_markers(charts(at)["Loss"])


def test_the_lookahead_autopilot_before_its_first_decision(open_app):
    run = make_run(open_app.root, "demo")
    atomic_write_json(run.config_path, {**json.loads(run.config_path.read_text()), "autopilot": True,
                                        "autopilot_method": "lookahead"})
    at = open_app()
    assert "Autopilot: 0 decisions · 0 % of steps spent exploring" in panel_text(at)
    assert any("No decision yet" in c.value for c in at.caption) and not [b for b in at.button if b.key == "veto"]


# --------------------------------------------------------------------------- hostile records

hostile_numbers = st.sampled_from([float("nan"), float("inf"), -1, 0, 10**400, "0.01", True, None, [], {}])
hostile = hostile_numbers | json_values | texts


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(event=st.dictionaries(st.sampled_from(sorted(stage_event(1))), hostile, max_size=8),
       candidate=st.dictionaries(st.sampled_from(["candidate", "predicted_loss", "fit", "curve", "steps"]), hostile),
       fit=st.dictionaries(st.sampled_from(["a", "b", "c"]), hostile), many=st.integers(0, 3000),
       status=st.dictionaries(st.sampled_from(["explore_steps", "step"]), hostile))
def test_hostile_decision_records_never_crash_the_page(open_app, event, candidate, fit, many, status):
    run = make_run(open_app.root, f"hostile-{len(list(open_app.root.iterdir()))}")
    run.append_event("autopilot_stage", **{**stage_event(1), **event})
    run.append_event("autopilot_vetoed", stage=event.get("stage", "1"))
    line = lookahead_line(1)
    line["candidates"] = [{**c, **candidate, "fit": fit} for c in line["candidates"]] + [candidate] * many
    line["autopilot_stage"] = event.get("stage", 1)
    append_jsonl(run.path / FORKS, line)
    atomic_write_json(run.status_path, {**json.loads(run.status_path.read_text()), **status})
    at = open_app(query={"run": run.name})
    at.session_state["token"] = TOKEN  # typed in the token box: the presenter's page, Veto and all
    at.run()
    assert not at.exception, at.exception
    assert "Autopilot: 1 decision" in panel_text(at) and at.button(key="veto")


@settings(max_examples=200, deadline=None)
@given(events=st.lists(st.fixed_dictionaries({"event": st.sampled_from(["autopilot_stage", "autopilot_vetoed"])},
                                             optional={k: hostile for k in stage_event(1)}), max_size=6),
       line=st.dictionaries(st.sampled_from(["pick", "autopilot_stage", "candidates", "best"]), hostile),
       candidates=st.lists(st.dictionaries(st.sampled_from(["candidate", "predicted_loss", "fit", "curve"]),
                                           hostile | st.fixed_dictionaries({}, optional={"a": hostile, "b": hostile,
                                                                                         "c": hostile})), max_size=5))
def test_hostile_decisions_and_lookaheads_read_and_draw_without_raising(tmp_path_factory, events, line, candidates):
    import plotly.io as pio

    from app.data import autopilot as ap
    from app.figures.autopilot_charts import lookahead_figure

    folder = tmp_path_factory.mktemp("run")
    append_jsonl(folder / FORKS, {"pick": "autopilot", "autopilot_stage": 1, "candidates": candidates, **line})
    summary = ap.summary(events, folder)
    assert summary.count == sum(e["event"] == "autopilot_stage" for e in events)
    assert isinstance(summary.sentence, str) and isinstance(ap.share_text(summary.count, None), str)
    figure = lookahead_figure(summary)
    if figure is not None:
        json.loads(pio.to_json(figure, validate=False))  # what the page sends: strict enough for the browser


def test_the_autopilot_is_read_and_drawn_once_per_change_for_every_session(open_app, monkeypatch):
    from app.data import autopilot as ap

    run = autopilot_run(open_app.root)
    reads = []
    real = ap.summary
    monkeypatch.setattr(ap, "summary", lambda *args: reads.append(args) or real(*args))
    first = open_app()
    second = open_app()
    first.run()
    assert len(reads) == 1 and "Autopilot: 2 decisions" in panel_text(second)  # three renders, two sessions: one read
    append_jsonl(run.path / FORKS, lookahead_line(3))  # forks.jsonl changed, the journal did not
    second.run()
    first.run()
    assert len(reads) == 2
    run.append_event("autopilot_stage", **stage_event(3, to_lr=0.009, chosen=2))  # the journal changed
    second.run()
    first.run()
    assert len(reads) == 3 and "Stage 3 (epoch 9): α 0.01 → 0.009" in panel_text(first)


def test_a_real_lookahead_run_reads_and_draws_as_its_trainer_wrote_it(open_app):
    """panda train's own records (digits, α 100× too low: a finder stage, then forks), not ones written here."""
    from trainer.contract.hparams import Hyperparameters
    from trainer.training.loop import TrainConfig, Trainer

    config = TrainConfig(hparams=Hyperparameters(lr=1e-5), epochs=8, seed=0, autopilot=True)  # a stage ends at epoch 6
    Trainer.create(open_app.root / "real", config, verbose=False).run()
    events = [json.loads(line) for line in (open_app.root / "real" / "events.jsonl").read_text().splitlines()]
    stages = [e for e in events if e["event"] == "autopilot_stage"]
    assert len(stages) >= 2 and stages[0]["action"] == "find_lr" and stages[-1]["action"] == "fork"
    at = open_app(query={"run": "real"})
    text = panel_text(at)
    assert f"Autopilot: {len(stages)} decisions · " in text and "% of steps spent exploring" in text
    assert "Stage 1 (epoch" not in text and f"Stage {len(stages)} (epoch {stages[-1]['epoch']}): " in text
    assert "lowest predicted loss" in text or "no candidate was predicted lower" in text
    lookahead = next(s for t, s in charts(at).items() if t.startswith(f"Autopilot stage {len(stages)}"))
    n = len(stages[-1]["candidates"])
    assert len([t for t in lookahead["data"] if t["mode"] == "markers"]) == n  # each one's prediction
    assert len([t for t in lookahead["data"] if t.get("line", {}).get("dash") == "dash"]) == n  # each one's fit
    (marks,) = autopilot_markers(charts(at)["Loss"])
    assert len(marks["x"]) == len(stages) and "not learning → find_lr" in marks["hovertext"][0]


def test_a_stage_the_autopilot_took_back_itself_says_so(open_app):
    """``autopilot_vetoed`` with ``by: "autopilot"``: its raise of α left the run not learning, so it undid it."""
    run = autopilot_run(open_app.root)
    run.append_event("autopilot_vetoed", stage=2, lr=0.01, command_id=None, by="autopilot",
                     reason="not learning since it raised α")
    at = open_app()
    text = panel_text(at)
    assert "taken back by the autopilot (the run stopped learning): α back to 0.01" in text
    assert "— vetoed:" not in text
