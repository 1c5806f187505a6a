"""The viewers' page under Streamlit's AppTest: made for a projector, nothing to steer, nothing private."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from app.views import projector
from app.serving.scenarios import SCENARIOS
from conftest_app import HPARAMS, make_run, write_status

pytestmark = pytest.mark.timeout(120)

DASHBOARD = Path(__file__).resolve().parent.parent / "app" / "dashboard.py"
RUN = "demo-bouncing-20250101-120000"


@pytest.fixture
def open_app(tmp_path, monkeypatch):
    """``open_app(token, query, view_url)``: the dashboard on ``tmp_path``, run once."""
    for name in ("PANDA_TOKEN", "PANDA_PRESENTER_CODE", "PANDA_VIEW_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PANDA_RUN_DIR", str(tmp_path))

    def start(token: str | None = "s3cret-token", query: dict | None = None, view_url: str | None = None) -> AppTest:
        if token:
            monkeypatch.setenv("PANDA_TOKEN", token)
        if view_url:
            monkeypatch.setenv("PANDA_VIEW_URL", view_url)
        at = AppTest.from_file(str(DASHBOARD), default_timeout=30)
        at.query_params.update(query or {})
        at.run()
        assert not at.exception, at.exception
        return at

    yield start
    st.cache_resource.clear()


@pytest.fixture
def steered_run(tmp_path):
    """A bouncing demo run whose learning rate was cut ×0.1 during epoch 48."""
    run = make_run(tmp_path, RUN, epochs_done=50, epochs=300)
    run.append_event("applied", command_id="c1", cmd="scale_lr", value=0.1, epoch=47, step=47 * 20 + 5,
                     hparams={**HPARAMS, "lr": 0.0003})
    write_status(run, state="running", epoch=50, epochs=300, hparams={**HPARAMS, "lr": 0.0003})
    return run


def _protos(block) -> list:
    out = []
    for child in getattr(block, "children", {}).values() if isinstance(getattr(block, "children", None), dict) else []:
        out.append(child)
        out += _protos(child)
    return out


def _all_text(at: AppTest) -> str:
    return "\n".join(str(getattr(node, "proto", "")) for node in _protos(at._tree))


def _charts(at: AppTest) -> list[dict]:
    return [json.loads(node.proto.spec) for node in _protos(at.main) if getattr(node, "type", "") == "plotly_chart"]


def test_a_viewer_gets_the_projected_page_and_nothing_to_steer(open_app, steered_run, tmp_path):
    at = open_app()
    assert not at.sidebar.children or not (at.sidebar.button or at.sidebar.selectbox or at.sidebar.text_input)
    assert not at.button and not at.text_input and not at.select_slider and not at.selectbox and not at.toggle
    text = _all_text(at)
    assert "data-testid=\\\"panda-banner" in text and text.count("displayModeBar") == 4  # the walk sees the page
    assert str(tmp_path) not in text and "/tmp" not in text and "s3cret-token" not in text  # no paths, no token
    banner = next(m.value for m in at.markdown if 'data-testid="panda-banner"' in m.value)
    assert "<b>running</b>" in banner and "epoch 50 / 300" in banner and "α 0.0003" in banner
    latest = next(m.value for m in at.markdown if 'data-testid="panda-latest"' in m.value)
    assert "learning rate ×0.1 at epoch 48 (0.003 → 0.0003)" in latest
    assert any(SCENARIOS["bouncing"].hint.split(":")[0] in m.value for m in at.markdown)  # the demo's hint
    charts = _charts(at)
    assert len(charts) == 4
    for spec in charts:
        layout = spec["layout"]
        assert layout["xaxis"]["tickfont"]["size"] >= 16 and layout["yaxis"]["tickfont"]["size"] >= 16
        assert layout["height"] * 2 <= 720 - 150  # two rows, the banner and a line fit a 720 px screen


def test_viewers_share_one_encoding_of_each_chart_per_change(open_app, steered_run):
    open_app()
    cache = projector.shared_charts()
    built = cache.builds
    assert built == 4
    second = open_app()
    second.run()
    assert cache.builds == built  # a second session and a refresh: nothing re-encoded
    write_status(steered_run, state="running", epoch=51, epochs=300)
    from conftest_app import epoch_record
    from trainer.contract.rundir import append_jsonl

    append_jsonl(steered_run.metrics_path, epoch_record(51))
    projector.shared_charts()  # same instance
    second.run()
    assert cache.builds == built + 4  # new records: each chart once more


def test_the_presenter_keeps_the_full_page_a_qr_code_and_the_hint(open_app, steered_run):
    at = open_app(token=None, view_url="http://192.168.1.5:8501/")  # localhost, no token: the full page
    assert at.sidebar.button and not any('data-testid="panda-banner"' in m.value for m in at.markdown)
    assert not [n for n in _protos(at.sidebar) if getattr(n, "type", "") == "image"]  # no room, no QR code
    at = open_app(query={"presenter": "1"})  # a presenter after a reload: the token box, not the projection
    assert at.sidebar.text_input and at.sidebar.text_input[0].label == "Presenter token"
    at.sidebar.text_input[0].input("s3cret-token").run()
    assert not at.exception
    images = [n for n in _protos(at.sidebar) if getattr(n, "type", "") == "image"]
    assert images, "the viewers' QR code is on the presenter's page"
    assert any(SCENARIOS["bouncing"].hint in getattr(n, "value", "") for n in _protos(at.sidebar))


def test_latest_intervention_in_words(steered_run):
    from app.data.rundata import RunData

    view = RunData(steered_run.path, watch=False).view()
    assert projector.latest_intervention(view) == "learning rate ×0.1 at epoch 48 (0.003 → 0.0003)"
    steered_run.append_event("paused", epoch=50, step=1000)
    assert projector.latest_intervention(RunData(steered_run.path, watch=False).view()) == "paused at epoch 50"
