"""Compare runs: one metric of several runs on one chart, starting from the run on screen and its siblings."""

from __future__ import annotations

import streamlit as st

from app.figures import run_charts as charts
from app.serving.admission import open_for

#: The most runs a viewer's Compare shows (and reads) at once: no viewer's pick, forged or not, makes the
#: server open every run of a large run directory every few seconds. The presenter's is not limited.
VIEWER_MOST = 8


def compare_default(names: list[str], current: str | None, most: int = 8) -> list[str]:
    """What Compare shows first: the current run and its siblings (same sweep or folder), newest first.

    >>> compare_default(["s1/t2", "b", "s1/t1", "a"], "s1/t1")
    ['s1/t1', 's1/t2']
    """
    if current not in names:
        return names[:most]
    folder = current.rpartition("/")[0]
    siblings = [n for n in names if n != current and n.rpartition("/")[0] == folder]
    return [current] + siblings[:most - 1]


@st.fragment(run_every=5.0)
def compare_view(ctx) -> None:
    runs = ctx.store.runs()
    if len(runs) < 2:
        st.caption("Start a second run to compare runs here.")
        return
    names = [r.name for r in runs]
    current = st.session_state.get("run")
    left, middle, right = st.columns([3, 1, 1], vertical_alignment="bottom")
    pattern = left.text_input("Filter", key="compare_filter", placeholder="part of a name, e.g. a sweep's",
                              help="Only runs whose name (sweep/trial) contains this")
    column = middle.selectbox("Metric", ["val_loss", "loss", "val_accuracy", "accuracy", "lr"], key="compare_metric")
    accuracy = column.endswith("accuracy")  # a percentage: never on a log axis, so the switch is off
    log_y = right.toggle("Log scale", value=True, key="compare_log", disabled=accuracy,
                         help="Accuracy is always linear" if accuracy else "For the loss and the learning rate")
    shown = [n for n in names if pattern.lower() in n.lower()] if pattern else names
    key = f"compare_runs-{current}"  # a new run opened: its siblings become the default
    if key in st.session_state:  # keep what the user picked that the filter hides
        shown += [n for n in st.session_state[key] if n not in shown and n in names]
    most = None if ctx.can_steer else VIEWER_MOST
    chosen = st.multiselect("Runs", shown, default=[n for n in compare_default(names, current) if n in shown], key=key,
                            max_selections=most)[:most]  # a forged selection too
    charted = [n for n in chosen if pattern.lower() in n.lower()] if pattern else chosen  # the filter narrows the chart too
    opened = [open_for(ctx.store, ctx.store.path_of(n), trusted=ctx.can_steer) for n in charted]
    views = [data.view() for data in opened if data is not None]
    labels = {str(ctx.store.path_of(n)): n for n in charted}
    log = column == "lr" or log_y and column in ("val_loss", "loss")
    st.plotly_chart(charts.overlay_figure(views, column, highlight=current, log_y=log, labels=labels),
                    key="chart-compare", config={"displaylogo": False})
