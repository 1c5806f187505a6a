"""The viewers' page in a real headless Chromium: a projector at 1280×720, a laptop at 800 px, a phone at 390 px.

On success the 1280×720 page is saved as ``docs/projector.png`` (the README's screenshot).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.serving.launch import start_run
from app.serving.scenarios import SCENARIOS
from conftest_app import served_app, stop_launched, wait_until
from test_browser import CHROMIUM, CHROMIUM_ARGS
from trainer.contract.rundir import RunDir

SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "projector.png"
NAME = "demo-bouncing-20250101-120000"

pytestmark = pytest.mark.timeout(180)

#: Per chart: its box, and the smallest tick label font (px) in it.
CHARTS_JS = """() => [...document.querySelectorAll('.js-plotly-plot')].map(g => {
    const r = g.getBoundingClientRect();
    const sizes = [...g.querySelectorAll('.xtick text, .ytick text')].map(t => parseFloat(getComputedStyle(t).fontSize));
    return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, tick: Math.min(...sizes), ticks: sizes.length};
})"""


@pytest.fixture
def room(tmp_path):
    """A paced bouncing demo run and ``panda app`` with a presenter token: a browser without it is a viewer."""
    config = SCENARIOS["bouncing"].config(epochs=500, pace=0.4)
    launch = start_run(tmp_path, NAME, config)
    run = RunDir(tmp_path / NAME)
    with served_app(tmp_path, token="s3cret-token") as url:
        yield run, url
    stop_launched(run, launch)


def test_the_projected_page_fits_a_projector_a_laptop_and_a_phone(room, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    run, url = room
    assert wait_until(lambda: len(run.read_metrics()) >= 3 if run.exists() else False, timeout=90)
    run.send_command("scale_lr", 0.1, source="test")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.goto(url)
            expect(page.get_by_test_id("panda-banner")).to_contain_text("running", timeout=60_000)
            expect(page.get_by_test_id("panda-latest")).to_contain_text("learning rate ×0.1 at epoch", timeout=30_000)
            page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot .xtick text').length >= 8",
                                   timeout=30_000)
            assert not page.locator('[data-testid="stSidebar"]').is_visible()
            assert page.locator("input").count() == 0 and page.locator("button:visible").count() == 0
            assert str(run.path) not in page.inner_text("body")
            for width, height in ((1280, 720), (800, 900), (390, 844)):
                page.set_viewport_size({"width": width, "height": height})
                # Plotly re-lays out to the new width (or the test fails here). The charts are measured in the
                # same call: between a wait and a later evaluate, the 1 s live fragment may be swapping its
                # elements (CI once measured none at all; an empty list also passed the old every() wait).
                charts = page.wait_for_function(
                    f"() => {{ const c = ({CHARTS_JS})(); return c.length === 4 && c.every(g => g.right <= {width}) && c; }}",
                    timeout=10_000).json_value()
                assert page.evaluate("() => document.documentElement.scrollWidth") <= width, f"scrolls sideways at {width}"
                assert len(charts) == 4
                for c in charts:
                    assert c["ticks"] and c["tick"] >= 16, (width, c)
                    assert 0 <= c["left"] and c["right"] <= width, (width, c)  # nothing cut off
                for i, a in enumerate(charts):  # nothing overlaps
                    for b in charts[i + 1:]:
                        assert a["right"] <= b["left"] or b["right"] <= a["left"] or a["bottom"] <= b["top"] \
                            or b["bottom"] <= a["top"], (width, a, b)
                banner = page.get_by_test_id("panda-banner").bounding_box()
                assert banner["x"] >= 0 and banner["x"] + banner["width"] <= width
                if width == 1280:
                    assert max(c["bottom"] for c in charts) <= height, "the four charts fit without scrolling"
                    assert page.evaluate("() => document.documentElement.scrollHeight") <= height + 2
                    page.screenshot(path=str(tmp_path / "projector.png"))
                page.screenshot(path=str(tmp_path / f"projector-{width}.png"), full_page=True)
        finally:
            browser.close()
    SCREENSHOT.parent.mkdir(exist_ok=True)
    shutil.copyfile(tmp_path / "projector.png", SCREENSHOT)
    for width in (800, 390):
        shutil.copyfile(tmp_path / f"projector-{width}.png", Path("/tmp") / f"projector-{width}.png")
    assert SCREENSHOT.stat().st_size > 30_000


def test_a_presenter_who_reloads_stays_the_presenter_and_a_new_browser_is_a_viewer(room):
    from playwright.sync_api import expect, sync_playwright

    run, url = room
    assert wait_until(lambda: run.exists() and len(run.read_metrics()) >= 1, timeout=90)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            presenter = browser.new_context(viewport={"width": 1280, "height": 900})
            page = presenter.new_page()
            page.goto(url + "?presenter")
            token = page.get_by_role("textbox", name="Presenter token")
            token.fill("s3cret-token")
            token.press("Enter")
            steer = page.get_by_role("button", name="Pause", disabled=False).first  # only a presenter has it
            expect(steer).to_be_visible(timeout=30_000)
            page.wait_for_function("() => document.cookie.includes('panda_presenter=')", timeout=15_000)
            assert "s3cret-token" not in page.evaluate("() => document.cookie")  # a key, never the token
            page.reload()
            expect(page.get_by_role("button", name="Pause", disabled=False).first).to_be_visible(timeout=30_000)
            assert "s3cret-token" not in page.inner_text("body")
            viewer = browser.new_context(viewport={"width": 1280, "height": 720}).new_page()
            viewer.goto(url)
            expect(viewer.get_by_test_id("panda-banner")).to_be_visible(timeout=60_000)
            assert viewer.locator(".st-key-pause button").count() == 0
        finally:
            browser.close()
