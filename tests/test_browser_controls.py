"""The Steer panel in a real browser: controls that follow the run, the rewind list, a run started from the page.

Reuses ``test_browser``'s fixtures: a real paced trainer (``live``, momentum, α = 0.01) and the real
``panda app`` in headless Chromium.
"""

from __future__ import annotations

import re

import pytest

from conftest_app import wait_until
from test_browser import CHROMIUM, CHROMIUM_ARGS, dashboard, trainer  # noqa: F401  (fixtures)
from trainer.contract.rundir import LIVE_STATES, RunDir

pytestmark = pytest.mark.timeout(240)


def _stop(run: RunDir) -> None:
    """Stop a trainer the page started (it runs in its own session and outlives the app)."""
    if run.exists() and run.liveness() in LIVE_STATES:
        run.send_command("stop", source="test")
        wait_until(lambda: run.liveness() not in LIVE_STATES, timeout=60)


def test_controls_follow_the_run_and_a_run_started_here_can_be_steered(trainer, dashboard, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    run, launch = trainer
    second = RunDir(tmp_path / "second")
    assert wait_until(lambda: (run.read_status() or {}).get("epoch", 0) >= 3, timeout=90), launch.log_tail()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1250})
            page.goto(dashboard + "?run=live")
            sidebar = page.locator('[data-testid="stSidebar"]')
            expect(page.locator("h2", has_text="live")).to_contain_text("running", timeout=30_000)
            rewind = page.locator(".st-key-rewind-live")
            expect(rewind.get_by_role("combobox")).to_have_value(re.compile(r"^epoch \d+ · ckpt-"), timeout=30_000)
            shown = rewind.get_by_role("combobox").input_value()
            page.locator(".st-key-pause button").click()
            assert wait_until(lambda: (run.read_status() or {}).get("state") == "paused", timeout=20)

            # rewind: pausing never moves the box (the user may be about to use it); its list now
            # offers every checkpoint, the newest first; an older one says what it drops
            expect(page.locator(".st-key-resume button")).to_be_enabled(timeout=15_000)  # the page shows the pause
            newest = run.list_checkpoints()[-1]
            rewind.get_by_role("combobox").click()
            expect(page.get_by_role("option").first).to_have_text(f"epoch {newest['epoch']} · {newest['name']}",
                                                                  timeout=10_000)
            expect(rewind.get_by_role("combobox")).to_have_value(shown)
            older = run.list_checkpoints()[-3]
            page.get_by_role("option", name=f"epoch {older['epoch']} · {older['name']}").click()
            done = run.read_status()["epoch"]
            expect(sidebar.get_by_text(f"drops epochs {older['epoch'] + 1}–{done}")).to_be_visible(timeout=10_000)

            # ×2: once the trainer applied it, the slider shows 0.02, and Set α sends exactly that
            lr_value = page.locator('.st-key-lr-live [data-testid="stSliderThumbValue"]')
            expect(lr_value).to_have_text("0.01", timeout=10_000)
            page.locator(".st-key-scale_lr-2 button").click()
            expect(sidebar.get_by_text("learning rate ×2 → 0.02: applied at epoch")).to_be_visible(timeout=15_000)
            expect(lr_value).to_have_text("0.02", timeout=10_000)
            before = len(run.read_commands())
            page.locator(".st-key-set_lr button").click()
            assert wait_until(lambda: len(run.read_commands()) > before, timeout=10)
            assert (run.read_commands()[-1]["cmd"], run.read_commands()[-1]["value"]) == ("set_lr", 0.02)

            # start a second run from the sidebar: the address and the Steer panel follow it
            sidebar.get_by_text("Start a new run").click()
            page.locator(".st-key-sidebar-new-name input").fill("second")
            # Under heavy load (the two cores busy with other work) a click on the form's button was lost
            # about once in five: the server never ran the script with the submit (a known flake, in the
            # closing note). A person would click again; so does the test, once, after checking that the
            # lost click started nothing.
            start = sidebar.get_by_role("button", name="Start the run")
            start.click()
            try:
                page.wait_for_url(re.compile(r"[?&]run=second\b"), timeout=15_000)
            except Exception:
                assert not second.path.exists(), "the first click started the run but the page did not follow"
                start.click()
                page.wait_for_url(re.compile(r"[?&]run=second\b"), timeout=15_000)
            expect(page.locator("h2", has_text="second")).to_contain_text("running", timeout=120_000)
            expect(page.locator(".st-key-pause button")).to_be_enabled(timeout=15_000)
            expect(page.locator(".st-key-lr-second")).to_be_visible()
            expect(page.locator(".st-key-rewind-second")).to_be_visible(timeout=15_000)
            page.locator(".st-key-pause button").click()
            assert wait_until(lambda: (second.read_status() or {}).get("state") == "paused", timeout=20)
            assert second.read_commands()[-1]["cmd"] == "pause"
            page.reload()
            expect(page.locator("h2", has_text="second")).to_be_visible(timeout=30_000)
            assert not page.locator('[data-testid="stException"]').count()
        finally:
            browser.close()
            _stop(second)
