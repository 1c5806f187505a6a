"""Follow the presenter, with real browser sessions (a presenter and two viewers) against ``panda app``.

The presenter opens the Lessons page, a sweep, then a run; a viewer on the projector page goes
along each time. A viewer who opted out (``?follow=off``) stays, and a viewer's own moves never
move anyone (only a presenter session writes where the room should be).
"""

from __future__ import annotations

import re

import pytest

from app.serving import follow
from app.serving.auth import Access
from conftest_app import make_run, served_app, wait_until
from test_browser import CHROMIUM, CHROMIUM_ARGS
from test_browser_pages import _up
from test_search_page import make_sweep

pytestmark = pytest.mark.timeout(300)
TOKEN = "follow-token"


def test_place_keeps_only_what_a_page_shows_and_only_a_presenter_in_a_room_writes_it():
    place = follow.place_of("lessons", {"run": "a", "code": "secret", "token": "t", "sweep": "s1"})
    assert place == follow.Place("lessons", (("run", "a"), ("sweep", "s1")))
    assert place.url() == "./lessons?run=a&sweep=s1" and place.url("on") == "./lessons?run=a&sweep=s1&follow=on"
    assert follow.place_of("", {}).url() == "./" and follow.place_of("settings", {}) is None
    assert follow.place_of("run", {"run": "x" * 301}) == follow.Place("")
    room, local = Access("t", present=True), Access(None)
    assert follow.is_presenter(room, True) and not follow.is_presenter(room, False)
    assert not follow.is_presenter(local, True)  # on localhost everyone steers: no one leads
    assert follow.follows(room, False, {}) and not follow.follows(room, False, {"follow": "off"})
    assert not follow.follows(room, True, {}) and not follow.follows(Access("t"), False, {})
    assert follow.follows(Access("t"), False, {"follow": "on"})
    script = follow.navigate_script("./?run=</script><script>alert(1)")
    assert "</script><script>alert" not in script and script.count("<script>") == 1


def test_viewers_follow_the_presenter_to_lessons_a_sweep_and_back_to_a_run(tmp_path):
    # served without --present, so the follower asks (?follow=on); with --present it is the default (above)
    from playwright.sync_api import expect, sync_playwright

    make_run(tmp_path, "r1", epochs_done=5, epochs=30, state="running")
    make_run(tmp_path, "r2", epochs_done=8, epochs=30, state="finished")
    make_sweep(tmp_path, n=4, epochs=2, name="s1")
    with served_app(tmp_path, token=TOKEN) as url, sync_playwright() as p:
        assert wait_until(lambda: _up(url), timeout=60)
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            presenter = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
            presenter.goto(url + "?presenter")
            token = presenter.get_by_role("textbox", name="Presenter token")
            token.fill(TOKEN)
            token.press("Enter")
            presenter.wait_for_function("() => document.cookie.includes('panda_presenter=')", timeout=30_000)
            viewer = browser.new_context(viewport={"width": 1280, "height": 720}).new_page()
            viewer.goto(url + "?follow=on")
            expect(viewer.get_by_test_id("panda-banner")).to_be_visible(timeout=60_000)
            stayer = browser.new_context(viewport={"width": 1280, "height": 720}).new_page()
            stayer.goto(url + "?follow=off")
            expect(stayer.get_by_test_id("panda-banner")).to_be_visible(timeout=60_000)

            presenter.goto(url + "lessons?run=r2")
            expect(presenter.get_by_role("heading", name="Lessons")).to_be_visible(timeout=60_000)
            viewer.wait_for_url(re.compile(r"/lessons\?run=r2&follow=on$"), timeout=30_000)
            expect(viewer.get_by_role("heading", name="Lessons")).to_be_visible(timeout=60_000)
            assert stayer.url.endswith("/?follow=off")  # the viewer who opted out stays on the projector page

            presenter.goto(url + "sweeps?sweep=s1")
            viewer.wait_for_url(re.compile(r"/sweeps\?sweep=s1&follow=on$"), timeout=30_000)

            presenter.goto(url + "?run=r1")
            viewer.wait_for_url(re.compile(r"/\?run=r1&follow=on$"), timeout=30_000)
            expect(viewer.get_by_test_id("panda-banner")).to_contain_text("r1", timeout=60_000)

            # a viewer's own move moves no one: the follower stays with the presenter's run
            stayer.goto(url + "lessons?run=r2&follow=off")
            expect(stayer.get_by_role("heading", name="Lessons")).to_be_visible(timeout=60_000)
            moved = wait_until(lambda: "lessons" in viewer.url, timeout=5)
            assert not moved and re.search(r"/\?run=r1&follow=on$", viewer.url)
            assert "lessons" in stayer.url  # and the one who opted out was never moved
        finally:
            browser.close()
