"""The autopilot on the page in a real headless Chromium: the decisions' markers drawn on the loss and α
charts, the Autopilot panel's lookahead (each candidate's curve, its dashed fit, its prediction), and Veto."""

from __future__ import annotations

import time

import pytest

from conftest_app import served_app, wait_until
from test_app_autopilot import CANDIDATES, autopilot_run
from test_browser import CHROMIUM, CHROMIUM_ARGS
from test_browser_pages import _up as up

pytestmark = pytest.mark.timeout(180)

#: Per chart on the page: its title, and per trace drawn in it, its name, mode, dash and how many points it drew.
DRAWN_JS = """() => [...document.querySelectorAll('.js-plotly-plot')].map(g => ({
    title: ((g.layout.title || {}).text || '').replace(/<[^>]*>/g, ''),
    traces: [...g.querySelectorAll('.scatterlayer .trace')].map(t => {
        const trace = t.__data__[0].trace;
        const line = t.querySelector('.js-line');
        return {name: trace.name, mode: trace.mode, points: t.querySelectorAll('.point').length,
                dashed: !!line && (line.style.strokeDasharray || 'none') !== 'none',
                drawn: !!line && (line.getAttribute('d') || '').length > 10};
    }),
}))"""


def test_the_decisions_markers_and_the_lookaheads_curves_are_drawn(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    run = autopilot_run(tmp_path, heartbeat=time.time() + 3600)  # the trainer "answers" for the whole test
    with served_app(tmp_path) as url, sync_playwright() as p:  # no token, on localhost: the presenter's page
        assert wait_until(lambda: up(url), timeout=60)
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            page.goto(url + "?run=demo")
            expect(page.get_by_text("Autopilot: 2 decisions")).to_be_visible(timeout=60_000)
            page.wait_for_function("() => [...document.querySelectorAll('.js-plotly-plot')].some(g => "
                                   "((g.layout.title || {}).text || '').includes('Autopilot stage 2'))", timeout=30_000)
            expect(page.get_by_role("button", name="Veto stage 2")).to_be_enabled()
            charts = {c["title"]: c["traces"] for c in page.evaluate(DRAWN_JS)}
            for title in ("Loss", "Learning rate α"):
                assert [t["points"] for t in charts[title] if t["name"] == "autopilot"] == [2], title
            lookahead = next(traces for title, traces in charts.items() if title.startswith("Autopilot stage 2"))
            curves = [t for t in lookahead if t["mode"] == "lines" and not t["dashed"]]
            fits = [t for t in lookahead if t["dashed"]]
            predictions = [t for t in lookahead if t["mode"] == "markers"]
            assert len(curves) == len(fits) == len(CANDIDATES) and all(t["drawn"] for t in curves + fits)
            assert [t["points"] for t in predictions] == [1] * len(CANDIDATES)
            page.get_by_role("button", name="Veto stage 2").click()  # the presenter vetoes: one command, stage 2
            assert wait_until(lambda: [(c["cmd"], c.get("value")) for c in run.read_commands()] == [("veto", 2)],
                              timeout=30)
        finally:
            browser.close()
