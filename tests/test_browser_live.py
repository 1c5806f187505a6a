"""The run page stays live and true while a real run trains, in headless Chromium, acted as a user would.

The Rewind list holds still while the run trains (open it, let epochs pass, pick an entry); Find α's
curve and a fork's candidates appear without a reload; after a rewind the cards show the epoch
rewound to, the dropped epochs are drawn as a faded abandoned branch, and the "drops" warning goes.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.serving.launch import start_run
from conftest_app import stop_launched, wait_until
from test_browser import CHROMIUM, CHROMIUM_ARGS, dashboard  # noqa: F401  (fixture)
from trainer.contract.config import TrainConfig
from trainer.contract.hparams import Hyperparameters
from trainer.contract.rundir import RunDir, read_jsonl

DOCS = Path(__file__).resolve().parent.parent / "docs"

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def paced(tmp_path):
    """A real trainer on digits at 1.5 s an epoch (as the issue saw it), keeping every 5th epoch's checkpoint."""
    config = TrainConfig(hparams=Hyperparameters(optimizer="momentum", lr=1e-2), epochs=400, pace=1.5,
                         checkpoint_every=5)
    launch = start_run(tmp_path, "live", config)
    run = RunDir(tmp_path / "live")
    yield run, launch
    stop_launched(run, launch)


def _epoch(run: RunDir) -> int:
    return (run.read_status() or {}).get("epoch") or 0


def _traces(page, key: str) -> list[dict]:
    """The names and x values of a chart's traces, as Plotly drew them."""
    return page.evaluate(
        """key => { const g = document.querySelector(`.st-key-${key} .js-plotly-plot`);
                    return g && g._fullData ? g._fullData.map(t => ({name: t.name, x: Array.from(t.x || [])})) : [] }""",
        key)


def _card(page, label: str):
    return page.locator('[data-testid="stMetric"]', has_text=label).locator('[data-testid="stMetricValue"]')


def _open_list(box, entry, tries: int = 3) -> None:
    """Open a select box until ``entry`` shows. Under heavy load (both cores busy) a click that lands while
    the page swaps in a rerun's elements is lost about once in twenty suite runs (the list never opens, as in
    a CI failure); a person clicks again, so does this, a bounded number of times. What the test asserts, that
    an *open* list stays open while the run trains, is checked after it opened."""
    from playwright.sync_api import expect

    for attempt in range(tries):
        box.click(timeout=120_000)
        try:
            expect(entry).to_be_visible(timeout=10_000)
            return
        except AssertionError:
            if attempt == tries - 1:
                raise


def test_rewind_list_holds_still_find_alpha_and_fork_appear_and_cards_follow_the_rewind(paced, dashboard, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    run, launch = paced
    assert wait_until(lambda: _epoch(run) >= 6, timeout=120), launch.log_tail()
    url = dashboard
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(url + "?run=live")
            sidebar = page.locator('[data-testid="stSidebar"]')
            expect(page.locator("h2", has_text="live")).to_contain_text("running", timeout=120_000)

            # 2. open the Rewind list while the run trains; it stays open while epochs pass
            box = page.locator(".st-key-rewind-live").get_by_role("combobox")
            expect(box).to_be_enabled(timeout=30_000)
            first = page.get_by_role("option", name=re.compile(r"^epoch 5 · ckpt-"))
            _open_list(box, first)
            opened_at = _epoch(run)
            assert wait_until(lambda: _epoch(run) >= opened_at + 6, timeout=60)  # a new kept checkpoint too
            assert first.is_visible(), "the open list closed by itself while the run trained"
            # only checkpoints that will still exist: every entry is a kept one (every 5th epoch or a command's)
            entries = page.get_by_role("option").all_inner_texts()
            assert entries and all(int(re.match(r"epoch (\d+)", e).group(1)) % 5 == 0 for e in entries), entries
            first.click()
            expect(box).to_have_value(re.compile(r"^epoch 5 · ckpt-"), timeout=10_000)
            chosen = box.input_value().split(" · ")[1]
            # the warning names the entry the box shows, and what it drops now
            warning = sidebar.get_by_text(re.compile(rf"Rewinding to epoch 5 · {chosen} drops epochs 6–\d+"))
            expect(warning).to_be_visible(timeout=10_000)

            # pause; 1. Find α: the curve and the Apply button appear without a reload
            page.locator(".st-key-pause button").click()
            assert wait_until(lambda: (run.read_status() or {}).get("state") == "paused", timeout=30)
            expect(box).to_have_value(f"epoch 5 · {chosen}", timeout=10_000)  # the user's pick stays
            page.locator(".st-key-find_lr").get_by_role("button", name="Find α").click()
            expect(page.locator(".st-key-lr-finder-live .js-plotly-plot")).to_be_visible(timeout=120_000)
            expect(page.locator(".st-key-apply_lr button")).to_contain_text("Apply α =", timeout=10_000)
            assert read_jsonl(run.path / "lr_finder.jsonl")

            # 3. rewind to epoch 5: the cards read epoch 5's record, the dropped epochs are an abandoned branch
            before = _epoch(run)
            expect(box).to_have_value(f"epoch 5 · {chosen}", timeout=10_000)  # the pick held through Find α
            page.locator(".st-key-rewind").get_by_role("button", name="Rewind").click()
            assert wait_until(lambda: _epoch(run) == 5, timeout=30), run.read_status()
            record = next(r for r in read_jsonl(run.metrics_path) if r["epoch"] == 5)
            expect(_card(page, "Epoch")).to_have_text("5/400", timeout=15_000)
            expect(_card(page, "Val loss")).to_have_text(f"{record['val_loss']:.4f}", timeout=10_000)
            expect(_card(page, "Val acc")).to_have_text(f"{record['val_accuracy']:.1%}")
            page.wait_for_function(
                """() => { const g = document.querySelector('.st-key-chart-loss .js-plotly-plot');
                           return g && g._fullData && g._fullData.some(t => t.name === 'abandoned branch') }""",
                timeout=15_000)
            traces = _traces(page, "chart-loss")
            live = [t for t in traces if t["name"] in ("train", "validation")]
            dropped = [t for t in traces if t["name"] == "abandoned branch"]
            assert max(max(t["x"]) for t in live) == 5
            assert max(max(t["x"]) for t in dropped) == before
            expect(sidebar.get_by_text(re.compile("drops epoch"))).to_have_count(0, timeout=10_000)
            page.screenshot(path=str(DOCS / "run-rewound.png"), timeout=120_000)  # what a rewind looks like
            # 1. (the fork panel) a fork asked for from a terminal, as `panda ctl` does: its candidates appear
            run.send_command("fork", {"candidates": [{"lr": 0.003}, {"lr": 0.03}], "steps": 20, "pick": "ask"},
                             source="test")
            expect(page.locator(".st-key-fork-live .js-plotly-plot")).to_be_visible(timeout=120_000)
            expect(sidebar.get_by_role("button", name="continue with this one")).to_have_count(2, timeout=10_000)

            assert not page.locator('[data-testid="stException"]').count()
        finally:
            browser.close()
