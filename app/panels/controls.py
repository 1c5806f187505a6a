"""Steering a run from the dashboard: checked commands out, the trainer's answers back.

A control never acts on the trainer directly: it appends one command (a fresh id, ``source
"dashboard"``) to the run's ``commands.jsonl`` and remembers the id; the trainer answers each id
exactly once in ``events.jsonl``. So the page can show *pending* until the answer arrives, then
*applied* or *rejected* with the trainer's reason. Appends are single ``O_APPEND`` writes, so two
tabs (or the CLI) sending at once interleave whole lines: nothing lost, nothing doubled.

Values are checked here first with :mod:`trainer.contract.commands`, so an obviously bad value is refused in
the page instead of travelling to the trainer to be rejected there.

Every write the page makes — a command, a new run, a resume — goes through one :class:`PageWriter`,
which checks the presenter's right *in the code path that writes*. ``disabled=`` on a widget is
only what the browser shows: a forged widget event from a viewer's browser still reaches the
script (Streamlit before 1.61 accepted it), and it stops at :meth:`PageWriter.require`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

from app.serving import launch as launcher
from app.data import inside
from trainer.contract import commands as cmds
from trainer.contract.config import TrainConfig
from trainer.contract.file_records import RunConfig
from trainer.contract.hparams import NO_BETA, OPTIMIZERS, grid, has_beta, step
from trainer.contract.records import Answer
from trainer.contract.rundir import LIVE_STATES, RunDir

#: The command source the journal shows for the dashboard.
SOURCE = "dashboard"
#: One-click learning-rate factors.
LR_NUDGES = (0.1, 0.5, 2.0)
#: The sliders' grids: from the hyperparameter table (its ranges and the dashboard's :data:`CONTROLS`).
LR_CHOICES = grid("lr")
LR_MIN, LR_MAX = LR_CHOICES[0], LR_CHOICES[-1]
BETA_CHOICES = grid("beta")
BATCH_CHOICES = grid("batch_size")


def without_beta(optimizer) -> bool:
    """Whether the table says ``optimizer`` has no β (an unknown one, e.g. a Keras run's, is left to the trainer)."""
    return optimizer in OPTIMIZERS and not has_beta(optimizer)


def nearest(choices: list[float], value: float | None, *, log: bool = False) -> float:
    """The choice closest to ``value`` (on a log scale if asked), for a slider's starting point."""
    if value is None or not isinstance(value, (int, float)) or not math.isfinite(value) or (log and value <= 0):
        return choices[len(choices) // 2]
    key = (lambda c: abs(math.log(c) - math.log(value))) if log else (lambda c: abs(c - value))
    return min(choices, key=key)


def shown(value: float) -> float:
    """``value`` as a control displays it (6 significant digits), so what a click sends is what the user saw.

    >>> shown(0.1 * 3), shown(0.0003 * 2)
    (0.3, 0.0006)
    """
    return float(f"{value:.6g}")


def label(value) -> str:
    """How a control writes a value: the same 6 digits that :func:`shown` keeps."""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def with_current(choices: list, current, *, kind=float) -> list:
    """A slider's options: the round grid plus the run's current value, so the slider can show it exactly.

    >>> with_current([1e-4, 1e-3], 0.0006)
    [0.0001, 0.0006, 0.001]
    """
    if isinstance(current, bool) or not isinstance(current, (int, float)) or not math.isfinite(current):
        return list(choices)
    value = kind(shown(current)) if kind is float else kind(current)
    return sorted(set(choices) | {value})


def beta_nudge(beta: float, factor: float) -> float:
    """Scale the *memory* 1 − β on β's scale in the table (:func:`~trainer.contract.hparams.step`): ``factor``
    0.5 averages over twice as many steps; the result stays in the table's range."""
    return round(step("beta", beta, factor), 6)


@dataclass(frozen=True)
class Sent:
    """A command this page sent, to follow until the trainer answers it."""

    id: str
    run: str
    cmd: str
    value: object
    time: float
    label: str = ""  # in words, from :func:`describe`


def describe(cmd: str, value=None, hparams: dict | None = None, checkpoints: dict[str, int] | None = None) -> str:
    """A command in the page's words: the command table's (``trainer.contract.commands.TABLE``), plus what the page
    knows: ``learning rate ×0.1 → 0.0003``, not ``scale_lr 0.1``.

    ``checkpoints`` maps a checkpoint's name to its epoch, so a rewind says where it goes.

    >>> describe("scale_lr", 0.1, {"lr": 0.003})
    'learning rate ×0.1 → 0.0003'
    >>> describe("set_beta", 0.95), describe("rewind", "ckpt-00012", checkpoints={"ckpt-00012": 48})
    ('β → 0.95', 'rewind to epoch 48 (ckpt-00012)')
    """
    if cmd == "scale_lr":  # with where it leads
        lr = (hparams or {}).get("lr")
        if isinstance(lr, (int, float)) and isinstance(value, (int, float)):
            return f"{cmds.describe(cmd, value, fmt=label)} → {label(lr * value)}"
    if cmd == "rewind":  # with the epoch it goes back to
        epoch = (checkpoints or {}).get(str(value))
        if epoch is not None:
            return cmds.describe(cmd, f"epoch {epoch} ({value})")
    if cmd == "fork":  # with how many candidates
        return f"fork {len((value or {}).get('candidates', []))} candidates"
    return cmds.describe(cmd, value, fmt=label)  # the command table's words


def trainer_kind(config: dict | None) -> str | None:
    """The trainer that writes a run, by ``config.json``'s ``trainer`` (a run older than the field: ``panda train``'s)."""
    kind = (RunConfig.from_json(config) or RunConfig()).trainer or cmds.PANDA_TRAIN
    return kind if kind in cmds.TRAINER_KINDS else None


def offered(cmd: str, config: dict | None) -> bool:
    """Whether the page offers ``cmd`` on a run: the command table says which trainers obey it (a
    ``PandaCallback`` run gets no β, batch size or autopilot control); an unknown trainer gets what every one obeys.

    >>> offered("set_beta", {"trainer": "keras-callback"}), offered("set_beta", {}), offered("set_lr", {"trainer": "?"})
    (False, True, True)
    """
    kind = trainer_kind(config)
    kinds = (kind,) if kind else cmds.TRAINER_KINDS
    return all(cmds.supported(cmd, k) for k in kinds)


def not_offered(cmd: str) -> str:
    """What the page says instead of a control its run's trainer does not obey: the command table's reason."""
    return f":material/block: {cmds.SPECS[cmd].refusal}"


def controllable(state: str) -> bool:
    """Whether a trainer in ``state`` reads commands (a finished, failed or silent one does not)."""
    return state in LIVE_STATES


def check(cmd: str, value=None, *, hparams: dict | None = None, checkpoints: list[str] | None = None):
    """The value a command will carry, or :class:`trainer.contract.commands.CommandError` with the reason.

    Beyond :func:`trainer.contract.commands.validate`, it refuses what the trainer certainly would: a beta
    for plain SGD, a learning-rate factor that leads out of range, an unknown checkpoint.
    """
    hparams = hparams or {}
    command = cmds.validate({"id": "check", "cmd": cmd, "value": value})
    if cmd == "set_beta" and without_beta(hparams.get("optimizer")):
        raise cmds.CommandError(f"{NO_BETA}; start a run with momentum, rmsprop or adam")
    if cmd == "scale_lr" and isinstance(hparams.get("lr"), (int, float)):
        cmds.check_lr(hparams["lr"] * command.value)
    if cmd == "rewind" and checkpoints is not None and str(command.value) not in checkpoints and not str(command.value).isdigit():
        raise cmds.CommandError(f"no checkpoint named {command.value!r}")
    return command.value


def send(run: RunDir, cmd: str, value=None, *, hparams: dict | None = None,
         checkpoints: list[str] | dict[str, int] | None = None) -> Sent:
    """Check, then append one command for the trainer; returns what to follow (see :func:`send_all`)."""
    return send_all(run, [(cmd, value)], hparams=hparams, checkpoints=checkpoints)[0]


def send_all(run: RunDir, plan: list[tuple[str, object]], *, hparams: dict | None = None,
             checkpoints: list[str] | dict[str, int] | None = None) -> list[Sent]:
    """Check every (command, value) of ``plan``, then append them in order: a refused one sends none.

    Each value is checked once, here, and the checked value is what is written.
    ``checkpoints``: the run's checkpoint names, or a name -> epoch map (then a rewind's words say the epoch).
    """
    epochs = checkpoints if isinstance(checkpoints, dict) else None
    names = list(checkpoints) if checkpoints is not None else None
    checked = [(cmd, check(cmd, value, hparams=hparams, checkpoints=names)) for cmd, value in plan]
    return [Sent(id=run.send_command(cmd, value, source=SOURCE), run=str(run.path), cmd=cmd, value=value,
                 time=time.time(), label=describe(cmd, value, hparams, epochs)) for cmd, value in checked]


@dataclass(frozen=True)
class Outcome:
    state: str  # "pending", "applied" or "rejected"
    text: str


def outcome(sent: Sent, answers: dict[str, dict], run_state: str, now: float | None = None) -> Outcome:
    """What became of a sent command, in words for the page."""
    answer = Answer.from_json(answers.get(sent.id))
    if answer is None:
        waited = (now or time.time()) - sent.time
        if controllable(run_state) and run_state != "not answering":
            return Outcome("pending", f"{sent.label}: waiting for the trainer… ({waited:.0f} s)")
        return Outcome("pending", f"{sent.label}: queued — the trainer is {run_state}")
    latency = max((answer.time or sent.time) - sent.time, 0.0)
    if answer.applied:
        return Outcome("applied", f"{sent.label}: applied at epoch {answer.epoch}, step {answer.step} ({latency:.1f} s)")
    return Outcome("rejected", f"{sent.label}: rejected — {answer.reason or 'no reason given'}")


# --------------------------------------------------------------------------- who may write


class NotPresenter(PermissionError):
    """A write from a session that may only watch, or aimed outside the run directory."""


@dataclass(frozen=True)
class PageWriter:
    """The one way the page writes: each method checks the presenter's right, then writes.

    ``can_steer`` is decided once per script run from the session (token or one-time code); the
    page builds one ``PageWriter`` per run and hands it to every control.
    """

    root: Path
    can_steer: bool

    def require(self, run_path: Path | str | None = None) -> None:
        """Raise :class:`NotPresenter` unless this session may write (to ``run_path``)."""
        if not self.can_steer:
            raise NotPresenter("Read-only view: steering needs the presenter token.")
        if run_path is not None and not inside(self.root, run_path):
            raise NotPresenter(f"{run_path} is outside the run directory {self.root}.")

    def send(self, run_path: Path | str, cmd: str, value=None, *, hparams: dict | None = None,
             checkpoints: list[str] | dict[str, int] | None = None) -> Sent:
        return self.send_all(run_path, [(cmd, value)], hparams=hparams, checkpoints=checkpoints)[0]

    def send_all(self, run_path: Path | str, plan: list[tuple[str, object]], *, hparams: dict | None = None,
                 checkpoints: list[str] | dict[str, int] | None = None) -> list[Sent]:
        """The right checked once, each value checked once (:func:`send_all`), then the lines written."""
        self.require(run_path)
        return send_all(RunDir(run_path), plan, hparams=hparams, checkpoints=checkpoints)

    def decide_pbt(self, sweep_path: Path | str, proposal: str, decision: str) -> dict:
        """Approve or veto a PBT proposal: one line appended to the sweep's ``pbt.jsonl``."""
        self.require(sweep_path)
        from trainer.search.pbt import append_decision

        return append_decision(sweep_path, proposal, decision, by="page")

    def start_run(self, name: str, config: TrainConfig) -> launcher.Launch:
        self.require()
        if not inside(self.root, Path(self.root) / name):
            raise launcher.LaunchError(f"a run name must stay inside {self.root}")
        return launcher.start_run(self.root, name, config)

    def resume_run(self, run_path: Path | str, epochs: int | None = None) -> launcher.Launch:
        self.require(run_path)
        return launcher.resume_run(run_path, epochs=epochs)
