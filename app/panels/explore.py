"""The sidebar's Explore panel: find α (the learning-rate finder's curve, with 'apply'), undo, and the
fork overlay when a fork waits for the user's choice (:mod:`app.panels.fork`).

Both write through the page's :class:`app.panels.controls.PageWriter` (as every control does): "Find α"
sends ``find_lr``, "Apply" sends ``set_lr`` with the finder's suggestion, "Undo" sends ``undo``.
The curve is the run's newest ``lr_finder.jsonl`` line: loss against α on a log axis, the
smoothed loss, and the suggestion marked.
"""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

from app.panels.fork import fork_overlay
from app.panels.steer import LIVE_EVERY, _steered, send_command
from trainer.training.exploration import LR_FINDER
from trainer.contract.file_records import FinderRecord
from trainer.contract.rundir import read_jsonl


def latest_finding(run_path: Path | str) -> FinderRecord | None:
    """The newest whole line of ``lr_finder.jsonl``, or ``None`` (no finder run yet, or nothing readable).

    >>> latest_finding("/nonexistent") is None
    True
    """
    records = read_jsonl(Path(run_path) / LR_FINDER)  # a torn last line is left out
    return next((r for r in map(FinderRecord.from_json, reversed(records)) if r is not None), None)


def finder_figure(record: FinderRecord) -> go.Figure:
    """Loss against α (log axis), raw and smoothed, with the suggestion and the steepest descent marked."""
    points = [p for p in record.points if p["lr"] is not None]
    lrs = [p["lr"] for p in points]
    fig = go.Figure()
    fig.add_scatter(x=lrs, y=[p["loss"] for p in points], mode="lines", name="loss",
                    line={"width": 1, "color": "rgba(100,100,100,0.5)"})
    fig.add_scatter(x=lrs, y=[p["smoothed"] for p in points], mode="lines", name="smoothed")
    suggestion = record.suggestion
    for key, text, dash, where in (("lr", "suggested", "solid", "top right"), ("steepest", "steepest", "dot", "bottom left")):
        value = suggestion.get(key)
        if value is None or value <= 0:
            continue
        if key == "steepest" and (not lrs or value <= min(lrs) * 1.0001):
            continue  # the ramp's first α: "steepest" there says nothing
        # two labels at two heights and sides, so they never print on top of each other
        fig.add_vline(x=value, line_dash=dash, line_color="green" if key == "lr" else "gray",
                      annotation_text=f"{text} {value:.2g}", annotation_position=where)
    fig.update_xaxes(type="log", title="learning rate α")
    fig.update_yaxes(title="loss")
    fig.update_layout(height=260, margin={"l": 10, "r": 10, "t": 10, "b": 10}, showlegend=False)
    return fig


@st.fragment(run_every=LIVE_EVERY)
def explore_panel(ctx) -> None:
    """Find α, Undo, and what they and a fork produce: a timed fragment, so a finder's curve or a
    fork's candidates appear the moment the trainer writes them (it holds only buttons: nothing a
    user drags is redrawn under the pointer)."""
    steered = _steered(ctx)
    if steered is None:
        return
    name, view, state, off = steered
    row = st.columns(2)
    if row[0].button("Find α", key="find_lr", icon=":material/search:", disabled=off, width="stretch",
                     help="Ramp α from 1e-6 to 1 over 100 steps from the current state, then put the state back exactly"):
        send_command(ctx, view, "find_lr", {})
    if row[1].button("Undo", key="undo", icon=":material/undo:", disabled=off, width="stretch",
                     help="Back to the checkpoint and hyperparameters before the last change or rewind"):
        send_command(ctx, view, "undo")
    fork_overlay(ctx, name, view, state, off)  # a fork waiting for the user's choice (app/panels/fork.py)
    record = latest_finding(view.path)
    if record is not None:
        st.plotly_chart(finder_figure(record), key=f"lr-finder-{name}", config={"displayModeBar": False})
        lr = record.lr
        if lr is not None and st.button(f"Apply α = {lr:.3g}", key="apply_lr", disabled=off, type="primary",
                                        width="stretch"):
            send_command(ctx, view, "set_lr", lr)
    if st.session_state.get("control_error"):
        st.error(st.session_state.pop("control_error"))
