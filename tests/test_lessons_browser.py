"""The Lessons page of a live run in a real headless Chromium: the batch-norm and softmax panels follow the run."""

from __future__ import annotations

import re

import pytest

from app.serving.launch import start_run
from conftest_app import served_app, stop_launched, wait_until
from test_browser_pages import _overlaps
from test_browser import CHROMIUM, CHROMIUM_ARGS
from trainer.contract.config import TrainConfig
from trainer.contract.rundir import RunDir

pytestmark = pytest.mark.timeout(240)

#: The boxes of a chart's category labels, legend and subplot titles, and whether each lies inside the chart.
BOXES = """key => { const g = document.querySelector(`.st-key-${key} .js-plotly-plot`); if (!g) return null;
    const c = g.getBoundingClientRect();
    const box = (e, kind) => { const r = e.getBoundingClientRect();
        return {kind, x: r.left, y: r.top, r: r.right, b: r.bottom,
                inside: r.left >= c.left - 1 && r.right <= c.right + 1 && r.top >= c.top - 1 && r.bottom <= c.bottom + 1}; };
    return [...[...g.querySelectorAll('.xtick text')].map(e => box(e, 'label')),
            ...[...g.querySelectorAll('.legend .traces')].map(e => box(e, 'legend')),
            ...[...g.querySelectorAll('.annotation-text, .gtitle')].map(e => box(e, 'title'))]
        .filter(b => b.r > b.x); }"""


@pytest.fixture
def live_lessons(tmp_path):
    """A paced digits run recording internals, and ``panda app`` on localhost."""
    launch = start_run(tmp_path, "live", TrainConfig(epochs=500, pace=0.5))
    run = RunDir(tmp_path / "live")
    with served_app(tmp_path) as url:
        yield run, f"{url}lessons?run=live"
    stop_launched(run, launch)


def _measured_epoch(page) -> int:
    text = page.locator(".st-key-lesson-live").inner_text()
    found = re.search(r"Measured on the probe at epoch (\d+)", text)
    return int(found.group(1)) if found else 0


def test_the_lessons_page_follows_a_live_run(live_lessons):
    from playwright.sync_api import expect, sync_playwright

    run, url = live_lessons
    assert wait_until(lambda: run.exists() and len(run.read_internals()) >= 2, timeout=120)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url)
            live = page.locator(".st-key-lesson-live")
            expect(live.get_by_text("Measured on the probe at epoch")).to_be_visible(timeout=60_000)
            expect(live.get_by_role("heading", name="Batch normalization")).to_be_visible()
            expect(live.get_by_role("heading", name="Softmax classification")).to_be_visible()
            page.wait_for_function("() => document.querySelectorAll('.st-key-lesson-live .js-plotly-plot').length >= 4",
                                   timeout=30_000)  # z histograms, BN modes, softmax pictures, confusion
            for key in ("lesson-beta", "lesson-alpha", "lesson-bn"):  # nothing overlaps, nothing is cut off
                boxes = page.evaluate(BOXES, key)
                assert boxes and all(b["inside"] for b in boxes), (key, [b for b in boxes if not b["inside"]])
                assert not _overlaps(boxes), (key, _overlaps(boxes))
            first = _measured_epoch(page)
            assert first >= 1
            page.wait_for_function(  # the panels follow the run without a reload
                f"() => {{ const m = document.body.innerText.match(/Measured on the probe at epoch (\\d+)/);"
                f" return m && Number(m[1]) > {first}; }}", timeout=90_000)
            assert _measured_epoch(page) > first
            assert not page.locator('[data-testid="stException"]').count()
        finally:
            browser.close()
