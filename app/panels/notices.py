"""What the run page says about a run's state: banners, the advisor's advice, Continue, a launch in progress.

Each notice reads the run's snapshot and, where it offers an action (apply the advice, continue a
finished or gone run), writes through the page's :class:`~app.panels.controls.PageWriter` like every control.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st

from app.panels import controls
from app.data import run_progress as progress
from app.panels import steer as run_controls
from app.panels.controls import NotPresenter
from app.serving.launch import LaunchError
from app.panels.steer import read_only
from app.data.runview import RunView
from trainer.steering.advice import latest_advice
from trainer.steering.advice_rules import not_learning
from trainer.contract.event_records import Advice
from trainer.contract.records import CheckpointMeta, Status
from trainer.contract.rundir import RunDir, pid_alive

if TYPE_CHECKING:
    from app.views.run_page import Context


def diverged_text(view: RunView) -> str:
    """The divergence banner, by epoch: where the run went wrong and which epoch it is back at."""
    event = next((e for e in reversed(view.events) if e.get("event") == "diverged"), None)
    if event is None:
        return f"**Diverged.** {(view.run_status.message if view.run_status else None) or ''}"
    listed = [CheckpointMeta.from_json(c) for c in RunDir(view.path).list_checkpoints()] if not view.missing else []
    epochs = {c.name: c.epoch for c in listed}
    back = epochs.get(event.get("checkpoint"), event.get("epoch"))
    return (f"**Diverged:** {event.get('reason') or 'the loss blew up'}. Rolled back to the end of epoch {back} "
            f"and paused: lower the learning rate, then resume.")


def advice_notice(ctx: Context, view: RunView, state: str) -> None:
    """The advisor's latest advice that still stands, with its one-click action (through the PageWriter).

    A run without an advisor (a ``PandaCallback`` run) still gets the "not learning" notice, from
    the same rule (:func:`trainer.steering.advice_rules.not_learning`).
    """
    if state not in ("running", "paused"):
        return
    advice = Advice.from_json(latest_advice(view.events))
    if advice is None:
        classes = view.run_config.dataset.n_classes
        why = not_learning(view.epochs["loss"], view.epochs["accuracy"], classes)
        if why:
            st.warning(f"**{why.capitalize()}.** Try another learning rate (often ×10 or ×0.1), or rewind.",
                       icon=":material/trending_flat:")
        return
    cmd, value = advice.cmd, advice.value
    hp = run_controls.hparams_of(view)
    action = controls.describe(cmd, value, hp)
    box = st.warning if advice.kind != "exploding" else st.error
    box(f"**Advice at epoch {advice.epoch}:** {advice.reason}"
        + (" — the autopilot applied it." if advice.autopilot else ""), icon=":material/tips_and_updates:")
    if not advice.autopilot and st.button(f"Apply: {action}", key=f"advice-{view.name}-{advice.time}",
                                                 icon=":material/bolt:", disabled=not ctx.can_steer):
        run_controls.send_command(ctx, view, cmd, value)


def notices(ctx: Context, view: RunView, state: str) -> None:
    status = view.run_status or Status()  # typed: a hostile status.json shows defaults, never a traceback
    if view.missing:
        st.error("This run's folder was deleted while open; the page shows what it had read.", icon=":material/delete:")
    if view.notice:
        st.warning(f"Unusable file in this run: {view.notice}.", icon=":material/warning:")
    if view.malformed_total:
        where = ", ".join(f"{name}: {n}" for name, n in sorted(view.malformed.items()))
        st.warning(f"Skipped {view.malformed_total} malformed line(s) that are not JSON records ({where}).", icon=":material/warning:")
    activity = status.activity
    if state in ("running", "paused") and activity and activity.get("kind") in ("find_lr", "fork"):
        st.caption(f"Running a {activity['kind']}: step {activity.get('done') or 0:,} of {activity.get('total') or 0:,}; "
                   "other commands wait for it, Stop abandons it and puts the state back.")
    if state == "not answering":
        age = progress.heartbeat_age(view)
        pid = status.pid
        gone = not pid_alive(pid, status.host)
        st.error(
            f"The trainer stopped answering: last heartbeat {progress.age_text(age)}"
            + (f", process {pid} is gone" if gone else f", process {pid} does not respond")
            + f". Its last state was **{status.state}**.", icon=":material/power_off:")
        if gone:
            _continue_button(ctx, view, "Continue this run from its last checkpoint")
    elif state == "diverged":
        st.warning(diverged_text(view), icon=":material/local_fire_department:")
    elif state == "failed":
        # a failure's message may name files: the presenter's
        st.error(f"**Failed.** {(status.message or '') if ctx.can_steer else ''}", icon=":material/error:")
        failure = next((e for e in reversed(view.events) if e.get("event") == "failed"), None)
        if failure and failure.get("traceback") and ctx.can_steer:  # paths and code: for the presenter
            with st.expander("Traceback"):
                st.code(failure["traceback"], language="text")
    elif state == "finished":
        word, epoch = view.word(state), status.epoch
        if word == "completed":
            st.success(f"Completed all {epoch} epochs.", icon=":material/flag:")
        else:  # stopped by the user, or interrupted: checkpointed, and --resume continues it
            said = (status.message if ctx.can_steer else None) or word  # a message may hold paths
            st.info(f"**{word.capitalize()}** at epoch {epoch}: {said}.", icon=":material/stop_circle:")
        total = status.epochs
        if ctx.can_steer and isinstance(epoch, int) and isinstance(total, int):
            more = total - epoch if total > epoch else MORE_EPOCHS  # what was planned, or another stretch
            _continue_button(ctx, view, f"Continue this run ({more} more epochs)", epochs=epoch + more)


#: How far "Continue this run" takes a run that completed every planned epoch.
MORE_EPOCHS = 20


def _continue_button(ctx: Context, view: RunView, label: str, *, epochs: int | None = None) -> None:
    """Continue a finished or gone run from its last checkpoint, launched as Start a new run launches
    (``panda train --resume`` in the background, through the PageWriter)."""
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


def launch_notice(ctx: Context, name: str) -> bool:
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
