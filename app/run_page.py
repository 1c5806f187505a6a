"""The single-run page: pick a run, watch it live, steer it.

Four fragments keep the page live without rerunning the whole script: the run picker and the
rewind list (every 2 s), the run's status, charts and journal (every second), and the answers to
this tab's commands (every second). The other controls form a fragment of their own that reruns only when used,
so a slider being dragged is never redrawn under the pointer. When a run's state changes in a
way that enables or disables controls, the live fragment reruns the whole page once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import streamlit as st

from app import charts, controls, journal, progress, projector
from app.auth import Access
from app.controls import NotPresenter, Steerer
from app.data import RunStore, RunView
from app.launch import LaunchError
from app.new_run import new_run_form
from trainer.commands import CommandError
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
    "failed": ("red", "✗", "error"),
    "not answering": ("red", "?", "power_off"),
    "deleted": ("gray", "✗", "delete"),
    "missing": ("gray", "✗", "help"),
}
LIVE_EVERY = 1.0
PICKER_EVERY = 2.0


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


def read_only(error: NotPresenter) -> None:
    """What a refused write shows: "Read-only view", once per session however many writes were refused."""
    refused = st.session_state["refused_writes"] = st.session_state.get("refused_writes", 0) + 1
    if refused == 1:
        st.error(str(error), icon=":material/lock:")


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


@st.cache_resource(show_spinner=False)
def figure_cache() -> FigureCache:
    return FigureCache()


def figure(view: RunView, kind: str, **options):
    builders = {
        "loss": charts.loss_figure, "accuracy": charts.accuracy_figure,
        "lr": charts.learning_rate_figure, "batch": charts.batch_loss_figure,
    }
    key = (str(view.path), view.log_version, kind, tuple(sorted(options.items())))
    return figure_cache().get(key, lambda: builders[kind](view, **options))


# --------------------------------------------------------------------------- run picker


def _picker_options(ctx: Context) -> tuple[list[str], dict[str, str], dict[str, str]]:
    runs = ctx.store.runs()
    names = [r.name for r in runs]
    states = {r.name: r.state for r in runs}
    labels = {}
    for r in runs:
        progress_text = f"{r.epoch}/{r.epochs}" if r.epochs else f"{r.epoch}"
        labels[r.name] = f"{STATE_STYLE.get(r.state, ('', '•', ''))[1]} {r.name} · {r.state} · {progress_text}"
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
        st.caption(f"No runs yet in `{ctx.store.root}`.")
        return
    current = st.session_state.get("run")
    if current not in names:
        live = [n for n in names if states.get(n) in ("running", "paused", "diverged", "starting", "stopping", "launching")]
        current = st.query_params.get("run") if st.query_params.get("run") in names else (live or names)[0]
        st.session_state["run"] = current
    if st.session_state.get("run_picker") not in names:
        st.session_state["run_picker"] = current
    chosen = st.selectbox(f"Run ({len(names)} in {ctx.store.root.name}/)", names, key="run_picker",
                          format_func=lambda n: labels.get(n, n))
    if chosen != st.session_state.get("run"):
        st.session_state["run"] = chosen
        st.query_params["run"] = chosen
        st.rerun()


# --------------------------------------------------------------------------- status and charts


def _control_signature(state: str, view: RunView) -> tuple:
    hp = (view.status or {}).get("hparams") or {}
    return (view.name, controls.controllable(state), state in ("paused", "diverged"), hp.get("optimizer"))


def _metrics_row(view: RunView, state: str) -> None:
    done, total = progress.epochs_done(view)
    hp = (view.status or {}).get("hparams") or (view.config or {}).get("hparams") or {}
    last = view.last_epoch or {}
    fraction = min(done / total, 1.0) if total else 0.0
    eta = progress.eta_seconds(view, state)
    eta_text = "paused" if state in ("paused", "diverged") else progress.duration(eta)
    st.progress(fraction, text=f"Epoch **{done}** of **{total or '?'}** · ETA {eta_text}")
    cols = st.columns(5)
    cols[0].metric("Epoch", f"{done} / {total or '?'}", border=True)
    cols[1].metric("Learning rate α", f"{hp['lr']:.3g}" if isinstance(hp.get("lr"), (int, float)) else "—", border=True)
    cols[2].metric("Validation loss", f"{last['val_loss']:.4f}" if isinstance(last.get("val_loss"), (int, float)) else "—",
                   border=True)
    cols[3].metric("Validation accuracy",
                   f"{last['val_accuracy']:.1%}" if isinstance(last.get("val_accuracy"), (int, float)) else "—", border=True)
    cols[4].metric("ETA", eta_text, border=True)
    beta = hp.get("beta")
    sps = last.get("samples_per_second")
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


def _notices(ctx: Context, view: RunView, state: str) -> None:
    status = view.status or {}
    if view.missing:
        st.error("This run's folder was deleted while open; the page shows what it had read.", icon=":material/delete:")
    if view.malformed_total:
        where = ", ".join(f"{name}: {n}" for name, n in sorted(view.malformed.items()))
        st.warning(f"Skipped {view.malformed_total} malformed line(s) that are not JSON records ({where}).", icon=":material/warning:")
    if state == "not answering":
        age = progress.heartbeat_age(view)
        pid = status.get("pid")
        gone = not pid_alive(pid, status.get("host"))
        st.error(
            f"The trainer stopped answering: last heartbeat {progress.age_text(age)}"
            + (f", process {pid} is gone" if gone else f", process {pid} does not respond")
            + f". Its last state was **{status.get('state')}**.", icon=":material/power_off:")
        if gone and st.button("Continue this run from its last checkpoint", key=f"resume-{view.name}",
                              icon=":material/restart_alt:", disabled=not ctx.can_steer):
            try:
                launch = ctx.steer.resume_run(view.path)
            except NotPresenter as e:
                read_only(e)
            except (LaunchError, OSError, ValueError) as e:
                st.error(f"Not resumed: {e}")
            else:
                ctx.store.launches[f"{view.name}#resume"] = launch
                st.toast(f"Resuming {view.name} (pid {launch.pid})")
    elif state == "diverged":
        st.warning(f"**Diverged.** {status.get('message') or ''}", icon=":material/local_fire_department:")
    elif state == "failed":
        st.error(f"**Failed.** {status.get('message') or ''}", icon=":material/error:")
        failure = next((e for e in reversed(view.events) if e.get("event") == "failed"), None)
        if failure and failure.get("traceback") and ctx.can_steer:  # paths and code: for the presenter
            with st.expander("Traceback"):
                st.code(failure["traceback"], language="text")
    elif state == "finished":
        how = status.get("message") or "completed"  # the trainer says why it stopped early
        st.success(f"Finished: {how} at epoch {status.get('epoch')}.", icon=":material/flag:")


def _charts(view: RunView, log_loss: bool) -> None:
    config = {"displaylogo": False, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}
    top = st.columns(2)
    top[0].plotly_chart(figure(view, "loss", log_y=log_loss), config=config, key="chart-loss")
    top[1].plotly_chart(figure(view, "accuracy"), config=config, key="chart-accuracy")
    bottom = st.columns(2)
    bottom[0].plotly_chart(figure(view, "lr"), config=config, key="chart-lr")
    bottom[1].plotly_chart(figure(view, "batch", log_y=log_loss), config=config, key="chart-batch")
    st.caption(charts.legend_markdown())


def _journal(view: RunView) -> None:
    commands_tab, events_tab = st.tabs(["Commands", "Trainer events"])
    with commands_tab:
        table = journal.commands_table(view)
        if table.empty:
            st.caption("No commands yet. Steer the run from the sidebar, or with `panda ctl`.")
        else:
            st.dataframe(table, hide_index=True, width="stretch", height=min(38 + 35 * len(table), 320),
                         column_config={"id": st.column_config.TextColumn("id", width="small")})
    with events_tab:
        table = journal.events_table(view)
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
    data = ctx.store.run(ctx.store.path_of(name))
    view = data.view()
    state = view.state()
    signature = _control_signature(state, view)
    previous = st.session_state.get("control_signature")
    st.session_state["control_signature"] = signature
    if previous is not None and previous != signature and previous[0] == signature[0]:
        st.rerun()  # enable or disable the controls to match the run

    title, status_col = st.columns([4, 1], vertical_alignment="center")
    config = view.config or {}
    dataset = (config.get("dataset") or {}).get("name", "")
    title.markdown(f"## {view.name}  {badge(state)}")
    if dataset:
        title.caption(f"{dataset} · {config.get('versions', {}).get('tensorflow', '')} · "
                      f"{', '.join(config.get('devices') or [])} · `{view.path}`")
    status_col.toggle("Log-scale loss", key="log_loss")
    _notices(ctx, view, state)
    _metrics_row(view, state)
    _charts(view, bool(st.session_state.get("log_loss")))
    _journal(view)


# --------------------------------------------------------------------------- controls


def _send(ctx: Context, view: RunView, cmd: str, value=None, checkpoints=None) -> None:
    hp = (view.status or {}).get("hparams") or {}
    try:
        sent = ctx.steer.send(view.path, cmd, value, hparams=hp, checkpoints=checkpoints)
    except NotPresenter as e:
        read_only(e)
        return
    except CommandError as e:
        st.session_state["control_error"] = f"Not sent: {e}"
        return
    st.session_state.setdefault("sent", []).append(sent)
    st.session_state.pop("control_error", None)
    st.toast(f"Sent {sent.label}", icon=":material/send:")


def _sync(key: str, seen_key: str, value, choices, *, log: bool = False) -> None:
    """Move a slider to the run's current value when that value changed (e.g. by a nudge)."""
    if st.session_state.get(seen_key) != value:
        st.session_state[seen_key] = value
        st.session_state[key] = controls.nearest(choices, value, log=log)


def _steered(ctx: Context) -> tuple[str, RunView, str, bool] | None:
    """The chosen run, its view and state, and whether its controls are off; ``None`` before it exists."""
    name = st.session_state.get("run")
    path = ctx.store.path_of(name) if name else None
    if path is None or not ((path / "config.json").exists() or ctx.store.is_open(path)):
        return None  # a run still being launched: nothing to steer yet
    if not ctx.store.contains(path):
        return None  # a symlink out of the run directory: never steered
    view = ctx.store.run(path).view()
    state = view.state()
    live = controls.controllable(state) and state != "not answering"
    return name, view, state, not (live and ctx.can_steer)


@st.fragment
def controls_panel(ctx: Context) -> None:
    steered = _steered(ctx)
    if steered is None:
        return
    name, view, state, off = steered
    hp = (view.status or {}).get("hparams") or (view.config or {}).get("hparams") or {}
    st.subheader("Steer")
    if not ctx.can_steer:
        st.caption(":material/lock: Read-only: steering needs the presenter token.")
    elif off:
        st.caption(f"The run is **{state}**: nothing to steer.")

    run_row = st.columns(2)
    paused = state in ("paused", "diverged")
    if run_row[0].button("Pause", key="pause", icon=":material/pause:", disabled=off or paused, width="stretch"):
        _send(ctx, view, "pause")
    if run_row[1].button("Resume", key="resume", icon=":material/play_arrow:", disabled=off or not paused, width="stretch",
                         type="primary" if paused else "secondary"):
        _send(ctx, view, "resume")
    run_row = st.columns(2)
    if run_row[0].button("Checkpoint", key="checkpoint", icon=":material/save:", disabled=off, width="stretch"):
        _send(ctx, view, "checkpoint")
    if run_row[1].button("Stop", key="stop", icon=":material/stop:", disabled=off, width="stretch",
                         help="Checkpoint, then finish; `panda train --resume` can continue it"):
        _send(ctx, view, "stop")

    # learning rate: a log-scale slider and one-click factors
    lr_key = f"lr-{name}"
    _sync(lr_key, f"lr-seen-{name}", hp.get("lr"), controls.LR_CHOICES, log=True)
    lr = st.select_slider("Learning rate α", options=controls.LR_CHOICES, key=lr_key, format_func=lambda v: f"{v:g}",
                          disabled=off, help="Log scale, 1e-5 to 1; applied from the next step")
    row = st.columns([1.3, 1, 1, 1])
    if row[0].button("Set α", key="set_lr", disabled=off, type="primary", width="stretch"):
        _send(ctx, view, "set_lr", float(lr))
    for col, factor in zip(row[1:], controls.LR_NUDGES):
        if col.button(f"×{factor:g}", key=f"scale_lr-{factor:g}", disabled=off, width="stretch"):
            _send(ctx, view, "scale_lr", factor)

    # beta
    has_beta = hp.get("optimizer") != "sgd" and isinstance(hp.get("beta"), (int, float))
    beta_key = f"beta-{name}"
    _sync(beta_key, f"beta-seen-{name}", hp.get("beta"), controls.BETA_CHOICES)
    beta = st.select_slider("β (momentum · ρ · β₁)", options=controls.BETA_CHOICES, key=beta_key,
                            disabled=off or not has_beta,
                            help="Averages over about 1/(1−β) steps" if has_beta else "Plain sgd has no β")
    row = st.columns([1.3, 1, 1])
    if row[0].button("Set β", key="set_beta", disabled=off or not has_beta, type="primary", width="stretch"):
        _send(ctx, view, "set_beta", float(beta))
    if has_beta:
        for col, factor, label in ((row[1], 0.5, "1−β ×½"), (row[2], 2.0, "1−β ×2")):
            if col.button(label, key=f"nudge_beta-{factor:g}", disabled=off, width="stretch"):
                _send(ctx, view, "set_beta", controls.beta_nudge(float(hp["beta"]), factor))

    # batch size
    batch_key = f"batch-{name}"
    _sync(batch_key, f"batch-seen-{name}", hp.get("batch_size"), controls.BATCH_CHOICES, log=True)
    batch = st.select_slider("Batch size", options=controls.BATCH_CHOICES, key=batch_key, disabled=off,
                             help="Applied from the next epoch")
    row = st.columns([1.3, 1, 1])
    if row[0].button("Set batch", key="set_batch_size", disabled=off, type="primary", width="stretch"):
        _send(ctx, view, "set_batch_size", int(batch))
    current_batch = hp.get("batch_size") if isinstance(hp.get("batch_size"), int) else None
    for col, factor, label in ((row[1], 0.5, "×½"), (row[2], 2, "×2")):
        if col.button(label, key=f"scale_batch-{factor:g}", disabled=off or current_batch is None, width="stretch"):
            _send(ctx, view, "set_batch_size", max(1, int(current_batch * factor)))

    if st.session_state.get("control_error"):
        st.error(st.session_state["control_error"])


@st.fragment(run_every=PICKER_EVERY)
def rewind_panel(ctx: Context) -> None:
    """Rewind to a checkpoint; its own fragment so the list keeps up with a training run."""
    steered = _steered(ctx)
    if steered is None:
        return
    name, view, _, off = steered
    checkpoints = RunDir(view.path).list_checkpoints() if not view.missing else []
    names = [c["name"] for c in checkpoints]
    labels = {c["name"]: f"{c['name']} · epoch {c.get('epoch')} ({c.get('reason')})" for c in checkpoints}
    row = st.columns([2.3, 1], vertical_alignment="bottom")
    target = row[0].selectbox("Rewind to", list(reversed(names)), key=f"rewind-{name}",
                              format_func=lambda n: labels.get(n, n), disabled=off or not names,
                              placeholder="no checkpoint yet")
    if row[1].button("Rewind", key="rewind", icon=":material/history:", disabled=off or not target, width="stretch"):
        _send(ctx, view, "rewind", target, checkpoints=names)
        if st.session_state.get("control_error"):
            st.error(st.session_state.pop("control_error"))


@st.fragment(run_every=LIVE_EVERY)
def answers_panel(ctx: Context) -> None:
    """This tab's recent commands: pending until the trainer answers, then applied or rejected."""
    name = st.session_state.get("run")
    sent = [s for s in st.session_state.get("sent", []) if name and s.run == str(ctx.store.path_of(name))]
    if not sent:
        return
    view = ctx.store.run(ctx.store.path_of(name)).view()
    state = view.state()
    notified = st.session_state.setdefault("notified", set())
    for item in reversed(sent[-4:]):
        result = controls.outcome(item, view.answers, state)
        icon = {"pending": ":material/hourglass_top:", "applied": ":material/check_circle:",
                "rejected": ":material/cancel:"}[result.state]
        color = {"pending": "gray", "applied": "green", "rejected": "red"}[result.state]
        st.markdown(f":{color}[{icon}] {result.text}")
        if result.state != "pending" and item.id not in notified:
            notified.add(item.id)
            st.toast(result.text, icon=icon)


# --------------------------------------------------------------------------- compare


@st.fragment(run_every=5.0)
def compare_view(ctx: Context) -> None:
    runs = ctx.store.runs()
    if len(runs) < 2:
        st.caption("Start a second run to compare runs here.")
        return
    names = [r.name for r in runs]
    current = st.session_state.get("run")
    default = [n for n in names[:8]]
    left, right = st.columns([3, 1])
    chosen = left.multiselect("Runs", names, default=default, key="compare_runs")
    column = right.selectbox("Metric", ["val_loss", "loss", "val_accuracy", "accuracy", "lr"], key="compare_metric")
    views = [ctx.store.run(ctx.store.path_of(n)).view() for n in chosen]
    log_y = column in ("val_loss", "loss", "lr") and bool(st.session_state.get("log_loss")) or column == "lr"
    st.plotly_chart(charts.overlay_figure(views, column, highlight=current, log_y=log_y), key="chart-compare",
                    config={"displaylogo": False})


# --------------------------------------------------------------------------- the page


def render(ctx: Context) -> None:
    if ctx.access.needs_token and not ctx.can_steer and "presenter" not in st.query_params:
        return projector.render(ctx.store)  # a viewer: the projected page (?presenter shows the token box)
    with st.sidebar:
        st.markdown("## :material/monitor_heart: Panda")
        st.caption(f"Run directory `{ctx.store.root}`")
        run_picker(ctx)
        projector.presenter_panel(ctx)
        if ctx.access.needs_token and not ctx.can_steer:
            token_box()
        controls_panel(ctx)
        rewind_panel(ctx)
        answers_panel(ctx)
        with st.expander("Start a new run", icon=":material/add_circle:", expanded=False):
            new_run_form(ctx, key="sidebar-new")

    if not ctx.store.runs() and not ctx.store.launches and not st.session_state.get("run"):
        st.markdown("# Panda")
        st.markdown(f"No runs in `{ctx.store.root}` yet. Start one here — it trains in the background, "
                    "so you can close this page and come back — or from a terminal with "
                    "`panda train --run-dir " + str(ctx.store.root) + " --pace 0.5`.")
        with st.container(border=True):
            new_run_form(ctx, key="welcome", expanded_title="Start training")
        return

    live_view(ctx)
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
