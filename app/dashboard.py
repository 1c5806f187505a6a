"""Panda's dashboard, the Streamlit script: ``streamlit run app/dashboard.py -- --run-dir runs``.

``panda app`` runs it with the project's settings. The pages live in their own modules (the
single-run view in :mod:`app.run_page`); this script only wires the shared data store, who may
steer, and the navigation, so another page (a sweep's trials) is one more ``st.Page``.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app import settings as app_settings
from app.auth import Access
from app.data import RunStore
from app.run_page import Context, render
from app.sweep_page import render_sweeps

st.set_page_config(page_title="Panda", page_icon="🐼", layout="wide", initial_sidebar_state=400)


@st.cache_resource(show_spinner=False, on_release=lambda store: store.close())
def run_store(root: str) -> RunStore:
    """One store per run directory for the whole server: every tab shares its readers."""
    return RunStore(root)


def _presenter(access: Access) -> bool:
    """Whether this tab may steer; a token in the URL is taken once and removed from the address bar."""
    if not access.needs_token:
        return True
    given = st.query_params.get("token")
    if given is not None:
        del st.query_params["token"]  # keep it off a projected address bar
        if access.can_steer(given):
            st.session_state["token"] = given
    if access.can_steer(st.session_state.get("token")):
        return True
    return False


settings = app_settings.load()
access = Access(settings.token, settings.present)
context = Context(store=run_store(str(settings.run_dir)), access=access, can_steer=_presenter(access))


def run_view() -> None:
    render(context)


def sweep_view() -> None:
    def babysit(key: str) -> None:  # open the trial in the single-run view, where its controls work
        st.session_state["run"] = key
        st.session_state.pop("run_picker", None)
        st.switch_page(run_page, query_params={"run": key})

    render_sweeps(Path(settings.run_dir), on_babysit=babysit)


run_page = st.Page(run_view, title="Run", icon=":material/monitoring:", url_path="run", default=True)
pages = [run_page, st.Page(sweep_view, title="Sweeps", icon=":material/grid_view:", url_path="sweeps")]
st.navigation(pages, position="sidebar").run()
