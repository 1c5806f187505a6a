"""The single-run page: pick a run, watch it live, steer it.

Timed fragments keep the page live without rerunning the whole script: the run picker and the
rewind list's notes (every 2 s), the run's status, charts and journal, the Explore panel (Find α's
curve, a fork's candidates) and the answers to this tab's commands (every second). The Steer panel
(:mod:`app.run_controls`) and the rewind list are fragments that rerun only when used, so a slider
being dragged or a list held open is never redrawn under the pointer. When a run's state,
hyperparameters or branch change in a way the controls must show, or the controls show another run
than the one on screen (a run just started from this page), the live fragment reruns the page once.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

import streamlit as st

from app import charts, controls, journal, progress, projector, run_controls
from app.admission import open_for
from app.auth import Access
from app.controls import NotPresenter, Steerer
from app.compare import compare_view
from app.settings import COMPACT
from app.shared import shared
from app.run_controls import LIVE_EVERY, PICKER_EVERY, answers_panel, controls_panel, read_only, rewind_notes, rewind_panel
from app.data import RunStore, RunView
from app.explore_panel import explore_panel
from app.launch import LaunchError
from app.new_run import new_run_form
from trainer.advising import latest_advice
from trainer.advisor import not_learning
from trainer.records import Status
from trainer.rundir import RunDir, pid_alive

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
    def steer(self) -> Steerer:
        return Steerer(self.store.root, self.can_steer)


def badge(state: str) -> str:
    color, _, icon = STATE_STYLE.get(state, ("gray", "•", "circle"))
    return f":{color}-badge[:material/{icon}: {state}]"


# --------------------------------------------------------------------------- figure cache


class FigureCache:
    """Figures shared by every tab: rebuilt only when the run's records changed."""

    def __init__(self, size: int = 128):
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.size = size

    def get(self, key, build):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        figure = build()
        with self._lock:
            self._items[key] = figure
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return figure


def figure_cache() -> FigureCache:
    """The server's one figure cache (:mod:`app.shared`: a client's "Clear cache" does not empty it)."""
    return shared("figure cache", None, FigureCache)


def figure(view: RunView, kind: str, **options):
    builders = {
        "loss": charts.loss_figure, "accuracy": charts.accuracy_figure,
        "lr": charts.learning_rate_figure, "batch": charts.batch_loss_figure,
    }
    # the epochs shown change without a new record right after a rewind (the status moves first)
    key = (str(view.path), view.log_version, view.n_epochs, len(view.abandoned), kind, tuple(sorted(options.items())))
    return figure_cache().get(key, lambda: builders[kind](view, **options))


# --------------------------------------------------------------------------- run picker


def _picker_options(ctx: Context) -> tuple[list[str], dict[str, str], dict[str, str]]:
    runs = ctx.store.runs()
    names = [r.name for r in runs]
    states = {r.name: r.state for r in runs}
    labels = {}
    for r in runs:
        progress_text = f"{r.epoch}/{r.epochs}" if r.epochs else f"{r.epoch}"
        word = r.word or r.state
        labels[r.name] = (f"{STATE_STYLE.get(word, ('', '•', ''))[1]} {r.name} · {word} · {progress_text}"
                          + (" · ⚠ unusable file" if r.notice else ""))
    for name, launch in ctx.store.launches.items():
        if name not in states:
            failed = launch.exit_code() not in (None, 0)
            states[name] = "failed" if failed else "launching"
            labels[name] = f"{'✗' if failed else '◌'} {name} · {'failed to start' if failed else 'starting…'}"
            names.insert(0, name)
    current = st.session_state.get("run")
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
        live = [n for n in names if states.get(n) in ("running", "paused", "diverged", "starting", "stopping", "launching")]
        current = st.query_params.get("run") if st.query_params.get("run") in names else (live or names)[0]
        st.session_state["run"] = current
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
    hp = (view.status or {}).get("hparams") or {}
    return (view.name, controls.controllable(state), state in ("paused", "diverged"), hp.get("optimizer"),
            run_controls.signature(view), (view.status or {}).get("branch"))


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
    hp = (view.status or {}).get("hparams") or (view.config or {}).get("hparams") or {}
    last = view.last_epoch or {}
    fraction = min(done / total, 1.0) if total else 0.0
    eta = progress.eta_seconds(view, state)
    eta_text = "paused" if state in ("paused", "diverged") else progress.duration(eta)
    st.progress(fraction, text=f"Epoch **{done}** of **{total or '?'}** · ETA {eta_text}")
    lr, loss, accuracy = hp.get("lr"), last.get("val_loss"), last.get("val_accuracy")
    st.html(CARDS_CSS)
    with st.container(horizontal=True, gap="small", key="cards"):  # wraps two by two on a phone
        st.metric("Epoch", f"{done}/{total or '?'}", border=True)
        st.metric("Learning rate α", progress.compact(lr), border=True)
        st.metric("Val loss", f"{loss:.4f}" if _finite(loss) else "—", border=True, help="Validation loss")
        st.metric("Val acc", f"{accuracy:.1%}" if _finite(accuracy) else "—", border=True, help="Validation accuracy")
        st.metric("ETA", eta_text, border=True)
    beta = hp.get("beta")
    # end to end (evaluation and checkpoint included); runs older than the field have only the step rate
    sps = last.get("wall_samples_per_second", last.get("samples_per_second"))
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
            f"step {(view.status or {}).get('step', 0):,}",
        ])
    )


def diverged_text(view: RunView) -> str:
    """The divergence banner, by epoch: where the run went wrong and which epoch it is back at."""
    event = next((e for e in reversed(view.events) if e.get("event") == "diverged"), None)
    if event is None:
        return f"**Diverged.** {(view.status or {}).get('message') or ''}"
    epochs = {c["name"]: c.get("epoch") for c in RunDir(view.path).list_checkpoints()} if not view.missing else {}
    back = epochs.get(event.get("checkpoint"), event.get("epoch"))
    return (f"**Diverged:** {event.get('reason') or 'the loss blew up'}. Rolled back to the end of epoch {back} "
            f"and paused: lower the learning rate, then resume.")


def _advice_notice(ctx: Context, view: RunView, state: str) -> None:
    """The advisor's latest advice that still stands, with its one-click action (through the Steerer).

    A run without an advisor (a ``PandaCallback`` run) still gets the "not learning" notice, from
    the same rule (:func:`trainer.advisor.not_learning`).
    """
    if state not in ("running", "paused"):
        return
    advice = latest_advice(view.events)
    if advice is None:
        classes = ((view.config or {}).get("dataset") or {}).get("n_classes")
        why = not_learning(view.epochs["loss"], view.epochs["accuracy"], classes)
        if why:
            st.warning(f"**{why.capitalize()}.** Try another learning rate (often ×10 or ×0.1), or rewind.",
                       icon=":material/trending_flat:")
        return
    cmd, value = advice.get("cmd"), advice.get("value")
    hp = run_controls.hparams_of(view)
    action = controls.describe(cmd, value, hp)
    box = st.warning if advice.get("kind") != "exploding" else st.error
    box(f"**Advice at epoch {advice.get('epoch')}:** {advice.get('reason')}"
        + (" — the autopilot applied it." if advice.get("autopilot") else ""), icon=":material/tips_and_updates:")
    if not advice.get("autopilot") and st.button(f"Apply: {action}", key=f"advice-{view.name}-{advice.get('time')}",
                                                 icon=":material/bolt:", disabled=not ctx.can_steer):
        run_controls.send_command(ctx, view, cmd, value)


def _notices(ctx: Context, view: RunView, state: str) -> None:
    status = view.status or {}
    if view.missing:
        st.error("This run's folder was deleted while open; the page shows what it had read.", icon=":material/delete:")
    if view.notice:
        st.warning(f"Unusable file in this run: {view.notice}.", icon=":material/warning:")
    if view.malformed_total:
        where = ", ".join(f"{name}: {n}" for name, n in sorted(view.malformed.items()))
        st.warning(f"Skipped {view.malformed_total} malformed line(s) that are not JSON records ({where}).", icon=":material/warning:")
    activity = Status.from_json(status).activity or {}  # typed: a hostile status.json shows nothing here
    if state in ("running", "paused") and activity.get("kind") in ("find_lr", "fork"):
        st.caption(f"Running a {activity['kind']}: step {activity.get('done') or 0:,} of {activity.get('total') or 0:,}; "
                   "other commands wait for it, Stop abandons it and puts the state back.")
    if state == "not answering":
        age = progress.heartbeat_age(view)
        pid = status.get("pid")
        gone = not pid_alive(pid, status.get("host"))
        st.error(
            f"The trainer stopped answering: last heartbeat {progress.age_text(age)}"
            + (f", process {pid} is gone" if gone else f", process {pid} does not respond")
            + f". Its last state was **{status.get('state')}**.", icon=":material/power_off:")
        if gone:
            _continue_button(ctx, view, "Continue this run from its last checkpoint")
    elif state == "diverged":
        st.warning(diverged_text(view), icon=":material/local_fire_department:")
    elif state == "failed":
        # a failure's message may name files: the presenter's
        st.error(f"**Failed.** {(status.get('message') or '') if ctx.can_steer else ''}", icon=":material/error:")
        failure = next((e for e in reversed(view.events) if e.get("event") == "failed"), None)
        if failure and failure.get("traceback") and ctx.can_steer:  # paths and code: for the presenter
            with st.expander("Traceback"):
                st.code(failure["traceback"], language="text")
    elif state == "finished":
        word, epoch = view.word(state), status.get("epoch")
        if word == "completed":
            st.success(f"Completed all {epoch} epochs.", icon=":material/flag:")
        else:  # stopped by the user, or interrupted: checkpointed, and --resume continues it
            said = (status.get("message") if ctx.can_steer else None) or word  # a message may hold paths
            st.info(f"**{word.capitalize()}** at epoch {epoch}: {said}.", icon=":material/stop_circle:")
        total = status.get("epochs")
        if ctx.can_steer and isinstance(epoch, int) and isinstance(total, int):
            more = total - epoch if total > epoch else MORE_EPOCHS  # what was planned, or another stretch
            _continue_button(ctx, view, f"Continue this run ({more} more epochs)", epochs=epoch + more)


#: How far "Continue this run" takes a run that completed every planned epoch.
MORE_EPOCHS = 20


def _continue_button(ctx: Context, view: RunView, label: str, *, epochs: int | None = None) -> None:
    """Continue a finished or gone run from its last checkpoint, launched as Start a new run launches
    (``panda train --resume`` in the background, through the Steerer)."""
    if not st.button(label, key=f"resume-{view.name}", icon=":material/restart_alt:", disabled=not ctx.can_steer):
        return
    try:
        launch = ctx.steer.resume_run(view.path, epochs=epochs)
    except NotPresenter as e:
        read_only(e)
    except (LaunchError, OSError, ValueError) as e:
        st.error(f"Not resumed: {e}")
    else:
        ctx.store.launches[f"{view.name}#resume"] = launch
        st.toast(f"Resuming {view.name} (pid {launch.pid})")


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


def _launch_notice(ctx: Context, name: str) -> bool:
    """For a run this app is starting: a notice while the trainer loads. ``True`` if shown."""
    launch = ctx.store.launches.get(name)
    if launch is None or (ctx.store.root / name / "config.json").exists():
        return False
    code = launch.exit_code()
    st.subheader(name)
    if code not in (None, 0):
        st.error(f"The trainer exited with status {code} before creating the run.", icon=":material/error:")
        if ctx.can_steer:  # the log shows paths and code: the presenter's, not the room's
            st.code(launch.log_tail() or "(no output)", language="text")
    else:
        st.info(f"Starting **{name}**: the trainer (pid {launch.pid}) is loading TensorFlow…", icon=":material/hourglass_top:")
    return True


@st.fragment(run_every=LIVE_EVERY)
def live_view(ctx: Context) -> None:
    name = st.session_state.get("run")
    if not name:
        return
    if _launch_notice(ctx, name):
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
    config = view.config or {}
    dataset = (config.get("dataset") or {}).get("name", "")
    title.markdown(f"## {view.name}  {badge(view.word(state))}")
    if dataset:
        title.caption(f"{dataset} · TensorFlow {config.get('versions', {}).get('tensorflow', '?')} · "
                      f"{', '.join(config.get('devices') or [])}" + (f" · `{view.path}`" if ctx.can_steer else ""))
    status_col.toggle("Log-scale loss", key="log_loss")
    _notices(ctx, view, state)
    _advice_notice(ctx, view, state)
    _metrics_row(view, state)
    _charts(view, bool(st.session_state.get("log_loss")))
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
