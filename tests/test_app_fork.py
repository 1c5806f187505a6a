"""The fork overlay under AppTest: every candidate's curve on one figure, 'continue with this one' sends
its hyperparameters then resume, for the presenter only."""

from __future__ import annotations

import json

import pytest

from conftest_app import make_run
from test_app_rights import forge, no_streamlit_wall, open_app  # noqa: F401  (fixtures)
from trainer.training.exploration import FORKS
from trainer.contract.rundir import append_jsonl

pytestmark = pytest.mark.timeout(120)

CANDIDATES = [({"lr": 0.01}, 0.61), ({"lr": 0.001, "beta": 0.95}, 0.42), ({"batch_size": 128}, 0.55)]


def fork_run(root, *, pick="ask", resumed=False):
    run = make_run(root, "demo", state="paused")
    candidates = [{"candidate": c, "hparams": {"lr": 0.003, "beta": 0.9, "batch_size": 64, **c}, "steps": 20,
                   "final_loss": v + 0.1, "val_loss": v, "val_accuracy": 0.8,
                   "curve": [{"step": s, "loss": 2.0 / s + v} for s in range(1, 21)]} for c, v in CANDIDATES]
    append_jsonl(run.path / FORKS, {"kind": "fork", "steps": 20, "pick": pick, "best": 1, "candidates": candidates,
                                    "base": {"lr": 0.003, "beta": 0.9, "batch_size": 64}, "val_examples": 360,
                                    "command_id": "fork-1", "epoch": 10, "step": 200, "branch": 0, "time": 0})
    run.append_event("fork_result", command_id="fork-1", best=1, pick=pick, record=FORKS,
                     candidates=[{k: c[k] for k in ("hparams", "final_loss", "val_loss", "val_accuracy", "steps")}
                                 for c in candidates])
    if resumed:
        run.append_event("resumed", command_id="r-1")
    return run


def fork_charts(at) -> list[dict]:
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return [s for s in specs if (s["layout"].get("xaxis", {}).get("title") or {}).get("text") == "fork step"]


def test_the_overlay_draws_every_candidate_and_continues_with_the_chosen_one(open_app):
    run = fork_run(open_app.root)
    at = open_app(query={"code": "one-time"}, code="one-time")  # the presenter
    (spec,) = fork_charts(at)
    assert len(spec["data"]) == len(CANDIDATES)
    assert [t["y"][-1] for t in spec["data"]] == pytest.approx([0.61 + 0.1, 0.42 + 0.1, 0.55 + 0.1])
    assert all(f"val loss {v:.3g}" in t["name"] for t, (_, v) in zip(spec["data"], CANDIDATES))
    buttons = [at.sidebar.button(key=f"fork_pick-{i}") for i in range(len(CANDIDATES))]
    assert {b.label for b in buttons} == {"continue with this one"} and not any(b.disabled for b in buttons)

    at.sidebar.button(key="fork_pick-1").click().run()
    assert not at.exception, at.exception
    sent = [(c["cmd"], c.get("value"), c["source"]) for c in run.read_commands()]
    assert sent == [("set_lr", 0.001, "dashboard"), ("set_beta", 0.95, "dashboard"), ("resume", None, "dashboard")]


def test_a_viewers_forged_choice_writes_nothing(open_app, no_streamlit_wall):  # noqa: F811
    run = fork_run(open_app.root)
    at = open_app()  # ?presenter without the token: the page, read-only
    assert len(fork_charts(at)[0]["data"]) == len(CANDIDATES)
    assert at.sidebar.button(key="fork_pick-2").disabled
    forge(at.sidebar.button(key="fork_pick-2")).click().run()
    assert not at.exception, at.exception
    assert run.read_commands() == [], "a viewer's forged choice wrote a command"
    assert at.session_state["refused_writes"] == 1, "the forged click did not reach the write path"


@pytest.mark.parametrize("pick, resumed", [("best", False), ("ask", True)])
def test_no_overlay_unless_the_fork_waits_for_a_choice(open_app, pick, resumed):
    fork_run(open_app.root, pick=pick, resumed=resumed)
    at = open_app(query={"code": "one-time"}, code="one-time")
    assert fork_charts(at) == [] and not [b for b in at.sidebar.button if b.key and b.key.startswith("fork_pick")]
