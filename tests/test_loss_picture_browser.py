"""What the room sees of each ``panda demo`` scenario, at 1280×720 in headless Chromium.

Each scenario is trained briefly on digits (pace 0), then its loss and mini-batch charts are read
from the rendered page — Plotly's own layout and traces, on the viewers' projector page and on
the presenter's run page — and the point the scenario's hint names must be visible: the bounce
spans a fifth of the axis (the first epoch's val. loss of ~70 no longer flattens it), the plateau
is a flat line in view, the divergence marker and the curve after the rollback are in range, a
healthy run falls. A point above the range is never silently cut: a marker on the top edge says so.
"""

from __future__ import annotations

import pytest

from app.serving.scenarios import SCENARIOS
from conftest import wait_for
from conftest_app import served_app, wait_until
from test_browser import CHROMIUM, CHROMIUM_ARGS
from test_browser_pages import _up

pytestmark = pytest.mark.timeout(400)
TOKEN = "picture-token"
EPOCHS = {"healthy": 6, "bouncing": 12, "plateau": 6, "diverge": 6}

#: A chart's y axis (type, range as drawn), x range and traces, from the page's Plotly element.
FIGURE = """sel => { const g = document.querySelector(sel + ' .js-plotly-plot');
    if (!g || !g._fullLayout || !g._fullData) return null;
    return {rev: String(g._fullLayout.uirevision), type: g._fullLayout.yaxis.type, range: g._fullLayout.yaxis.range, xrange: g._fullLayout.xaxis.range,
            traces: g._fullData.map(t => ({name: t.name, x: Array.from(t.x || []).map(Number),
                                           y: Array.from(t.y || []).map(Number), axis: t.yaxis,
                                           hover: [].concat(t.hovertext || []).map(String)}))}; }"""


def _name(scenario: str) -> str:
    return f"demo-{scenario}-20250101-120000"


def _train_all(start_trainer) -> None:
    runs = {s: start_trainer(_name(s), epochs=n, **SCENARIOS[s].hparams) for s, n in EPOCHS.items()}
    diverge = runs["diverge"]
    wait_for(lambda: (diverge.run.read_status() or {}).get("state") == "diverged", diverge.run.path, timeout=120,
             what="the divergence guard")
    assert diverge.send("scale_lr", 0.01)["event"] == "applied"  # the hint's fix, then Resume
    assert diverge.send("resume")["event"] == "applied"
    for run in runs.values():
        assert run.join(180) == "finished"


def _curve(figure: dict, names: tuple[str, ...]) -> list[tuple[float, float]]:
    return [(x, y) for t in figure["traces"] if t["name"] in names and t["axis"] == "y" for x, y in zip(t["x"], t["y"])]


def _check(scenario: str, figure: dict, names: tuple[str, ...], where: str) -> None:
    """The scenario's point is visible on this chart; every point above the range is marked."""
    assert figure["type"] == "linear", where
    low, high = figure["range"]
    height = high - low
    points = _curve(figure, names)
    assert points, where
    first, last = min(x for x, _ in points), max(x for x, _ in points)
    recent = [y for x, y in points if x > first + 0.25 * (last - first)]  # after the first quarter
    assert all(low <= y <= high for y in recent), (where, figure["range"], recent)  # the recent curve is in view
    marked = {round(x, 6) for t in figure["traces"] if t["name"] == "above the chart" for x in t["x"]}
    above = [(x, y) for x, y in points if y > high]
    assert all(round(x, 6) in marked for x, _ in above), (where, above, marked)  # nothing cut off unmarked
    span = (max(recent) - min(recent)) / height
    if scenario == "bouncing":
        assert span >= 0.2, (where, span, figure["range"])  # the bounce fills a fifth of the axis at least
        assert above or max(y for _, y in points) <= high  # the first epoch's ~70 is marked, not the scale
    elif scenario == "plateau":
        assert span < 0.25 and min(recent) > 0.5 * high, (where, span, figure["range"])  # flat, high, in view
    elif scenario == "healthy":
        assert span >= 0.2 and points[-1][1] < points[0][1], (where, span)  # it falls, visibly
    else:  # diverge: the divergence and the run after its rollback
        marker = [x for t in figure["traces"] for x, hover in zip(t["x"], t["hover"]) if "<b>diverged</b>" in hover]
        assert marker and figure["xrange"][0] <= marker[0] <= figure["xrange"][1], (where, marker, figure["xrange"])
        assert span >= 0.2, (where, span)


def _read(page, selector: str, run: str) -> dict:
    """The chart once it shows ``run`` (its ``uirevision`` names the run) with data in it."""
    page.wait_for_function(f"() => {{ const f = ({FIGURE})({selector!r}); "
                           f"return f && f.rev.includes({run!r}) && f.traces.some(t => t.y.length); }}", timeout=60_000)
    return page.evaluate(FIGURE, selector)


def test_every_scenario_shows_its_point_on_the_projector_and_the_run_page(start_trainer, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    _train_all(start_trainer)
    with served_app(tmp_path, token=TOKEN) as url, sync_playwright() as p:
        assert wait_until(lambda: _up(url), timeout=60)
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            viewer = browser.new_context(viewport={"width": 1280, "height": 720}).new_page()
            presenter = browser.new_context(viewport={"width": 1280, "height": 720}).new_page()
            presenter.goto(url + "?presenter")
            token = presenter.get_by_role("textbox", name="Presenter token")
            token.fill(TOKEN)
            token.press("Enter")
            presenter.wait_for_function("() => document.cookie.includes('panda_presenter=')", timeout=30_000)
            for scenario in EPOCHS:
                viewer.goto(url + f"?run={_name(scenario)}")
                expect(viewer.get_by_test_id("panda-banner")).to_contain_text(_name(scenario), timeout=60_000)
                presenter.goto(url + f"?run={_name(scenario)}")
                for page, prefix in ((viewer, ".st-key-proj-"), (presenter, ".st-key-chart-")):
                    name = _name(scenario)
                    _check(scenario, _read(page, prefix + "loss", name), ("train", "validation"), f"{name} {prefix}loss")
                    _check(scenario, _read(page, prefix + "batch", name), ("batch loss", "smoothed"),
                           f"{name} {prefix}batch")
        finally:
            browser.close()
