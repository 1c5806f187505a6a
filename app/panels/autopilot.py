"""The Autopilot panel: its share of the run's compute, its latest decision and why, the lookahead's curves
(:mod:`app.figures.autopilot_charts`), and for the presenter only, Veto and Undo beside it.

Shown to everyone (the projector shows the same words and chart, :func:`projector_part`); the summary
and figure come from :func:`app.figures.cache.autopilot`, made once per change for every session. Veto
sends ``veto`` with the decision's stage through the page's :class:`app.panels.controls.PageWriter`, as
every control does, and the answers panel says whether the trainer applied it.
"""

from __future__ import annotations

import streamlit as st

from app.data import RunView
from app.data import autopilot as ap
from app.panels import controls
from app.figures.cache import autopilot
from app.panels.steer import autopilot_method, send_command
from trainer.contract.event_records import explore_share
from trainer.steering.advice import autopilot_on


def share(view: RunView, summary: ap.Summary) -> str:
    """``Autopilot: N decisions · K % of steps spent exploring`` from the status (every heartbeat) and the journal."""
    status = view.run_status
    percent = explore_share(status.step, status.explore_steps) if status else None
    return ap.share_text(summary.count, percent)


def shown(view: RunView, summary: ap.Summary) -> bool:
    """Whether the run has a stage autopilot to show: it decided something, or the lookahead one is on (the rule
    autopilot's actions are the charts' α markers, by ``autopilot``)."""
    return summary.count > 0 or (autopilot_on(view.config, view.events) and autopilot_method(view) == "lookahead")


def headline(summary: ap.Summary) -> str | None:
    """``Stage 3 (epoch 7): kept α=0.01: lowest predicted loss 0.21 at step 110``, or ``None`` before a decision."""
    latest = summary.latest
    if latest is None:
        return None
    where = f" (epoch {latest.epoch})" if latest.epoch is not None else ""
    return f"Stage {latest.stage if latest.stage is not None else '?'}{where}: {summary.sentence}"


def autopilot_panel(ctx, view: RunView, state: str, off: bool) -> None:
    """The panel under the run's charts (nothing when the run has no autopilot)."""
    summary, figure = autopilot(view)
    if not shown(view, summary):
        return
    with st.container(border=True, key="autopilot-panel"):
        st.markdown(f"**:material/flight: {share(view, summary)}**")
        words = headline(summary)
        if words is None:
            st.caption("No decision yet: the first comes at the end of the first stage.")
            return
        latest = summary.latest
        st.markdown(f":gray-badge[vetoed] {words}" if latest.vetoed else words)
        if figure is not None:
            st.plotly_chart(figure, key=f"autopilot-{view.name}", config={"displayModeBar": False})
        if ctx.can_steer and controls.offered("veto", view.config):  # viewers never see the buttons (not even greyed)
            _veto_row(ctx, view, latest, off)


def _veto_row(ctx, view: RunView, latest: ap.Decision, off: bool) -> None:
    row = st.columns(2)
    if row[0].button(f"Veto stage {latest.stage}", key="veto", icon=":material/block:", width="stretch",
                     disabled=off or not latest.vetoable,
                     help="Put α back to where it was before this decision; the autopilot keeps it for the next stage"):
        send_command(ctx, view, "veto", latest.stage)
    if row[1].button("Undo", key="autopilot-undo", icon=":material/undo:", disabled=off, width="stretch",
                     help="Back to the checkpoint and hyperparameters before the last change or rewind"):
        send_command(ctx, view, "undo")
    if st.session_state.get("control_error"):
        st.error(st.session_state.pop("control_error"))


def projector_part(view: RunView) -> tuple[str | None, object]:
    """For the viewers' page: one line (share and the latest decision) and the lookahead figure, or ``(None, None)``."""
    summary, figure = autopilot(view)
    if not shown(view, summary):
        return None, None
    words = headline(summary)
    return share(view, summary) + (f" · {words}" if words else ""), figure
