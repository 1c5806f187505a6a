"""A client cannot make the server open runs without bound (issue 21): per session and overall."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from app.serving.admission import OpenBudget, Refused
from app.data.runstore import RunStore
from app.serving.shared import shared
from conftest_app import make_run

pytestmark = pytest.mark.timeout(180)

DASHBOARD = Path(__file__).resolve().parent.parent / "app" / "dashboard.py"
CLIENTS = st.one_of(st.sampled_from(["a", "b", "c"]), st.text(alphabet=st.characters(blacklist_categories=()), max_size=8))


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(CLIENTS, st.floats(0, 5, allow_nan=False)), max_size=120))
def test_granted_opens_never_exceed_either_bucket(requests):
    clock = Clock()
    budget = OpenBudget(clock=clock, clients=16)
    granted: dict[str, list[float]] = {}
    for client, gap in requests:
        clock.now += gap
        try:
            budget.take(client)
        except Refused as e:
            assert str(e)  # a message the page can show
            continue
        granted.setdefault(client, []).append(clock.now)
    everything = sorted(t for ts in granted.values() for t in ts)
    span = clock.now
    assert len(everything) <= budget.overall_burst + span / budget.overall_every + 1e-9
    if len({c for c, _ in requests}) <= budget.clients:  # none forgotten: each session's own bound holds
        for times in granted.values():
            assert len(times) <= budget.session_burst + span / budget.session_every + 1e-9


def test_a_refusal_by_the_server_does_not_charge_the_session():
    clock = Clock()
    budget = OpenBudget(clock=clock, session_burst=3, overall_burst=2)
    budget.take("x")
    budget.take("y")
    with pytest.raises(Refused, match="other viewers"):
        budget.take("x")
    clock.now += budget.overall_every * 2  # the server has two opens again; x still has two of its three
    budget.take("x")
    budget.take("x")


def test_the_store_refuses_a_flood_of_uncached_runs_but_serves_open_ones_and_the_presenter(tmp_path):
    for i in range(12):
        make_run(tmp_path, f"r{i:02d}", epochs_done=2, state="finished")
    store = RunStore(tmp_path, watch=False, budget=OpenBudget(session_burst=3, session_every=3600,
                                                            overall_burst=5, overall_every=3600))
    paths = [tmp_path / f"r{i:02d}" for i in range(12)]
    for path in paths[:3]:
        store.run(path, client="hostile")
    with pytest.raises(Refused, match="several runs"):
        store.run(paths[3], client="hostile")
    assert not store.is_open(paths[3])
    assert store.run(paths[0], client="hostile") is store.run(paths[0])  # an open run is free
    store.run(paths[4], client="second")
    store.run(paths[5], client="second")
    with pytest.raises(Refused, match="other viewers"):
        store.run(paths[6], client="third")  # the server's five are spent
    for path in paths[6:]:
        store.run(path)  # the presenter pays nothing
    store.close()


def test_a_viewer_asking_for_run_after_run_is_told_to_wait(tmp_path, monkeypatch):
    """A viewer session of the real page naming one uncached run after another with ?run=."""
    for i in range(8):
        make_run(tmp_path, f"r{i:02d}", epochs_done=2, state="finished")
    monkeypatch.setenv("PANDA_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("PANDA_TOKEN", "a-token")
    at = AppTest.from_file(str(DASHBOARD), default_timeout=60)
    shown = []
    for i in range(8):
        at.query_params["run"] = f"r{i:02d}"
        at.run()
        assert not at.exception, at.exception
        shown.append(" ".join(e.value for e in at.info))
    refused = [i for i, text in enumerate(shown) if "several runs" in text]
    assert refused, shown
    store = shared("run store", str(tmp_path), lambda: None)
    assert sum(store.is_open(tmp_path / f"r{i:02d}") for i in range(8)) <= OpenBudget.session_burst
    other = AppTest.from_file(str(DASHBOARD), default_timeout=60)  # another viewer of an open run: served
    other.query_params["run"] = "r00"
    other.run()
    assert not other.info and "panda-banner" in " ".join(m.value for m in other.markdown)
