"""The sidebar's Steer panel: pause, resume, the hyperparameter controls, rewind, and the answers.

Every write goes through the page's :class:`app.panels.controls.PageWriter`. The controls show the run's
*current* values: a slider's options are its round grid plus the value in force (so a nudge that
made α 0.0006 shows 0.0006, not the grid's 0.0005), and a click sends exactly the value shown.
The controls form a fragment that reruns only when used, so a slider being dragged is never
redrawn under the pointer; the live view reruns the page when the values in force change.

It holds together as one panel: the controls, the rewind list and the answers share the page's
:class:`~app.panels.controls.PageWriter` and the fragments that rerun them.
"""

from __future__ import annotations

import streamlit as st

from app.panels import controls
from app.panels.controls import NotPresenter
from app.data import RunView
from trainer.steering.advice import autopilot_on
from trainer.contract.commands import CommandError
from trainer.contract.records import CheckpointMeta
from trainer.contract.rundir import WAITING_STATES, RunDir, kept_for_good

PICKER_EVERY = 2.0
LIVE_EVERY = 1.0


def read_only(error: NotPresenter) -> None:
    """What a refused write shows: "Read-only view", once per session however many writes were refused."""
    refused = st.session_state["refused_writes"] = st.session_state.get("refused_writes", 0) + 1
    if refused == 1:
        st.error(str(error), icon=":material/lock:")


#: What each autopilot method does (``config.json``'s ``autopilot_method``), as the toggle's help says it.
AUTOPILOT_HELP = {
    "lookahead": "Every stage the autopilot tries a few α's from the current state for a short lookahead, "
                 "predicts each one's loss at the stage's end and continues with the best (the Autopilot panel shows why)",
    "rules": "The autopilot applies the advisor's advice itself (each as a command from 'autopilot')",
}


def autopilot_method(view: RunView) -> str:
    """The run's autopilot method: ``lookahead`` or ``rules`` (a run older than the option had only the rules)."""
    method = getattr(view.run_config, "autopilot_method", None)
    return method if method in AUTOPILOT_HELP else "rules"


def hparams_of(view: RunView) -> dict:
    return view.hparams


def signature(view: RunView) -> tuple:
    """The values the controls show: when one changes (a nudge applied), the page reruns to show it."""
    hp = hparams_of(view)
    return tuple(controls.label(hp[k]) if isinstance(hp.get(k), (int, float)) else None
                 for k in ("lr", "beta", "batch_size"))


def send_commands(ctx, view: RunView, plan: list[tuple[str, object]], *, hparams: dict | None = None,
                  checkpoints=None) -> None:
    """Send ``plan``'s (command, value) pairs through the page's PageWriter; toast, remember, or say why not.

    Every command is checked before the first is sent: a refused one sends none of them.
    """
    hp = hparams_of(view) if hparams is None else hparams
    try:
        sent = ctx.steer.send_all(view.path, plan, hparams=hp, checkpoints=checkpoints)
    except NotPresenter as e:
        read_only(e)
        return
    except CommandError as e:
        st.session_state["control_error"] = f"Not sent: {e}"
        return
    st.session_state.setdefault("sent", []).extend(sent)
    st.session_state.pop("control_error", None)
    st.toast("Sent: " + ", then ".join(s.label for s in sent), icon=":material/send:")


def send_command(ctx, view: RunView, cmd: str, value=None, checkpoints=None) -> None:
    """Send one command to the run (see :func:`send_commands`)."""
    send_commands(ctx, view, [(cmd, value)], hparams=view.run_status.hparams if view.run_status else {},
                  checkpoints=checkpoints)


def _current_slider(label: str, key: str, grid: list, current, *, kind=float, **kw):
    """A select slider on ``grid`` plus ``current``, moved to ``current`` whenever the run's value changes."""
    options = controls.with_current(grid, current, kind=kind)
    value = options[0] if current is None else (kind(controls.shown(current)) if kind is float else kind(current))
    seen_key = f"{key}-seen"
    if value not in options:
        value = controls.nearest(options, current)
    if st.session_state.get(seen_key) != value or st.session_state.get(key) not in options:
        st.session_state[seen_key] = value
        st.session_state[key] = value
    return st.select_slider(label, options=options, key=key, format_func=controls.label, **kw)


def _steered(ctx) -> tuple[str, RunView, str, bool] | None:
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


def controls_shown_for() -> str | None:
    """The run whose controls the sidebar shows now (the live view reruns the page when it is another)."""
    return st.session_state.get("controls_for")


@st.fragment
def controls_panel(ctx) -> None:
    steered = _steered(ctx)
    if steered is None:
        st.session_state.pop("controls_for", None)
        return
    name, view, state, off = steered
    st.session_state["controls_for"] = name
    hp = hparams_of(view)
    st.subheader("Steer")
    if not ctx.can_steer:
        st.caption(":material/lock: Read-only: steering needs the presenter token.")
    elif off:
        st.caption(f"The run is **{state}**: nothing to steer.")

    run_row = st.columns(2)
    paused = state in WAITING_STATES
    if run_row[0].button("Pause", key="pause", icon=":material/pause:", disabled=off or paused, width="stretch"):
        send_command(ctx, view, "pause")
    if run_row[1].button("Resume", key="resume", icon=":material/play_arrow:", disabled=off or not paused, width="stretch",
                         type="primary" if paused else "secondary"):
        send_command(ctx, view, "resume")
    run_row = st.columns(2)
    if run_row[0].button("Checkpoint", key="checkpoint", icon=":material/save:", disabled=off, width="stretch"):
        send_command(ctx, view, "checkpoint")
    if run_row[1].button("Stop", key="stop", icon=":material/stop:", disabled=off, width="stretch",
                         help="Checkpoint, then finish; `panda train --resume` can continue it"):
        send_command(ctx, view, "stop")
    if controls.offered("set_autopilot", view.config):  # the command table: PandaCallback runs have no advisor
        on, method = autopilot_on(view.config, view.events), autopilot_method(view)
        if st.button(f"Autopilot ({method}) is {'on' if on else 'off'}: turn it {'off' if on else 'on'}",
                     key="autopilot", icon=":material/flight:", disabled=off, width="stretch",
                     type="primary" if on else "secondary", help=AUTOPILOT_HELP[method]):
            send_command(ctx, view, "set_autopilot", not on)
    # each knob's controls only where the run's trainer obeys its command (trainer.contract.commands.TABLE)
    if controls.offered("set_lr", view.config):
        _lr_controls(ctx, view, name, hp, off)
    for cmd, knob_controls in (("set_beta", _beta_controls), ("set_batch_size", _batch_controls)):
        if controls.offered(cmd, view.config):
            knob_controls(ctx, view, name, hp, off)
        else:
            st.caption(controls.not_offered(cmd))

    if st.session_state.get("control_error"):
        st.error(st.session_state["control_error"])


def _lr_controls(ctx, view: RunView, name: str, hp: dict, off: bool) -> None:
    """α: a log-scale slider on the table's grid and one-click factors."""
    lr = _current_slider("Learning rate α", f"lr-{name}", controls.LR_CHOICES, hp.get("lr"), disabled=off,
                         help=f"Log scale, {controls.LR_MIN:g} to {controls.LR_MAX:g}, plus the rate in force; "
                         "applied from the next step")
    row = st.columns([1.3, 1, 1, 1])
    if row[0].button("Set α", key="set_lr", disabled=off, type="primary", width="stretch"):
        send_command(ctx, view, "set_lr", float(lr))
    for col, factor in zip(row[1:], controls.LR_NUDGES):
        if col.button(f"×{factor:g}", key=f"scale_lr-{factor:g}", disabled=off, width="stretch"):
            send_command(ctx, view, "scale_lr", factor)


def _beta_controls(ctx, view: RunView, name: str, hp: dict, off: bool) -> None:
    """β: a slider on the table's grid; nudges scale the memory 1 − β."""
    has_beta = not controls.without_beta(hp.get("optimizer")) and isinstance(hp.get("beta"), (int, float))
    beta = _current_slider("β (momentum · ρ · β₁)", f"beta-{name}", controls.BETA_CHOICES,
                           hp.get("beta") if has_beta else None, disabled=off or not has_beta,
                           help="Averages over about 1/(1−β) steps" if has_beta else controls.NO_BETA.capitalize())
    row = st.columns([1.3, 1, 1])
    if row[0].button("Set β", key="set_beta", disabled=off or not has_beta, type="primary", width="stretch"):
        send_command(ctx, view, "set_beta", float(beta))
    if has_beta:
        for col, factor, label in ((row[1], 0.5, "1−β ×½"), (row[2], 2.0, "1−β ×2")):
            if col.button(label, key=f"nudge_beta-{factor:g}", disabled=off, width="stretch"):
                send_command(ctx, view, "set_beta", controls.beta_nudge(float(hp["beta"]), factor))


def _batch_controls(ctx, view: RunView, name: str, hp: dict, off: bool) -> None:
    """The batch size: a slider on the table's powers of two, halve and double."""
    current_batch = hp.get("batch_size") if isinstance(hp.get("batch_size"), int) else None
    batch = _current_slider("Batch size", f"batch-{name}", controls.BATCH_CHOICES, current_batch, kind=int,
                            disabled=off, help="Applied from the next epoch")
    row = st.columns([1.3, 1, 1])
    if row[0].button("Set batch", key="set_batch_size", disabled=off, type="primary", width="stretch"):
        send_command(ctx, view, "set_batch_size", int(batch))
    for col, factor, label in ((row[1], 0.5, "×½"), (row[2], 2, "×2")):
        if col.button(label, key=f"scale_batch-{factor:g}", disabled=off or current_batch is None, width="stretch"):
            send_command(ctx, view, "set_batch_size", max(controls.BATCH_CHOICES[0], int(current_batch * factor)))


def rewind_default(checkpoints: list[CheckpointMeta], view: RunView, state: str) -> str | None:
    """The checkpoint a rewind offers first: the rollback point after a divergence, else the newest
    one on the run's current history (not one of a branch a rewind abandoned)."""
    names = [c.name for c in checkpoints]
    if state == "diverged":
        rollback = next((e.get("checkpoint") for e in reversed(view.events) if e.get("event") == "diverged"), None)
        if rollback in names:
            return rollback
    done = view.run_status.epoch if view.run_status else None
    current = [c.name for c in checkpoints if not isinstance(done, int) or c.epoch <= done]
    return (current or names or [None])[-1]


def rewind_choices(checkpoints: list[CheckpointMeta], state: str, keep_every) -> list[CheckpointMeta]:
    """The checkpoints a rewind offers: while the run trains only those it keeps for good (a rolling
    one is deleted a few epochs later, under the user's pointer); paused or diverged, all of them.

    >>> listed = [CheckpointMeta(seq=e, epoch=e, step=e, reason="epoch") for e in (5, 6, 7)]
    >>> [c.epoch for c in rewind_choices(listed, "running", 5)]
    [5]
    """
    if state in WAITING_STATES or not isinstance(keep_every, int):
        return checkpoints
    return [c for c in checkpoints if kept_for_good(c.to_json(), keep_every)]


def drops_text(target_epoch, current_epoch) -> str | None:
    """What a rewind to ``target_epoch`` undoes: ``drops epochs 36–48 (13 epochs)``, or ``None``.

    >>> drops_text(35, 48), drops_text(48, 48)
    ('drops epochs 36–48 (13 epochs)', None)
    """
    if not isinstance(target_epoch, int) or not isinstance(current_epoch, int) or target_epoch >= current_epoch:
        return None
    n = current_epoch - target_epoch
    span = f"epoch {current_epoch}" if n == 1 else f"epochs {target_epoch + 1}–{current_epoch}"
    return f"drops {span} ({n} epoch{'s' if n != 1 else ''})"


def _rewind_list(ctx) -> tuple[str, RunView, str, bool, list[CheckpointMeta]] | None:
    """The steered run and the checkpoints its rewind list offers now."""
    steered = _steered(ctx)
    if steered is None:
        return None
    name, view, state, off = steered
    every = view.run_config.checkpoint_every
    every = 1 if every is None else every
    listed = [CheckpointMeta.from_json(c) for c in RunDir(view.path).list_checkpoints()] if not view.missing else []
    checkpoints = rewind_choices(listed, state, every)
    return name, view, state, off, checkpoints


def _label(checkpoint: CheckpointMeta, branch) -> str:
    other = checkpoint.branch != branch and isinstance(branch, int)
    return f"epoch {checkpoint.epoch} · {checkpoint.name}" + (" · abandoned branch" if other else "")


def _picked(key: str, picked_key: str) -> None:
    """The user chose an entry in the Rewind list: it holds until a rewind is applied or it is gone."""
    st.session_state[picked_key] = st.session_state.get(key)


@st.fragment
def rewind_panel(ctx) -> None:
    """Rewind to a checkpoint: a fragment that reruns only when used (or with the page), so the open
    list never changes under the pointer while the run trains (:func:`rewind_notes` says when newer
    checkpoints wait, and what the chosen rewind drops).

    The selection follows the newest checkpoint (or the rollback point after a divergence) while the
    run trains, until the user picks another one, and again once a rewind was applied. Paused, it
    holds what it shows: a user pauses to rewind, and may have picked the very entry the box showed
    (no change, so no event says so); the rolling checkpoints a pause adds never move it.
    """
    listed = _rewind_list(ctx)
    if listed is None:
        return
    name, view, state, off, checkpoints = listed
    epochs = {c.name: c.epoch for c in checkpoints}
    branch = view.run_status.branch if view.run_status else None
    labels = {c.name: _label(c, branch) for c in checkpoints}
    options = [c.name for c in reversed(checkpoints)]
    key, default_key, picked_key = f"rewind-{name}", f"rewind-default-{name}", f"rewind-picked-{name}"
    default = rewind_default(checkpoints, view, state)
    chosen = st.session_state.get(key)
    done = view.run_status.epoch if view.run_status else None
    before = st.session_state.get(f"rewind-epoch-{name}")
    moved = isinstance(before, int) and isinstance(done, int) and done < before  # a rewind (or rollback) happened
    unpicked = chosen == st.session_state.get(default_key) and chosen != st.session_state.get(picked_key)
    if chosen not in options or moved or (unpicked and state != "paused"):
        st.session_state[key] = default  # the user has not picked one: follow the newest
        st.session_state.pop(picked_key, None)
    if state != "paused":  # paused, the box holds; once the run trains again it follows from where it was
        st.session_state[default_key] = default
    st.session_state[f"rewind-epoch-{name}"] = done
    st.session_state[f"rewind-shown-{name}"] = (options, labels, epochs)
    row = st.columns([2.3, 1], vertical_alignment="bottom")
    target = row[0].selectbox("Rewind to", options, key=key, format_func=lambda n: labels.get(n, n),
                              disabled=off or not options, placeholder="no checkpoint yet",
                              on_change=_picked, args=(key, picked_key))
    if row[1].button("Rewind", key="rewind", icon=":material/history:", disabled=off or not target, width="stretch"):
        send_command(ctx, view, "rewind", target, checkpoints=epochs)
        if st.session_state.get("control_error"):
            st.error(st.session_state.pop("control_error"))


@st.fragment(run_every=PICKER_EVERY)
def rewind_notes(ctx) -> None:
    """Under the rewind list, kept current: what the chosen rewind drops, and a refresh when newer
    checkpoints exist than the list shows (the list itself holds still while the run trains)."""
    listed = _rewind_list(ctx)
    if listed is None:
        return
    name, view, state, off, checkpoints = listed
    options, labels, epochs = st.session_state.get(f"rewind-shown-{name}") or ([], {}, {})
    if off:
        return
    target = st.session_state.get(f"rewind-{name}")
    drops = drops_text(epochs.get(target), view.run_status.epoch if view.run_status else None)
    if drops:  # first, so the button below coming and going never moves it
        st.caption(f":orange[:material/warning:] Rewinding to {labels.get(target, target)} {drops}.")
    newer = [c.name for c in checkpoints if c.name not in options]
    if newer or (set(options) - {c.name for c in checkpoints}):
        if st.button(f"Show {len(newer)} newer checkpoint{'s' if len(newer) != 1 else ''}", key="rewind-refresh",
                     icon=":material/refresh:", type="tertiary"):
            st.rerun()


@st.fragment(run_every=LIVE_EVERY)
def answers_panel(ctx) -> None:
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
