"""A run's interventions read from its journal, placed on the epoch axis, and drawn as markers.

Every chart shares one x axis, epochs (fractional for events and mini-batches, placed by their
optimizer step), so an intervention sits at the same x on every chart. Each intervention —
a learning-rate, beta or batch-size change, a pause, resume, rewind, stop or divergence — is a
dotted vertical line plus a marker at the top whose hover says what happened, who asked and when.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from app.data import RunView
from trainer.contract import commands as cmds



@dataclass(frozen=True)
class Kind:
    label: str
    symbol: str
    color: str


#: How each kind of intervention is drawn.
KINDS = {
    "lr": Kind("learning rate", "triangle-down", "#E69F00"),
    "beta": Kind("beta", "diamond", "#CC79A7"),
    "batch_size": Kind("batch size", "square", "#56B4E9"),
    "pause": Kind("pause", "square-open", "#6B7280"),
    "resume": Kind("resume", "triangle-right", "#009E73"),
    "rewind": Kind("rewind", "circle", "#7B3294"),
    "diverged": Kind("divergence", "x", "#C00000"),
    "checkpoint": Kind("checkpoint", "star", "#999933"),
    "stop": Kind("stop", "square-x", "#111827"),
    "restart": Kind("restart", "circle-open", "#374151"),
    "adopt": Kind("adopted (PBT)", "star-triangle-up", "#009E73"),
    "note": Kind("note", "circle-dot", "#6B7280"),
    "several": Kind("several at once", "circle-cross", "#111827"),
}


@dataclass(frozen=True)
class Intervention:
    """Something that changed the course of a run, placed on the epoch axis."""

    x: float
    kind: str
    text: str
    detail: str
    time: float


# --------------------------------------------------------------------------- the epoch axis


def steps_to_epochs(view: RunView, steps: np.ndarray | Sequence[float]) -> np.ndarray:
    """Fractional epochs for optimizer steps, interpolated between the epochs' closing steps."""
    steps = np.asarray(steps, dtype=float)
    ends = view.epochs["step"]
    epochs = view.epochs["epoch"]
    ok = np.isfinite(ends)
    ends, epochs = ends[ok], epochs[ok]
    if len(ends) == 0:
        return np.zeros_like(steps)
    xp = np.concatenate([[0.0], ends]) if ends[0] > 0 else ends
    fp = np.concatenate([[0.0], epochs]) if ends[0] > 0 else epochs
    out = np.interp(steps, xp, fp)
    if len(xp) >= 2:
        per_epoch = max((xp[-1] - xp[-2]) / max(fp[-1] - fp[-2], 1.0), 1.0)
        beyond = steps > xp[-1]
        out[beyond] = fp[-1] + (steps[beyond] - xp[-1]) / per_epoch
    return out


def position(view: RunView, event: dict) -> float:
    step = event.get("step")
    if isinstance(step, (int, float)) and not isinstance(step, bool) and view.n_epochs:
        return float(steps_to_epochs(view, [step])[0])
    epoch = event.get("epoch")
    return float(epoch) if isinstance(epoch, (int, float)) else 0.0


# --------------------------------------------------------------------------- interventions


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)


def _clock(t) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t)) if isinstance(t, (int, float)) else "?"


def interventions(view: RunView) -> list[Intervention]:
    """The run's interventions on its current history (those undone by a rewind are dropped)."""
    sources = {c["id"]: c.get("source") for c in view.commands if isinstance(c.get("id"), str)}  # who sent each
    hparams: dict = {}
    out: list[Intervention] = []

    def add(kind: str, event: dict, text: str, extra: str = "") -> None:
        # ``text`` may hold a client's words (a note, a path): the hover is Plotly's HTML, so they are
        # escaped there; the records were scrubbed on reading (trainer.contract.jsonsafe.scrub), so all is UTF-8.
        x = position(view, event)
        command_id = event.get("command_id")
        source = sources.get(command_id) if isinstance(command_id, str) else None
        who = f" by {html.escape(str(source))}" if source else ""
        epoch = event.get("epoch") if isinstance(event.get("epoch"), int) else round(x)
        step = event.get("step") if isinstance(event.get("step"), int) else "?"
        detail = (f"<b>{html.escape(text)}</b><br>after epoch {epoch}, step {step}"
                  f"<br>{_clock(event.get('time'))}{who}" + (f"<br>{extra}" if extra else ""))
        out.append(Intervention(x, kind, text, detail, float(event.get("time") or 0.0)))

    for event in view.events:
        name = event.get("event")
        new = event.get("hparams") if isinstance(event.get("hparams"), dict) else None
        if name == "started":
            if event.get("resumed_from"):
                add("restart", event, f"restarted from {event['resumed_from']}")
        elif name == "applied":
            cmd = event.get("cmd")
            if cmd in ("set_lr", "scale_lr", "veto") and new:  # a veto puts back the α before an autopilot stage
                how = {"scale_lr": f" (×{_fmt(event.get('value'))})", "veto": f" (veto of autopilot stage "
                       f"{_fmt(event.get('value'))})"}.get(cmd, "")
                add("lr", event, cmds.describe("set_lr", new.get("lr"), _fmt, before=hparams.get("lr")) + how)
            elif cmd == "set_beta" and new:
                add("beta", event, cmds.describe(cmd, new.get("beta"), _fmt, before=hparams.get("beta")))
            elif cmd == "set_batch_size" and new:
                add("batch_size", event, cmds.describe(cmd, new.get("batch_size"), _fmt, before=hparams.get("batch_size")),
                    "from the next epoch")
            elif cmd == "checkpoint":
                add("checkpoint", event, f"checkpoint {event.get('checkpoint', '')}".strip())
            elif cmd == "stop":
                add("stop", event, "stop requested")
        elif name == "paused":
            add("pause", event, "paused")
        elif name == "resumed":
            add("resume", event, "resumed")
        elif name in ("rewound", "diverged"):
            x = position(view, event)
            out = [i for i in out if i.x <= x + 1e-9]  # what happened after that point was undone
            if name == "rewound":
                add("rewind", event, f"rewound to {event.get('checkpoint')} (epoch {event.get('to_epoch')})",
                    f"branch {event.get('branch')}")
            else:
                add("diverged", event, "diverged", f"{event.get('reason', '')}<br>rolled back to "
                    f"{event.get('checkpoint')} (branch {event.get('branch')})")
        elif name == "adopted":
            source = str(event.get("source_run") or "").rstrip("/").rsplit("/", 1)[-1]
            add("adopt", event, f"adopted {source}'s {event.get('source_checkpoint')}",
                f"α {_fmt(event.get('lr'))}, branch {event.get('branch')}")
        elif name == "note":
            add("note", event, str(event.get("text") or "note"))
        elif name == "lr_observed":  # another Keras callback or the user's code changed α (PandaCallback)
            add("lr", event, cmds.describe("set_lr", event.get("lr"), _fmt, before=event.get("previous")),
                f"by {event.get('source') or 'someone else'}")
        if new:
            hparams = new
    return out


def group_interventions(items: Iterable[Intervention]) -> list[Intervention]:
    """One intervention per position: those at the same step (a pause, a new α, a resume while paused)
    become one of kind ``several`` whose hover lists them all, so no marker hides another."""
    at: dict[float, list[Intervention]] = {}
    for item in items:
        at.setdefault(round(item.x, 6), []).append(item)
    out = []
    for group in at.values():
        if len(group) == 1:
            out.append(group[0])
            continue
        detail = f"<b>{len(group)} interventions</b><br>" + "<br>".join(i.detail for i in group)
        out.append(Intervention(group[0].x, "several", " · ".join(i.text for i in group), detail, group[0].time))
    return out


def intervention_marks(items: Iterable[Intervention]) -> tuple[list[dict], list[dict]]:
    """Marker traces (one per kind, on a hidden 0..1 axis, so they sit at the top) and dotted lines."""
    by_kind: dict[str, list[Intervention]] = {}
    for item in group_interventions(items):
        by_kind.setdefault(item.kind, []).append(item)
    traces, shapes = [], []
    for kind, group in by_kind.items():
        style = KINDS[kind]
        traces.append(dict(
            type="scatter", x=[i.x for i in group], y=[1.0] * len(group), yaxis="y2", mode="markers",
            name=style.label, showlegend=False,  # the page explains the symbols once, under the charts
            marker=dict(symbol=style.symbol, size=13, color=style.color, line=dict(width=1, color="white")),
            hovertext=[i.detail for i in group], hoverinfo="text", cliponaxis=False,
        ))
        shapes += [dict(type="line", xref="x", yref="paper", x0=i.x, x1=i.x, y0=0, y1=1,
                        line=dict(color=style.color, width=1.5, dash="dot"), layer="below")
                   for i in group]
    return traces, shapes


def legend_markdown() -> str:
    """One line that explains the intervention symbols (Streamlit markdown colours)."""
    return " &nbsp; ".join([
        ":orange[▼] learning rate", ":violet[◆] β", ":blue[■] batch size", ":gray[□] pause", ":green[▶] resume",
        ":violet[●] rewind", ":red[✕] divergence", ":gray[★] checkpoint", "⊠ stop", "⊕ several at once",
        ":green[✶] autopilot decision (loss and α charts)",
    ]) + " &nbsp;—&nbsp; hover a marker for who, when and what"
