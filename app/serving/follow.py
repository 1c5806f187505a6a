"""Follow the presenter: viewers' pages go where the presenter's page is (the Lessons page, a sweep, a run).

Viewers reach the Sweeps and Lessons pages only by typing a URL, so when the lecturer opens one
the room would keep watching the projector page. Here the presenter's page writes where it is —
page and the few query parameters that say what it shows (``run``, ``sweep``) — into one value
per server (:mod:`app.serving.shared`: no client can clear it), and a viewer's page that follows checks
it every second and navigates there. Only a presenter session (one that may steer, in a room with
a token) writes it. Following is on by default with ``--present``; ``?follow=off`` turns it off
for one viewer, ``?follow=on`` turns it on without ``--present``.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Mapping
from urllib.parse import urlencode

import streamlit as st
import streamlit.components.v1 as components

from app.serving.shared import shared

#: The pages a viewer may follow to, by their URL path ("" is the default page, the run).
PAGES = {"": "", "run": "", "sweeps": "sweeps", "lessons": "lessons"}
#: The query parameters that say what a page shows; nothing else (a code, a token) ever travels.
KEYS = ("run", "sweep")
PARAM = "follow"
OFF = ("off", "0", "no", "false")
#: How often a following page looks where the presenter is (seconds).
CHECK_EVERY = 1.0
MAX_VALUE = 300


@dataclass(frozen=True)
class Place:
    """Where a page is: its path and what it shows."""

    page: str
    params: tuple[tuple[str, str], ...] = ()

    def url(self, follow: str | None = None) -> str:
        """A URL relative to the app's root page (every page sits beside it)."""
        query = list(self.params) + ([(PARAM, follow)] if follow else [])
        return f"./{self.page}" + (f"?{urlencode(query)}" if query else "")


def place_of(url_path: str, params: Mapping) -> Place | None:
    """The place a page at ``url_path`` with query ``params`` is; ``None`` for a page no one follows to."""
    page = PAGES.get(url_path)
    if page is None:
        return None
    kept = tuple((k, params[k]) for k in KEYS if isinstance(params.get(k), str) and 0 < len(params[k]) <= MAX_VALUE)
    return Place(page, kept)


class PresenterPlace:
    """The presenter's place on one server, and how many times it moved."""

    def __init__(self):
        self._lock = threading.Lock()
        self.place: Place | None = None
        self.moves = 0

    def set(self, place: Place | None) -> None:
        with self._lock:
            if place is not None and place != self.place:
                self.place, self.moves = place, self.moves + 1

    def get(self) -> Place | None:
        with self._lock:
            return self.place


def presenter_place(root: str) -> PresenterPlace:
    return shared("presenter place", root, PresenterPlace)


def is_presenter(access, can_steer: bool) -> bool:
    """A session that may set the place: it steers in a room with a token (on localhost everyone steers)."""
    return access.needs_token and can_steer


def follows(access, can_steer: bool, params: Mapping) -> bool:
    """Whether this session's page follows the presenter: a viewer, with ``--present`` or ``?follow=on``."""
    if not access.needs_token or can_steer:
        return False
    wanted = params.get(PARAM)
    return access.present if wanted is None else str(wanted).lower() not in OFF


def navigate_script(url: str) -> str:
    """The script that sends the page (Streamlit's parent window) to ``url``, relative to the app's root."""
    # Streamlit's component frame is sandboxed without top navigation: the parent's own script navigates
    target = json.dumps(url).replace("<", "\\u003c")
    code = json.dumps(f"location.assign(new URL({target}, new URL('./', location.href)).href);").replace("<", "\\u003c")
    return ("<script>const d = window.parent.document, s = d.createElement('script');"
            f"s.textContent = {code}; d.body.appendChild(s);</script>")


def track(ctx, root: str, url_path: str) -> None:
    """Before a page runs: a presenter's writes where it is; a following viewer's goes where the presenter is."""
    if is_presenter(ctx.access, ctx.can_steer):
        announce(ctx, root, url_path)
    elif follows(ctx.access, ctx.can_steer, st.query_params):
        _follow(root, place_of(url_path, st.query_params), st.query_params.get(PARAM))


def announce(ctx, root: str, url_path: str) -> None:
    """A presenter's page writes where it is (again after the page ran: it may have changed its query)."""
    if is_presenter(ctx.access, ctx.can_steer):
        presenter_place(root).set(place_of(url_path, st.query_params))


@st.fragment(run_every=CHECK_EVERY)
def _follow(root: str, here: Place | None, follow: str | None) -> None:
    there = presenter_place(root).get()
    if there is not None and there != here:
        components.html(navigate_script(there.url(follow)), height=0)
