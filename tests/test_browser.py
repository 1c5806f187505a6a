"""End to end in a real browser: a real trainer, the real ``panda app``, headless Chromium.

Watch the loss chart grow, click Pause and see the trainer's status become paused, cut the
learning rate and see the trainer apply it, resume. On success the page is saved as
``docs/dashboard.png`` (the README's screenshot).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.serving.launch import start_run
from trainer.contract.config import TrainConfig
from conftest_app import free_port, interrupt, stop_launched, wait_until
from trainer.contract.hparams import Hyperparameters
from trainer.contract.rundir import RunDir

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "dashboard.png"

pytestmark = pytest.mark.timeout(150)


def _points(page, key: str) -> int:
    return page.evaluate(
        """key => { const g = document.querySelector(`.st-key-${key} .js-plotly-plot`);
                    return g && g._fullData && g._fullData.length ? g._fullData[0].x.length : 0 }""", key)


@pytest.fixture
def trainer(tmp_path):
    """A real trainer on digits, paced so the page can be watched, started as the app would."""
    launch = start_run(tmp_path, "live", TrainConfig(hparams=Hyperparameters(optimizer="momentum", lr=1e-2), epochs=500, pace=0.4))
    run = RunDir(tmp_path / "live")
    yield run, launch
    stop_launched(run, launch)


@pytest.fixture
def dashboard(tmp_path):
    """``panda app`` serving ``tmp_path`` on a free port."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "app.serving.panda_cli", "app", "--run-dir", str(tmp_path), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,  # any folder works
    )
    url = None
    for line in process.stdout:
        if line.strip().startswith("http://"):
            url = line.strip()
            break
    assert url == f"http://127.0.0.1:{port}/", f"panda app printed no URL (exit {process.poll()})"
    yield url
    interrupt(process)


def test_watch_pause_and_steer_a_real_run_in_chromium(trainer, dashboard, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    run, launch = trainer
    assert wait_until(lambda: (run.read_status() or {}).get("state") == "running", timeout=60), launch.log_tail()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1250})
            page.goto(dashboard)
            sidebar = page.locator('[data-testid="stSidebar"]')
            expect(page.locator("h2", has_text="live")).to_contain_text("running", timeout=30_000)
            page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 4", timeout=30_000)

            # the chart grows by itself, without a reload
            page.wait_for_function("() => { const g = document.querySelector('.st-key-chart-loss .js-plotly-plot');"
                                   " return g && g._fullData && g._fullData.length && g._fullData[0].x.length >= 2 }", timeout=30_000)
            before = _points(page, "chart-loss")
            page.wait_for_function(
                f"() => document.querySelector('.st-key-chart-loss .js-plotly-plot')._fullData[0].x.length >= {before + 2}",
                timeout=20_000)

            # Pause: the trainer's own status says paused, and the page says the command was applied
            page.locator(".st-key-pause button").click()
            assert wait_until(lambda: (run.read_status() or {}).get("state") == "paused", timeout=20)
            expect(sidebar.get_by_text("pause: applied at epoch")).to_be_visible(timeout=10_000)
            expect(page.locator(".st-key-resume button")).to_be_enabled(timeout=10_000)
            paused_at = run.read_status()["epoch"]

            # cut the learning rate ten-fold: applied at once while paused
            page.locator(".st-key-scale_lr-0-1 button").click()
            expect(sidebar.get_by_text("learning rate ×0.1 → 0.001: applied at epoch")).to_be_visible(timeout=10_000)
            assert run.read_status()["hparams"]["lr"] == pytest.approx(1e-3)
            expect(page.locator('[data-testid="stMetric"]', has_text="Learning rate α")).to_contain_text("0.001",
                                                                                                     timeout=10_000)
            assert run.read_status()["epoch"] == paused_at  # still paused: no epoch went by

            # resume: training continues with the new rate, and the chart keeps growing
            page.locator(".st-key-resume button").click()
            assert wait_until(lambda: (run.read_status() or {}).get("epoch", 0) >= paused_at + 3, timeout=30)
            assert run.read_metrics()[-1]["lr"] == pytest.approx(1e-3)
            expect(sidebar.get_by_text("resume: applied at epoch")).to_be_visible(timeout=10_000)
            page.wait_for_function(
                f"() => document.querySelector('.st-key-chart-loss .js-plotly-plot')._fullData[0].x.length >= {paused_at + 3}",
                timeout=20_000)
            # the interventions are on the chart: the pause, the new rate and the resume (one epoch: one marker)
            hovers = page.evaluate("() => document.querySelector('.st-key-chart-loss .js-plotly-plot')._fullData"
                                   ".filter(t => t.mode === 'markers').flatMap(t => t.hovertext)")
            assert any(all(w in h for w in ("paused", "learning rate", "resumed")) for h in hovers), hovers
            assert not page.locator('[data-testid="stException"]').count()
            expect(page.locator('[data-testid="stToast"]')).to_have_count(0, timeout=15_000)  # a clean picture
            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot))
        finally:
            browser.close()
    SCREENSHOT.parent.mkdir(exist_ok=True)
    shutil.copyfile(shot, SCREENSHOT)
    assert SCREENSHOT.stat().st_size > 50_000
