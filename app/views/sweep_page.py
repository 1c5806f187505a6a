"""The Sweeps page: many trials side by side, and a way to hand the promising one to the panda view.

Only the Streamlit layout lives here; the data comes from :mod:`app.data.sweeps` and the figures
from :mod:`app.figures.sweep_charts`. While the sweep runs, a fragment redraws the page every
:data:`REFRESH_EVERY` seconds, reading through one :class:`~app.data.sweeps.TrialCurves` per sweep
that the server keeps for all tabs (:mod:`app.serving.shared`, out of a client's "Clear cache"), so a refresh
parses only appended lines; the charts' wire form is kept per sweep and version of what was read
(:func:`sweep_charts`), so a refresh in which nothing changed builds no figure (a 200-trial sweep's
four figures took ~190 ms a refresh).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

import plotly.io as pio
import streamlit as st
from pandas.api.types import is_bool_dtype, is_numeric_dtype

from app.figures.cache import FigureCache
from app.figures.sweep_charts import CHART_HEIGHT, curves_figure, histograms_figure, parallel_coordinates_figure, score_vs_param_figure
from app.panels.controls import NotPresenter, PageWriter
from app.serving.shared import shared
from app.data.sweeps import (
    SCORE,
    SweepView,
    TrialCurves,
    best_trial,
    counts,
    load_sweep,
    pending,
    score_param,
    spec_text,
    trial_key,
    trials_frame,
)
from trainer.contract.event_records import Proposal
from trainer.contract.rundir import RunDirError
from trainer.search.sweepdir import SweepDir

#: Seconds between refreshes while the sweep runs.
REFRESH_EVERY = 2.0
#: No Plotly toolbar: on a phone it covers the charts' titles (a double click still resets a zoom).
CHART_CONFIG = {"displayModeBar": False}


def trial_curves(sweep_path: str) -> TrialCurves:
    """One incremental reader per sweep folder for the whole server (at most 32): every tab shares it."""
    return shared("sweep curves", sweep_path, TrialCurves, limit=32)


def sweep_charts() -> FigureCache:
    """Each sweep chart's Plotly JSON and height, made once per version of its sweep's data, for every tab."""
    return shared("sweep charts", None, lambda: FigureCache(64))


def _wire(figure) -> tuple[str, int]:
    return pio.to_json(figure, validate=False), int(figure.layout.height or CHART_HEIGHT)


def chart(view: SweepView, key: str, build: Callable) -> None:
    """``st.plotly_chart(build(), key=key)``, from the shared cache when this version was drawn before.

    The element is what ``st.plotly_chart`` sends (its id keeps ``key``: the page's CSS and tests find
    it); where Streamlit's internals differ (another version), ``st.plotly_chart`` does it.
    """
    spec, height = sweep_charts().get((str(view.path), view.version, key), lambda: _wire(build()))
    config = json.dumps(CHART_CONFIG)
    try:
        from streamlit.elements.lib.layout_utils import LayoutConfig
        from streamlit.proto.PlotlyChart_pb2 import PlotlyChart
        from streamlit.runtime.state.common import GENERATED_ELEMENT_ID_PREFIX

        digest = hashlib.md5(f"{spec}{config}".encode(), usedforsecurity=False).hexdigest()
        proto = PlotlyChart(spec=spec, config=config, id=f"{GENERATED_ELEMENT_ID_PREFIX}-{digest}-{key}",
                            theme="streamlit")
        st._main._enqueue("plotly_chart", proto, layout_config=LayoutConfig(width="stretch", height=height))
    except (ImportError, AttributeError, TypeError, ValueError):
        st.plotly_chart(json.loads(spec), key=key, config=CHART_CONFIG)


def babysit(key: str) -> None:
    """Open a trial in the single-run view (its controls work there while it runs)."""
    st.session_state["run"] = key
    st.session_state.pop("run_picker", None)  # let the run picker follow
    st.query_params["run"] = key
    st.rerun()


def render_sweep(sweep_path: Path, *, runs_root: Path | str | None = None,
                 on_babysit: Callable[[str], None] | None = None, writer: PageWriter | None = None) -> None:
    """Draw the sweep page for ``sweep_path`` (a folder with ``sweep.json``).

    ``runs_root`` is the dashboard's run folder (default: the sweep's parent), so "babysit this
    trial" stores the name the single-run view knows. ``on_babysit(key)`` replaces the default
    action (session state + ``?run=`` + rerun), e.g. to ``st.switch_page`` to the run page too.
    ``writer``: the page's one writer (PBT's Approve / Veto); without one the page only watches.
    """
    sweep_path = Path(sweep_path)
    presenter = writer is not None and writer.can_steer  # paths are the presenter's
    if not SweepDir.is_sweep(sweep_path):
        st.error(f"`{sweep_path if presenter else sweep_path.name}` is not a Panda sweep (no sweep.json).")
        return
    curves = trial_curves(str(sweep_path.resolve()))
    try:
        first = load_sweep(sweep_path, curves)
    except RunDirError as e:
        st.error(str(e) if presenter else f"Sweep {sweep_path.name} cannot be read.")  # errors name files
        return
    running = first.sweep.state == "running"

    @st.fragment(run_every=REFRESH_EVERY if running else None)
    def live() -> None:
        view = load_sweep(sweep_path, curves)
        _render(view, runs_root, on_babysit or babysit)
        _render_pbt(view, writer or PageWriter(Path(runs_root or sweep_path.parent), False))

    live()


def render_sweeps(runs_root: Path, *, on_babysit: Callable[[str], None] | None = None,
                  writer: PageWriter | None = None) -> None:
    """The Sweeps page: pick one of the sweeps under ``runs_root`` (``?sweep=NAME``) and draw it."""
    runs_root = Path(runs_root)
    found = sorted(p.name for p in runs_root.iterdir() if SweepDir.is_sweep(p)) if runs_root.is_dir() else []
    presenter = writer is not None and writer.can_steer
    where = runs_root if presenter else "the run directory"  # paths are the presenter's
    if not found:
        st.info(f"No sweeps in `{where}` yet. Start one with "
                f"`panda sweep --run-dir {where} --name my-sweep --trials 8 --parallel 2`.")
        return
    # the address first; then the sweep this tab last showed (browser Back from a trial may come
    # without the query string); then the newest
    wanted = st.query_params.get("sweep")
    if wanted not in found:
        wanted = st.session_state.get("sweep")
    chosen = st.sidebar.selectbox(f"Sweep ({len(found)}{f' in {runs_root.name}/' if presenter else ''})", found,
                                  index=found.index(wanted) if wanted in found else len(found) - 1)
    st.query_params["sweep"] = st.session_state["sweep"] = chosen
    render_sweep(runs_root / chosen, runs_root=runs_root, on_babysit=on_babysit, writer=writer)


def header(column: str) -> str:
    """Every column header in one style: lower-case words, no underscores.

    >>> header("best_val_accuracy"), header("batch_size now"), header("optimizer")
    ('best val accuracy', 'batch size now', 'optimizer')
    """
    return column.replace("_", " ")


def table_columns(frame) -> dict:
    """The trials table's columns: one header style, numbers formatted, and a text column (the
    optimizer, a choice) wide enough for its values, never cut to "momen…"."""
    config = {
        SCORE: st.column_config.ProgressColumn(header(SCORE), min_value=0.0, max_value=1.0, format="%.4f"),
        "best_epoch": st.column_config.NumberColumn(header("best_epoch"), format="%d"),  # blank while running
        "lr": st.column_config.NumberColumn("lr", format="%.3e", help="as the sweep sampled it"),
        "lr now": st.column_config.NumberColumn("lr now", format="%.3e", help="in force now, after decay and steering"),
        "steered": st.column_config.CheckboxColumn(
            "steered", help="changed by hand: an applied set_lr, scale_lr, set_beta, set_batch_size or rewind"),
    }
    for column in frame.columns:
        if column in config:
            continue
        if column != "note" and not is_numeric_dtype(frame[column]) and not is_bool_dtype(frame[column]):
            config[column] = st.column_config.TextColumn(header(column), width="medium")
        else:
            config[column] = header(column)
    return config


def _rounds(n) -> str:
    """How many rounds, as a person writes it.

    >>> _rounds(1), _rounds(3)
    ('1 round', '3 rounds')
    """
    return f"{n} round" + ("" if n == 1 else "s")


def _render(view: SweepView, runs_root, on_babysit: Callable[[str], None]) -> None:
    spec = view.sweep
    settings = spec.settings
    c = counts(view)
    st.subheader(f"Sweep {view.name}")
    best = best_trial(view)
    space_text = " ".join(f"`{name}={spec_text(s)}`" for name, s in view.space.items())
    st.caption(
        f"{spec.sampler or 'random'} search · {settings.get('trials', '?')} trials × {_rounds(settings.get('rounds', 1))} · "
        f"{settings.get('parallel', '?')} at a time · {settings.get('epochs', '?')} epochs · seed {spec.seed} · "
        f"state **{spec.state}** — {space_text}"
    )
    cols = st.columns(5)
    cols[0].metric("Done", c["finished"] + c["stopped"], border=True)
    cols[1].metric("Running", c["running"] + c["stopping"], border=True)
    cols[2].metric("Queued", c["queued"], border=True)
    cols[3].metric("Failed / diverged", c["failed"] + c["diverged"], border=True)
    cols[4].metric("Best val acc", f"{view.trials[best].best_val_accuracy:.4f}" if best else "—",
                   delta=best, delta_color="off", border=True)
    rounds = spec.rounds
    if len(rounds) > 1:
        with st.expander("Coarse to fine: the space of each round"):
            for r in rounds:
                around = ", ".join(r.around) or "—"
                st.markdown(f"**Round {r.round}** (around {around}): "
                            + " ".join(f"`{n}={spec_text(r.space[n])}`" for n in view.space if n in r.space))

    frame = trials_frame(view)
    left, right = st.columns([3, 2])
    with left:
        chart(view, f"sweep-curves-{view.name}", lambda: curves_figure(view))
    with right:
        chart(view, f"sweep-lr-{view.name}", lambda: score_vs_param_figure(view, score_param(view)))

    st.markdown("**Trials** — click a column to sort, a row to select it")
    event = st.dataframe(
        frame, hide_index=True, on_select="rerun", selection_mode="single-row", key=f"sweep-table-{view.name}",
        column_config=table_columns(frame),
    )
    selected_rows = (event.selection.rows if event is not None and hasattr(event, "selection") else []) or []
    names = list(frame["trial"])
    default = names[selected_rows[0]] if selected_rows else (best or (names[0] if names else None))
    if names:
        pick_col, button_col = st.columns([3, 1])
        chosen = pick_col.selectbox("Trial", names, index=names.index(default) if default in names else 0,
                                    key=f"sweep-pick-{view.name}-{default}",
                                    format_func=lambda n: f"{n} · {view.trials[n].state} · "
                                    + (f"{view.trials[n].best_val_accuracy:.4f}" if view.trials[n].best_val_accuracy is not None else "no score"))
        live = view.trials[chosen].state in ("running", "stopping")
        button_col.markdown("&nbsp;")
        if button_col.button("Babysit this trial", icon=":material/visibility:", key=f"sweep-babysit-{view.name}", type="primary",
                             help="open it in the single-run view" + (" — it is still running, so the controls work" if live else "")):
            on_babysit(trial_key(view, chosen, runs_root))

    chart(view, f"sweep-parcoords-{view.name}", lambda: parallel_coordinates_figure(view))
    st.markdown("**Sampled values**, each on its own scale")
    params = view.searched()
    for start in range(0, len(params), 3):  # three to a row; Streamlit stacks them on a phone
        for col, param in zip(st.columns(3), params[start:start + 3]):
            with col:
                chart(view, f"sweep-hist-{view.name}-{param}", lambda: histograms_figure(view, params=[param]))



def _render_pbt(view: SweepView, writer: PageWriter) -> None:
    """PBT's proposals waiting for a person: Approve / Veto (the presenter only, through the PageWriter)."""
    settings = view.sweep.settings
    if settings.get("scheduler") != "pbt" and not view.pbt:
        return
    import time

    waiting = pending(view)
    done = sum(p.get("state") == "applied" for p in view.pbt.values())
    st.markdown(f"**Population-based training** — {len(waiting)} proposal(s) waiting · {done} exploit(s) applied"
                + (" · `--auto`: applied at once" if settings.get("auto") else ""))
    if waiting and not writer.can_steer:
        st.caption("Read-only view: approving or vetoing needs the presenter token.")
    for p in filter(None, map(Proposal.from_json, waiting)):  # typed: a hostile pbt.jsonl shows blanks, never a crash
        pid = p.proposal
        left = f" · applied on its own in {max(0, p.deadline - time.time()):.0f} s" if p.deadline is not None else ""
        beta = f", β {p.beta:.4g}" if p.beta is not None else ""
        text_col, yes_col, no_col = st.columns([6, 1, 1])
        text_col.markdown(
            f"`{pid}` **{p.target}** ({p.target_score or 0:.4f}) → copy **{p.source}** "
            f"({p.source_score or 0:.4f}, {p.checkpoint}) with α {p.lr or 0:.4g}{beta}{left}")
        for col, label, decision, icon in ((yes_col, "Approve", "approved", ":material/check:"),
                                           (no_col, "Veto", "vetoed", ":material/block:")):
            if col.button(label, key=f"pbt-{view.name}-{pid}-{decision}", icon=icon, disabled=not writer.can_steer):
                try:
                    writer.decide_pbt(view.path, pid, decision)
                except NotPresenter as e:
                    st.warning(str(e))
                else:
                    st.rerun()  # drawn again from pbt.jsonl: the proposal is decided, its buttons gone
