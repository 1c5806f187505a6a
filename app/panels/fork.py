"""The fork overlay: after a ``fork`` that asked (``pick: "ask"``, the run paused), every candidate's
short loss curve on one figure, its validation score, and one "continue with this one" per candidate.

A candidate's button sends, through the page's :class:`app.panels.controls.PageWriter`, the hyperparameters
the candidate set (``set_lr`` / ``set_beta`` / ``set_batch_size``, in that order, each checked
before any is sent), then ``resume``. The candidates come from the ``forks.jsonl`` line of the
newest ``fork_result`` event (docs/run-directory.md); the overlay shows while the run is paused
and has not resumed since.
"""

from __future__ import annotations

import math
from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

from app.data.autopilot import AUTOPILOT_PICK
from app.panels.steer import send_commands
from trainer.training.exploration import FORKS
from trainer.contract.file_records import ForkCandidate, ForkRecord
from trainer.contract.rundir import read_jsonl

#: A candidate's hyperparameter and the command that sets it, in the order they are sent.
SETTERS = (("lr", "set_lr"), ("beta", "set_beta"), ("batch_size", "set_batch_size"))


def pending_fork(events: list[dict], state: str) -> dict | None:
    """The newest ``fork_result`` if it waits for the user's choice: it asked, and the run is paused since.

    >>> pending_fork([{"event": "fork_result", "pick": "ask"}], "paused")["pick"]
    'ask'
    >>> pending_fork([{"event": "fork_result", "pick": "ask"}, {"event": "resumed"}], "paused") is None
    True
    >>> pending_fork([{"event": "fork_result", "pick": "ask"}, {"event": "fork_result", "pick": "autopilot"}], "paused")
    {'event': 'fork_result', 'pick': 'ask'}
    """
    if state != "paused":
        return None
    for event in reversed(events or []):
        if event.get("event") == "resumed":
            return None
        if event.get("event") == "fork_result" and event.get("pick") != AUTOPILOT_PICK:  # the autopilot's: decided
            return event if event.get("pick") == "ask" else None
    return None


def fork_record(run_path: Path | str, command_id: str | None) -> ForkRecord | None:
    """The whole ``forks.jsonl`` line of the fork ``command_id`` (the newest whole line if it has no id), never
    an autopilot's lookahead (``pick: "autopilot"``: decided already, nothing to choose)."""
    for record in map(ForkRecord.from_json, reversed(read_jsonl(Path(run_path) / FORKS))):  # torn last line left out
        if record is None or record.pick == AUTOPILOT_PICK:
            continue
        if command_id is None or record.command_id == command_id:
            return record
    return None


def commands_for(candidate: ForkCandidate) -> list[tuple[str, object]]:
    """What continuing with ``candidate`` sends: its hyperparameters' setters, then ``resume``.

    >>> commands_for(ForkCandidate.from_json({"candidate": {"batch_size": 64, "lr": 0.01}}))
    [('set_lr', 0.01), ('set_batch_size', 64), ('resume', None)]
    """
    chosen = candidate.candidate
    return [(cmd, chosen[key]) for key, cmd in SETTERS if chosen.get(key) is not None] + [("resume", None)]


def _number(value, spec: str = ".3g") -> str:
    return format(value, spec) if isinstance(value, (int, float)) and math.isfinite(value) else "—"


def describe(i: int, candidate: ForkCandidate) -> str:
    """``"1: α 0.01 · val loss 0.42"``: the candidate's own settings and its validation score."""
    chosen = candidate.candidate
    names = {"lr": "α", "beta": "β", "batch_size": "batch"}
    settings = ", ".join(f"{names[k]} {_number(chosen[k])}" for k, _ in SETTERS if chosen.get(k) is not None)
    return f"{i + 1}: {settings} · val loss {_number(candidate.val_loss)}"


def fork_figure(record: ForkRecord) -> go.Figure:
    """Every candidate's short loss curve against its steps, named with its validation score."""
    fig = go.Figure()
    for i, candidate in enumerate(record.candidates):
        curve = candidate.curve
        fig.add_scatter(x=[p["step"] for p in curve], y=[p["loss"] for p in curve], mode="lines",
                        name=describe(i, candidate))
    fig.update_xaxes(title="fork step")
    fig.update_yaxes(title="loss")
    fig.update_layout(height=280, margin={"l": 10, "r": 10, "t": 10, "b": 10}, title=None,
                      legend={"orientation": "h", "y": -0.3})
    return fig


def continue_with(ctx, view, candidate: ForkCandidate) -> None:
    """Send the candidate's setters, then resume: all checked first, nothing sent for a viewer."""
    send_commands(ctx, view, commands_for(candidate))


def fork_overlay(ctx, name: str, view, state: str, off: bool) -> None:
    """The overlay, when the newest fork waits for the user's choice (else nothing)."""
    result = pending_fork(view.events, state)
    record = fork_record(view.path, result.get("command_id")) if result else None
    if record is None or not record.candidates:
        return
    st.markdown("**Fork: pick a candidate**")
    st.plotly_chart(fork_figure(record), key=f"fork-{name}", config={"displayModeBar": False})
    best = record.best
    for i, candidate in enumerate(record.candidates):
        st.caption(describe(i, candidate) + (" (best)" if i == best else "")
                   + f" · val accuracy {_number(candidate.val_accuracy)}")
        if st.button("continue with this one", key=f"fork_pick-{i}", disabled=off, width="stretch",
                     type="primary" if i == best else "secondary"):
            continue_with(ctx, view, candidate)
