"""The viewers' page: made for a projected screen and a phone, not for steering.

A viewer (a session that cannot steer) gets no sidebar of greyed-out controls, no token box and
no local paths: a large state banner, the latest intervention in words, the demo's hint, and the
four charts sized to fit 1280×720 without scrolling, with tick labels of at least 16 px. Columns
stack on a phone.

A room of viewers must not cost the server a core: every chart's JSON (Plotly's ``to_dict`` copy,
its encoding and the element id's hash) is made once per change of the run in
:class:`SharedCharts`, shared by every session, and each session only sends it.
"""

from __future__ import annotations

import hashlib
import html
import json
import math

import plotly.io as pio
import streamlit as st

from app.figures import run_charts as charts
from app.figures.cache import FigureCache
from app.panels.autopilot import projector_part
from app.data import run_progress as progress
from app.serving import scenarios
from app.serving import share
from app.serving.admission import open_for
from app.serving import page_settings as app_settings
from app.data.rundata import RunView
from app.serving.shared import shared
from trainer.contract.jsonl import file_key
from trainer.contract.rundir import LIVE_STATES
from trainer.training.exploration import FORKS

#: Refresh of the viewers' live fragment (seconds).
LIVE_EVERY = 1.0
#: Chart height: two rows, the banner and a line of text fit in 720 px.
CHART_HEIGHT = 268
#: Tick labels and legend (px); titles are two larger. A projector's back row reads 16 px.
FONT = 17
CHART_KINDS = ("loss", "accuracy", "lr", "batch")
BUILDERS = {"loss": charts.loss_figure, "accuracy": charts.accuracy_figure, "lr": charts.learning_rate_figure,
            "batch": charts.batch_loss_figure}
PLOTLY_CONFIG = json.dumps({"displaylogo": False, "displayModeBar": False, "responsive": True})
#: state -> banner colour (background, text)
BANNER_COLORS = {
    "running": ("#DCFCE7", "#14532D"), "paused": ("#FEF3C7", "#78350F"), "diverged": ("#FEE2E2", "#7F1D1D"),
    "failed": ("#FEE2E2", "#7F1D1D"), "not answering": ("#FEE2E2", "#7F1D1D"), "finished": ("#DBEAFE", "#1E3A8A"),
}
CSS = f"""<style>
[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"], [data-testid="stExpandSidebarButton"],
header[data-testid="stHeader"] {{ display: none !important; }}
.block-container, [data-testid="stMainBlockContainer"] {{ padding: 0.6rem 1rem 0.4rem !important; max-width: 100% !important; }}
.panda-banner {{ display: flex; flex-wrap: wrap; gap: 0.2rem 1.4rem; align-items: baseline; padding: 0.35rem 0.9rem;
  border-radius: 0.5rem; font-size: 1.55rem; line-height: 1.35; overflow-wrap: anywhere; }}
.panda-banner b {{ font-size: 1.8rem; text-transform: uppercase; letter-spacing: 0.03em; }}
.panda-line {{ font-size: 1.15rem; margin: 0.15rem 0.2rem 0; overflow-wrap: anywhere; }}
</style>"""


# --------------------------------------------------------------------------- what the page says


def latest_intervention(view: RunView) -> str | None:
    """The run's latest intervention in words: "learning rate ×0.1 at epoch 48 (0.01 → 0.001)"."""
    items = [i for i in charts.interventions(view) if i.kind != "checkpoint"]
    if not items:
        return None
    item = items[-1]
    epoch = max(math.ceil(item.x - 1e-9), 0)
    text = item.text
    if item.kind == "lr" and text.endswith(")") and "(×" in text:  # "learning rate a → b (×f)"
        change, factor = text[:-1].split(" (", 1)
        return f"learning rate {factor} at epoch {epoch} ({change.removeprefix('learning rate ')})"
    return f"{text} at epoch {epoch}"


def banner_html(view: RunView, state: str) -> str:
    """One large line: the state, the run, the epoch, the validation accuracy, the learning rate."""
    done, total = progress.epochs_done(view)
    hp = view.hparams
    last = view.last_record
    background, color = BANNER_COLORS.get(state, ("#F3F4F6", "#111827"))
    parts = [f"<b>{html.escape(state)}</b>", html.escape(view.name), f"epoch {done} / {total or '?'}"]
    if last is not None and last.val_accuracy is not None:
        parts.append(f"val. accuracy {last.val_accuracy:.1%}")
    if isinstance(hp.get("lr"), (int, float)):
        parts.append(f"α {hp['lr']:.3g}")
    spans = "".join(f"<span>{p}</span>" for p in parts)
    return (f'<div class="panda-banner" data-testid="panda-banner" style="background:{background};color:{color}">'
            f"{spans}</div>")


def _line(text: str, key: str) -> None:
    st.markdown(f'<div class="panda-line" data-testid="{key}">{html.escape(text)}</div>', unsafe_allow_html=True)


# --------------------------------------------------------------------------- charts shared by every session


def projected(figure_dict: dict) -> dict:
    """A dashboard figure re-laid for the projector: larger type, shorter, no title margin wasted."""
    layout = figure_dict.setdefault("layout", {})
    layout.update(height=CHART_HEIGHT, font=dict(size=FONT), margin=dict(l=8, r=8, t=44, b=8))
    layout["title"] = {**layout.get("title", {}), "font": dict(size=FONT + 2), "y": 0.97, "yanchor": "top"}
    layout["legend"] = {**layout.get("legend", {}), "font": dict(size=FONT - 1), "y": 1.02}
    for axis in ("xaxis", "yaxis"):
        layout[axis] = {**layout.get(axis, {}), "tickfont": dict(size=FONT), "automargin": True}
        layout[axis]["title"] = {**layout[axis].get("title", {}), "font": dict(size=FONT)}
    layout["xaxis"]["title"]["standoff"] = 2
    return figure_dict


class SharedCharts(FigureCache):
    """Each chart's wire form, made once per change of a run and shared by every session."""

    def __init__(self, size: int = 64):
        super().__init__(size)

    def chart(self, view: RunView, kind: str) -> tuple[str, str]:
        """``(spec, element id)`` of ``kind`` for ``view``'s records."""
        return self.get((str(view.path), view.log_version, kind), lambda: _wire(BUILDERS[kind](view), kind))


def _wire(figure, kind: str) -> tuple[str, str]:
    spec = pio.to_json(projected(figure.to_plotly_json()), validate=False)
    return spec, f"panda-{kind}-{hashlib.md5(spec.encode(), usedforsecurity=False).hexdigest()[:16]}"


def shared_charts() -> SharedCharts:
    """The server's one chart cache (:mod:`app.serving.shared`: a client's "Clear cache" does not empty it)."""
    return shared("projector charts", None, SharedCharts)


def send_chart(spec: str, element_id: str) -> None:
    """Send a ready Plotly spec as Streamlit's chart element, without re-encoding it per session.

    This is what ``st.plotly_chart`` sends, minus its per-call ``to_dict``, JSON encoding and
    hashing; where Streamlit's internals differ (another version), ``st.plotly_chart`` does it.
    """
    try:
        from streamlit.elements.lib.layout_utils import LayoutConfig
        from streamlit.proto.PlotlyChart_pb2 import PlotlyChart

        proto = PlotlyChart(spec=spec, config=PLOTLY_CONFIG, id=element_id, theme="streamlit")
        st._main._enqueue("plotly_chart", proto, layout_config=LayoutConfig(width="stretch", height=CHART_HEIGHT))
    except (ImportError, AttributeError, TypeError, ValueError):
        st.plotly_chart(json.loads(spec), config=json.loads(PLOTLY_CONFIG), theme="streamlit")


def _charts(view: RunView) -> None:
    cache = shared_charts()
    for row in (CHART_KINDS[:2], CHART_KINDS[2:]):
        columns = st.columns(2, gap="small")
        for column, kind in zip(columns, row):
            with column:
                with st.container(key=f"proj-{kind}"):
                    send_chart(*cache.chart(view, kind))


# --------------------------------------------------------------------------- the page


def _chosen_run(store) -> str | None:
    """The run a viewer watches: the one in the URL, else the newest live run, else the newest."""
    runs = store.runs()
    names = [r.name for r in runs]
    wanted = st.query_params.get("run")
    if wanted in names:
        return wanted
    live = [r.name for r in runs if r.state in LIVE_STATES]
    return (live or names or [None])[0]


@st.fragment(run_every=LIVE_EVERY)
def live_projection(store) -> None:
    name = _chosen_run(store)
    if name is None:
        st.markdown('<div class="panda-banner" data-testid="panda-banner"><b>waiting</b>'
                    "<span>for the presenter to start a run</span></div>", unsafe_allow_html=True)
        return
    data = open_for(store, store.path_of(name), trusted=False)  # a viewer: its opens are bounded
    if data is None:
        return
    view = data.view()
    state = view.state()
    st.markdown(banner_html(view, state), unsafe_allow_html=True)
    words = latest_intervention(view)
    message = view.run_status.message if state == "diverged" and view.run_status else None  # a failure's may hold paths
    line = " · ".join(x for x in (f"Latest: {words}" if words else "No intervention yet", message) if x)
    _line(line, "panda-latest")
    if view.notice:
        _line(f"Unusable file in this run: {view.notice}", "panda-notice")
    hint = scenarios.hint(name)
    if hint:
        _line(f"Try: {hint}", "panda-hint")
    words, lookahead = projector_part(view)
    if words:
        _line(words, "panda-autopilot")
    _charts(view)
    if lookahead is not None:  # below the four charts: the lecturer scrolls to it to show why it chose
        with st.container(key="proj-autopilot"):
            send_chart(*shared_charts().get((str(view.path), view.log_version, "autopilot", file_key(view.path / FORKS)),
                                            lambda: _wire(lookahead, "autopilot")))


def render(store) -> None:
    """The whole viewers' page."""
    st.markdown(CSS, unsafe_allow_html=True)
    live_projection(store)


@st.cache_data(show_spinner=False, max_entries=4)
def _qr_png(text: str) -> bytes:
    return share.qr_png(text)


def presenter_panel(ctx) -> None:
    """On the presenter's page (sidebar): the viewers' URL and its QR code, and the demo's hint."""
    view_url = app_settings.load().view_url
    if ctx.can_steer and ctx.access.needs_token and view_url:
        with st.expander("Viewers: scan or type", icon=":material/qr_code_2:", expanded=True):
            st.image(_qr_png(view_url), width=200, caption=view_url)
    hint = scenarios.hint(st.session_state.get("run"))
    if hint:
        st.info(hint, icon=":material/lightbulb:")
