"""Panda's dashboard, the Streamlit script: ``streamlit run app/dashboard.py -- --run-dir runs``.

``panda app`` runs it with the project's settings. The pages live in their own modules (the
single-run view in :mod:`app.views.run_page`); this script only wires the shared data store, who may
steer, and the navigation, so another page (a sweep's trials) is one more ``st.Page``.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st
import streamlit.components.v1 as components

from app.serving import follow
from app.serving import page_settings as app_settings
from app.serving.page_settings import COMPACT
from app.serving.auth import PRESENTER_COOKIE, Access, OneTimeCode, PresenterKeys, presenter_secrets
from app.data import RunStore
from app.views.lessons_page import render_lessons
from app.views.run_page import Context, render
from app.serving.shared import shared
from app.views.sweep_page import render_sweeps

st.set_page_config(page_title="Panda", page_icon="🐼", layout="wide", initial_sidebar_state=400)


def run_store(root: str) -> RunStore:
    """One store per run directory for the whole server: every tab shares its readers and launches.

    Not in ``st.cache_resource``: a client's "Clear cache" would close it under every session's
    live fragments and forget the runs this server launched (:mod:`app.serving.shared`).
    """
    return shared("run store", root, lambda: RunStore(root), close=RunStore.close)


def _presenter(access: Access, code: OneTimeCode, keys: PresenterKeys) -> bool:
    """Whether this session may steer: it typed the token, its URL brought the one-time code, or its
    browser holds a presenter key from an earlier session (a reload keeps the presenter the presenter).

    The right lives server-side, in the session state; the browser only ever holds a random key.
    """
    if not access.needs_token:
        return True
    if keys.valid(st.context.cookies.get(PRESENTER_COOKIE)):
        st.session_state["token"] = access.token
    if "token" in st.query_params:
        # A token in the URL stays in the browser's history (removing it adds an entry, it does
        # not rewrite the old one), so it is not accepted there: type it in the sidebar.
        del st.query_params["token"]
        st.session_state["token_in_url"] = True
    given = st.query_params.get("code")
    if given is not None:
        del st.query_params["code"]  # off the address bar; the history entry it leaves is spent
        if code.redeem(given):
            st.session_state["token"] = access.token
    steering = access.can_steer(st.session_state.get("token"))
    if steering and not st.session_state.get("presenter_key_sent"):
        components.html(keys.cookie_script(keys.issue()), height=0)
        st.session_state["presenter_key_sent"] = True
    return steering


settings = app_settings.load()
access = Access(settings.token, settings.present)
context = Context(store=run_store(str(settings.run_dir)), access=access,
                  can_steer=_presenter(access, *presenter_secrets(settings.run_dir, settings.code)))
if st.session_state.pop("token_in_url", False):
    st.warning("A token in the address is not accepted (browsers keep it in their history): type it in the "
               "sidebar, or open the presenter link with its one-time code.", icon=":material/key_off:")


def run_view() -> None:
    render(context)


def sweep_view() -> None:
    def babysit(key: str) -> None:  # open the trial in the single-run view, where its controls work
        st.session_state["run"] = key
        st.session_state.pop("run_picker", None)
        st.switch_page(run_page, query_params={"run": key})

    render_sweeps(Path(settings.run_dir), on_babysit=babysit, writer=context.steer)


def lessons_view() -> None:
    render_lessons(Path(settings.run_dir), context.steer)


run_page = st.Page(run_view, title="Run", icon=":material/monitoring:", url_path="run", default=True)
pages = [run_page, st.Page(sweep_view, title="Sweeps", icon=":material/grid_view:", url_path="sweeps"),
         st.Page(lessons_view, title="Lessons", icon=":material/school:", url_path="lessons")]
# ?compact (the notebook's embedded page): the run's charts and Steer panel, no page links
page = st.navigation(pages, position="hidden" if COMPACT in st.query_params else "sidebar")
follow.track(context, str(settings.run_dir), page.url_path)  # viewers may follow the presenter (app.serving.follow)
page.run()
follow.announce(context, str(settings.run_dir), page.url_path)
