"""What a user reads on the pages, in headless Chromium at a projector's, two laptops' and a phone's width.

No card is cut short ("0.000…", "107 / …"), a sweep's integer histogram counts every trial, and
browser Back after "Babysit this trial" returns to the same sweep. The pages are saved as small
screenshots in ``docs/`` (``docs/run-<width>.png``, ``docs/sweeps-<width>.png``), so a glance shows
what a user sees.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from conftest_app import make_run, served_app, wait_until
from test_browser import CHROMIUM, CHROMIUM_ARGS
from test_search_page import make_sweep

DOCS = Path(__file__).resolve().parent.parent / "docs"
#: (width, height): a projector, two laptops, a phone
SIZES = ((1920, 1080), (1400, 900), (1280, 720), (390, 844))

pytestmark = pytest.mark.timeout(600)

#: Any element inside a card whose text is wider than its box (cut off, or ended with "…").
CUT = """() => Array.from(document.querySelectorAll('[data-testid="stMetric"] *'))
    .filter(e => e.textContent.trim() && e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 1)
    .map(e => e.textContent.trim())"""


#: The sweep page's four histograms (lr, beta, units, optimizer), one chart each.
HISTS = '[class*="st-key-sweep-hist-s1-"] .js-plotly-plot'
COUNTS = f"""() => Object.fromEntries(Array.from(document.querySelectorAll({HISTS!r}))
    .map(g => [g.closest('[class*="st-key-sweep-hist-s1-"]').className.match(/st-key-sweep-hist-s1-(\\w+)/)[1],
               g._fullData.reduce((n, t) => n + Array.from(t.y).reduce((a, b) => a + b, 0), 0)]))"""
#: The box of every chart title, axis title, subplot title (an annotation) and parallel-coordinates axis name.
TITLES = """() => Array.from(document.querySelectorAll('.js-plotly-plot :is(.gtitle, .xtitle, .annotation-text, .axis-title)'))
    .map(e => [e.getBoundingClientRect(), e.closest('.js-plotly-plot').getBoundingClientRect()])
    .filter(([r]) => r.width > 0)
    .map(([r, g]) => ({x: r.left, y: r.top, r: r.right, b: r.bottom, inside: r.left >= g.left - 1 && r.right <= g.right + 1}))"""


def _overlaps(boxes: list[dict]) -> list[tuple[dict, dict]]:
    """The pairs of boxes that share pixels."""
    return [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:]
            if a["x"] < b["r"] - 1 and b["x"] < a["r"] - 1 and a["y"] < b["b"] - 1 and b["y"] < a["b"] - 1]


def _up(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url + "_stcore/health", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def _shot(page, name: str) -> None:
    """A small screenshot for docs/: the top of the page, at a scale that keeps the file small."""
    page.screenshot(path=str(DOCS / name), scale="css", type="png", animations="disabled", timeout=120_000)


def test_cards_never_truncate_at_any_width(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    # α just lowered below 1e-3, a three-digit epoch, paused: what the issue saw cut short
    make_run(tmp_path, "steered", epochs_done=107, epochs=300, state="paused", hparams={"lr": 1.5e-4},
             heartbeat=time.time() + 3600)  # the trainer "answers" for the whole test
    with served_app(tmp_path) as url, sync_playwright() as p:
        assert wait_until(lambda: _up(url), timeout=60)
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for width, height in SIZES:
                page = browser.new_page(viewport={"width": width, "height": height})
                page.goto(url + "?run=steered")
                cards = page.locator('[data-testid="stMetric"]')
                expect(cards).to_have_count(5, timeout=120_000)
                expect(cards.filter(has_text="Epoch")).to_contain_text("107/300")
                expect(cards.filter(has_text="Learning rate α")).to_contain_text("1.5e-4")
                expect(cards.filter(has_text="ETA")).to_contain_text("paused")
                page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 4", timeout=120_000)
                assert page.evaluate(CUT) == [], f"cut short at {width} px"
                if width < 640:  # a phone: the cards go two to a row, not five screens of them
                    tops = {round(b["y"]) for b in (cards.nth(i).bounding_box() for i in range(5))}
                    assert len(tops) == 3, tops
                _shot(page, f"run-{width}.png")
                page.close()
        finally:
            browser.close()


def test_back_after_babysit_returns_to_the_same_sweep_and_histograms_count_every_trial(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    for name in ("s1", "s2", "s3"):
        make_sweep(tmp_path, n=6, epochs=2, name=name)
    with served_app(tmp_path) as url, sync_playwright() as p:
        assert wait_until(lambda: _up(url), timeout=60)
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for width, height in SIZES:
                page = browser.new_page(viewport={"width": width, "height": height})
                page.goto(url + "sweeps?sweep=s1")
                expect(page.get_by_role("heading", name="Sweep s1")).to_be_visible(timeout=120_000)
                page.locator(".st-key-sweep-hist-s1-optimizer").scroll_into_view_if_needed(timeout=120_000)  # as a reader scrolls
                page.wait_for_function(f"() => document.querySelectorAll({HISTS!r}).length == 4", timeout=120_000)
                # the units histogram (an integer parameter) counts all six trials, as lr's does
                counts = page.evaluate(COUNTS)
                assert counts["lr"] == counts["units"] == 6, counts
                # every histogram's title stands alone (never merged with its neighbour's), and no Plotly
                # toolbar lies over any title of the page
                page.wait_for_function(  # all seven charts drawn, each with its title
                    "() => document.querySelectorAll('.js-plotly-plot .gtitle').length >= 7", timeout=60_000)
                boxes = page.evaluate(TITLES)
                assert len(boxes) >= 7 and not _overlaps(boxes), (width, boxes)
                assert all(b["inside"] for b in boxes), (width, [b for b in boxes if not b["inside"]])  # none cut off
                assert page.locator(".modebar").count() == 0
                assert page.evaluate(CUT) == [], f"a card cut short at {width} px"
                ticks = page.evaluate("() => Array.from(document.querySelectorAll("
                                      "'.st-key-sweep-curves-s1 .xtick text')).map(t => t.textContent)")
                assert ticks == ["1", "2"], ticks  # a 2-epoch sweep: whole epochs only
                page.get_by_role("heading", name="Sweep s1").scroll_into_view_if_needed()  # the top, as opened
                _shot(page, f"sweeps-{width}.png")
                if width != 1400:
                    page.close()
                    continue
                # Babysit this trial, then the browser's Back: the same sweep, s1
                page.get_by_role("button", name="Babysit this trial").click()
                page.wait_for_url(re.compile(r"[?&]run=s1(/|%2F)trial-"), timeout=60_000)
                expect(page.locator("h2", has_text="trial-")).to_be_visible(timeout=120_000)
                page.go_back()
                expect(page.get_by_role("heading", name="Sweep s1")).to_be_visible(timeout=120_000)
                assert "sweep=s1" in page.url, page.url
                expect(page.get_by_role("heading", name="Sweep s3")).to_have_count(0)
                page.close()
        finally:
            browser.close()
