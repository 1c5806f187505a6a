"""The single-run page: pick a run, watch it live, steer it.

Timed fragments keep the page live without rerunning the whole script: the run picker and the
rewind list's notes (every 2 s), the run's status, charts and journal, the Explore panel (Find α's
curve, a fork's candidates) and the answers to this tab's commands (every second). The Steer panel
(:mod:`app.panels.steer`) and the rewind list are fragments that rerun only when used, so a slider
being dragged or a list held open is never redrawn under the pointer. When a run's state,
hyperparameters or branch change in a way the controls must show, or the controls show another run
than the one on screen (a run just started from this page), the live fragment reruns the page once.
The banners and their actions are :mod:`app.panels.notices`; the shared figures, :mod:`app.figures.cache`.

It holds together as one page: the picker, the live fragments and the token box share the page's context
and its rerun signature.
"""

from __future__ import annotations

import math
import weakref
from collections import ChainMap
from dataclasses import dataclass

import streamlit as st

from app.figures import run_charts as charts
from app.panels import controls
from app.data import journal_view as journal
from app.data import run_progress as progress
from app.views import projector
from app.panels import steer as run_controls
from app.serving.auth import Access
from app.serving.admission import open_for
from app.panels.controls import PageWriter
from app.panels.autopilot import autopilot_panel
from app.panels.compare import compare_view
from app.serving.page_settings import COMPACT
from app.panels.steer import LIVE_EVERY, PICKER_EVERY, answers_panel, controls_panel, rewind_notes, rewind_panel
from app.data import RunStore, RunView
from app.panels.explore import explore_panel
from app.figures.cache import FigureCache, figure  # noqa: F401  (FigureCache: bench/dashboard.py imports it here)
from app.panels.new_run import new_run_form
from app.panels.notices import advice_notice, launch_notice, notices
from trainer.contract.records import EpochRecord
from trainer.contract.rundir import LIVE_STATES, WAITING_STATES

#: state -> (badge colour, glyph for the picker, Material icon for the badge)
STATE_STYLE = {
    "running": ("green", "●", "play_circle"),
    "starting": ("gray", "◌", "hourglass_empty"),
    "launching": ("gray", "◌", "hourglass_empty"),
    "paused": ("orange", "‖", "pause_circle"),
    "stopping": ("orange", "■", "stop_circle"),
    "diverged": ("red", "▲", "warning"),
    "finished": ("blue", "✓", "check_circle"),
    "completed": ("blue", "✓", "check_circle"),
    "stopped": ("violet", "■", "stop_circle"),
    "interrupted": ("orange", "⏹", "cancel"),
    "killed": ("red", "✗", "dangerous"),
    "failed": ("red", "✗", "error"),
    "not answering": ("red", "?", "power_off"),
    "deleted": ("gray", "✗", "delete"),
    "missing": ("gray", "✗", "help"),
}


@dataclass
class Context:
    """What every part of the page needs: the runs, who may steer, the view options.

    ``can_steer`` only decides what the page *shows* (enabled or disabled controls); every write
    goes through ``steer``, which checks the right again where it writes.
    """

    store: RunStore
    access: Access
    can_steer: bool

    @property
    def steer(self) -> PageWriter:
        return PageWriter(self.store.root, self.can_steer)


def badge(state: str) -> str:
    color, _, icon = STATE_STYLE.get(state, ("gray", "•", "circle"))
    return f":{color}-badge[:material/{icon}: {state}]"


# --------------------------------------------------------------------------- run picker


#: Each store's picker labels with the list build they were made from: made once per change of the
#: run list for every session, not once a tick per session (2,000 runs would be 2,000 strings each).
_LABELS: "weakref.WeakKeyDictionary[RunStore, tuple[int, dict[str, str]]]" = weakref.WeakKeyDictionary()


def _label(r, done: int, total: int | None) -> str:
    """A run's entry in the picker: glyph, name, state word, epochs done (of planned)."""
    word = r.word or r.state
    return (f"{STATE_STYLE.get(word, ('', '•', ''))[1]} {r.name} · {word} · {f'{done}/{total}' if total else done}"
            + (" · ⚠ unusable file" if r.notice else ""))


def _picker_options(ctx: Context) -> tuple[list[str], dict[str, str], dict[str, str]]:
    runs = ctx.store.runs()
    names = [r.name for r in runs]
    states = {r.name: r.state for r in runs}
    builds = ctx.store.builds
    cached = _LABELS.get(ctx.store)
    if cached is None or cached[0] != builds:
        cached = _LABELS[ctx.store] = (builds, {
            r.name: _label(r, r.epoch, r.epochs) for r in runs})
    labels = ChainMap({}, cached[1])  # this session's changes over the shared labels
    current = st.session_state.get("run")
    path = ctx.store.path_of(current) if current in states else None
    if path is not None and ctx.store.is_open(path):  # the run on screen: the page's own numbers, not the list's
        summary = next(r for r in runs if r.name == current)
        labels[current] = _label(summary, *progress.epochs_done(ctx.store.run(path).view()))
    for name, launch in ctx.store.launches.items():
        if name not in states:
            failed = launch.exit_code() not in (None, 0)
            states[name] = "failed" if failed else "launching"
            labels[name] = f"{'✗' if failed else '◌'} {name} · {'failed to start' if failed else 'starting…'}"
            names.insert(0, name)
    if current and current not in states:
        states[current] = "deleted"
        labels[current] = f"✗ {current} · deleted"
        names.append(current)
    return names, labels, states


@st.fragment(run_every=PICKER_EVERY)
def run_picker(ctx: Context) -> None:
    names, labels, states = _picker_options(ctx)
    if not names:
        st.caption(f"No runs yet in `{ctx.store.root}`." if ctx.can_steer else "No runs yet.")
        return
    current = st.session_state.get("run")
    if current not in names:
        live = [n for n in names if states.get(n) in (*LIVE_STATES, "launching")]
        current = st.query_params.get("run") if st.query_params.get("run") in names else (live or names)[0]
        st.session_state["run"] = current
    follows = st.session_state.pop("picker_follows", None)
    if follows in names:  # a run just started here: a timed rerun may still carry the box's old value
        st.session_state["run_picker"] = follows
    if st.session_state.get("run_picker") not in names:
        st.session_state["run_picker"] = current
    where = f" in {ctx.store.root.name}/" if ctx.can_steer else ""  # paths are the presenter's
    chosen = st.selectbox(f"Run ({len(names)}{where})", names, key="run_picker",
                          format_func=lambda n: labels.get(n, n))
    if chosen != st.session_state.get("run"):
        st.session_state["run"] = chosen
        st.query_params["run"] = chosen
        st.rerun()


# --------------------------------------------------------------------------- status and charts


def _control_signature(state: str, view: RunView) -> tuple:
    status = view.run_status
    return (view.name, controls.controllable(state), state in WAITING_STATES,
            status.hparams.get("optimizer") if status else None, run_controls.signature(view),
            status.branch if status else None)


#: The cards: each at least ``min-width`` wide, so none is ever cut short; they share a row when the
#: page is wide (five at 1400 px and up with the sidebar open), and wrap when it is not (four and one
#: at 1280 px, two to a row on a phone). tests/test_browser_pages.py measures it at four widths.
CARDS_CSS = """<style>
.st-key-cards > div { flex: 1 1 0 !important; min-width: 10rem !important; }
.st-key-cards [data-testid="stMetric"] { padding: 0.5rem 0.75rem; }
.st-key-cards [data-testid="stMetricValue"] { font-size: 1.6rem; }
</style>"""


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _metrics_row(view: RunView, state: str) -> None:
    done, total = progress.epochs_done(view)
    hp = view.hparams
    last = view.last_record or EpochRecord(epoch=0)  # no epoch yet: every measure missing
    fraction = min(done / total, 1.0) if total else 0.0
    eta = progress.eta_seconds(view, state)
    eta_text = "paused" if state in WAITING_STATES else progress.duration(eta)
    st.progress(fraction, text=f"Epoch **{done}** of **{total or '?'}** · ETA {eta_text}")
    lr, loss, accuracy = hp.get("lr"), last.val_loss, last.val_accuracy
    st.html(CARDS_CSS)
    with st.container(horizontal=True, gap="small", key="cards"):  # wraps two by two on a phone
        st.metric("Epoch", f"{done}/{total or '?'}", border=True)
        st.metric("Learning rate α", progress.compact(lr), border=True)
        st.metric("Val loss", f"{loss:.4f}" if _finite(loss) else "—", border=True, help="Validation loss")
        st.metric("Val acc", f"{accuracy:.1%}" if _finite(accuracy) else "—", border=True, help="Validation accuracy")
        st.metric("ETA", eta_text, border=True)
    beta = hp.get("beta")
    # end to end (evaluation and checkpoint included); runs older than the field have only the step rate
    sps = last.wall_samples_per_second
    if sps is None:
        sps = last.samples_per_second
    age = progress.heartbeat_age(view)
    heartbeat = progress.age_text(age) if controls.controllable(state) else "—"
    if state == "not answering":
        heartbeat = f":red[**{heartbeat}**]"
    st.markdown(
        " &nbsp;·&nbsp; ".join([
            f"**{hp.get('optimizer', '?')}**",
            f"β **{beta:.3g}**" if isinstance(beta, (int, float)) else "β —",
            f"batch size **{hp.get('batch_size', '—')}**",
            f"**{sps:,.0f}** samples/s" if isinstance(sps, (int, float)) else "— samples/s",
            f"heartbeat {heartbeat}",
            f"step {view.run_status.step if view.run_status else 0:,}",
        ])
    )


def _charts(view: RunView, log_loss: bool) -> None:
    config = {"displaylogo": False, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}
    top = st.columns(2)
    top[0].plotly_chart(figure(view, "loss", log_y=log_loss), config=config, key="chart-loss")
    top[1].plotly_chart(figure(view, "accuracy"), config=config, key="chart-accuracy")
    bottom = st.columns(2)
    bottom[0].plotly_chart(figure(view, "lr"), config=config, key="chart-lr")
    bottom[1].plotly_chart(figure(view, "batch", log_y=log_loss), config=config, key="chart-batch")
    st.caption(charts.legend_markdown())


def _journal(view: RunView, private: bool) -> None:
    commands_tab, events_tab = st.tabs(["Commands", "Trainer events"])
    with commands_tab:
        table = journal.commands_table(view)
        if table.empty:
            st.caption("No commands yet. Steer the run from the sidebar, or with `panda ctl`.")
        else:
            st.dataframe(table, hide_index=True, width="stretch", height=min(38 + 35 * len(table), 320),
                         column_config={"id": st.column_config.TextColumn("id", width="small")})
    with events_tab:
        table = journal.events_table(view, private=private)
        st.dataframe(table, hide_index=True, width="stretch", height=min(38 + 35 * max(len(table), 1), 320))


@st.fragment(run_every=LIVE_EVERY)
def live_view(ctx: Context) -> None:
    name = st.session_state.get("run")
    if not name:
        return
    if launch_notice(ctx, name):
        return
    data = open_for(ctx.store, ctx.store.path_of(name), trusted=ctx.can_steer)
    if data is None:
        return
    view = data.view()
    state = view.state()
    signature = _control_signature(state, view)
    previous = st.session_state.get("control_signature")
    st.session_state["control_signature"] = signature
    if previous is not None and previous != signature and previous[0] == signature[0]:
        st.rerun()  # enable or disable the controls, and show the values in force
    if run_controls.controls_shown_for() != name and view.config is not None and ctx.store.contains(view.path):
        st.rerun()  # the sidebar still steers another run (or none): a run started here now exists

    title, status_col = st.columns([4, 1], vertical_alignment="center")
    config = view.run_config
    dataset = config.dataset.name or ""
    title.markdown(f"## {view.name}  {badge(view.word(state))}")
    if dataset:
        title.caption(f"{dataset} · TensorFlow {config.versions.get('tensorflow', '?')} · "
                      f"{', '.join(config.devices or [])}" + (f" · `{view.path}`" if ctx.can_steer else ""))
    status_col.toggle("Log-scale loss", key="log_loss")
    notices(ctx, view, state)
    advice_notice(ctx, view, state)
    _metrics_row(view, state)
    _charts(view, bool(st.session_state.get("log_loss")))
    live = controls.controllable(state) and state != "not answering"
    autopilot_panel(ctx, view, state, off=not (live and ctx.can_steer))
    _journal(view, ctx.can_steer)


# --------------------------------------------------------------------------- the page


def render(ctx: Context) -> None:
    if ctx.access.needs_token and not ctx.can_steer and "presenter" not in st.query_params:
        return projector.render(ctx.store)  # a viewer: the projected page (?presenter shows the token box)
    compact = COMPACT in st.query_params
    with st.sidebar:
        st.markdown("## :material/monitor_heart: Panda")
        if ctx.can_steer and not compact:  # a viewer with ?presenter sees no paths
            st.caption(f"Run directory `{ctx.store.root}`")
        # each fragment in a container of its own: one whose output grows or shrinks (a note that comes
        # and goes) never moves the next, so a rerun never leaves a stale copy of a button beside it
        with st.container():
            run_picker(ctx)
        projector.presenter_panel(ctx)
        if ctx.access.needs_token and not ctx.can_steer:
            token_box()
        for panel in (controls_panel, rewind_panel, rewind_notes, explore_panel, answers_panel):
            with st.container():
                panel(ctx)
        if not compact:
            with st.expander("Start a new run", icon=":material/add_circle:", expanded=False):
                new_run_form(ctx, key="sidebar-new")

    if not ctx.store.runs() and not ctx.store.launches and not st.session_state.get("run"):
        st.markdown("# Panda")
        root = ctx.store.root if ctx.can_steer else "the run directory"  # paths are the presenter's
        st.markdown(f"No runs in `{root}` yet. Start one here — it trains in the background, "
                    "so you can close this page and come back — or from a terminal with "
                    f"`panda train --run-dir {root} --pace 0.5`.")
        with st.container(border=True):
            new_run_form(ctx, key="welcome", expanded_title="Start training")
        return

    live_view(ctx)
    if not compact:
        with st.expander("Compare runs", icon=":material/stacked_line_chart:"):
            compare_view(ctx)


def _take_token() -> None:
    st.session_state["token"] = st.session_state.get("token_input") or None


def token_box() -> None:
    """Where the presenter types the token (checked by the dashboard on the rerun this causes)."""
    st.text_input("Presenter token", type="password", key="token_input", on_change=_take_token,
                  help="Printed by `panda app`; viewers without it can only watch")
    if st.session_state.get("token"):
        st.caption(":red[That token does not match.]")
