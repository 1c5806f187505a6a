"""The advisor inside a trainer: run the rules at each epoch's end, journal advice, and the autopilot.

:class:`Advising` keeps the records the rules read (the run's current history and the last few
epochs' sampled batch losses) and, at each epoch's end, runs :func:`trainer.steering.advice_rules.advise` on the
epochs since the hyperparameters last changed (an applied ``set_lr``/``scale_lr``/``set_beta``/
``set_batch_size`` or a rewind starts the rules afresh: they judge the α in force). A rule that
fires journals one ``advice`` event; the same kind is not journaled again until it clears (its
rule stops firing, or the hyperparameters change).

With the rule autopilot on (``panda train --autopilot --autopilot-method rules``, or the ``set_autopilot``
command) the most urgent new advice of the epoch is also *applied*: the trainer appends its command to
``commands.jsonl`` with ``source: "autopilot"`` and handles it at once, so it is answered and
journaled like any other command. The lookahead autopilot (the default method) applies no advice: its
stages decide α, and advice only triggers one early (:mod:`trainer.training.autopilot_stages`). Pure
Python, no TensorFlow.
"""

from __future__ import annotations

from typing import Any

from trainer.contract import commands as cmds
from trainer.steering.advice_rules import BOUNCE_WINDOW, Advice, Context, advise

#: The command source the journal shows for the autopilot's commands.
SOURCE = "autopilot"
#: Epochs of sampled batch losses kept for the rules (the bouncing rule's window and a margin).
BATCH_EPOCHS_KEPT = BOUNCE_WINDOW + 2


class Advising:
    """Owned by a trainer next to its :class:`~trainer.steering.core.Steering` (which it journals through)."""

    def __init__(self, steering, n_classes: int | None, optimizer: str | None, autopilot: bool = False,
                 method: str = "rules"):
        self.steering = steering
        self.method = method  # rules: apply the advice; lookahead: the advice triggers stages (autopilot_stages)
        self.planner = None  # the lookahead autopilot's StagePlanner (what a veto reads)
        self.context = Context(n_classes=n_classes, optimizer=optimizer, commands=frozenset(cmds.COMMANDS))
        self.autopilot = bool(autopilot)
        self.epochs: list[dict] = []
        self.batches: list[dict] = []
        self.since_epoch = 0  # the rules judge epochs after this one
        self.active: dict[str, Advice] = {}
        self._changes = steering.hparam_changes
        self._branch = steering.branch
        steering.advising = self

    def resumed(self, line: list[dict], events: list[dict]) -> None:
        """After ``--resume``: the history so far; the rules start afresh; the autopilot as last set."""
        self.epochs = list(line)
        self.since_epoch = line[-1]["epoch"] if line else 0
        self._branch, self._changes = self.steering.branch, self.steering.hparam_changes
        self.autopilot = autopilot_on({"autopilot": self.autopilot}, events)

    def set_autopilot(self, value: bool) -> dict:
        self.autopilot = bool(value)
        self.steering.say(f"autopilot {'on' if self.autopilot else 'off'}")
        return {"autopilot": self.autopilot}

    def _restart_if_steered(self, record: dict) -> None:
        """Hyperparameters changed or the run was rewound since the last epoch: judge afresh."""
        steering = self.steering
        if steering.branch != self._branch:  # a rewind or rollback: the history after it is gone
            self.epochs = [r for r in self.epochs if r["epoch"] < record["epoch"]]
            self.batches = [b for b in self.batches if b.get("epoch", 0) < record["epoch"]]
        if steering.branch != self._branch or steering.hparam_changes != self._changes:
            self.since_epoch = record["epoch"] - 1
            self.active.clear()
        self._branch, self._changes = steering.branch, steering.hparam_changes

    def epoch_end(self, record: dict, batches: list[dict]) -> list[Advice]:
        """Run the rules on the epoch just committed; journal new advice, apply one if on autopilot."""
        self._restart_if_steered(record)
        self.epochs.append(record)
        self.batches.extend(batches)
        keep = record["epoch"] - BATCH_EPOCHS_KEPT
        self.batches = [b for b in self.batches if b.get("epoch", 0) > keep]
        recent = [r for r in self.epochs if r["epoch"] > self.since_epoch]
        fired = advise(recent, [b for b in self.batches if b.get("epoch", 0) > self.since_epoch], self.context)
        for kind in [k for k in self.active if k not in {a.kind for a in fired}]:
            del self.active[kind]  # cleared: it may be journaled again when it comes back
        new = [a for a in fired if a.kind not in self.active]
        for i, advice in enumerate(new):
            self.active[advice.kind] = advice
            self.journal(advice, apply=self.autopilot and self.method == "rules" and i == 0)
        return new

    def send(self, cmd: str, value: Any) -> str:
        """A command from the autopilot, handled now: answered and journaled like any other."""
        command_id = self.steering.rundir.send_command(cmd, value, source=SOURCE)
        self.steering.handle_commands()
        return command_id

    def lower_after_divergence(self) -> None:
        """The rules autopilot after a divergence's rollback: α × 0.1, as its own command; the run goes on."""
        lr = self.steering.trainer.hparams().get("lr")
        if isinstance(lr, (int, float)) and lr > 0:
            self.send("set_lr", cmds.check_lr(float(f"{lr * 0.1:.3g}")))

    def journal(self, advice: Advice, apply: bool) -> dict:
        """The ``advice`` event; with ``apply``, send its command as the autopilot and handle it now."""
        steering = self.steering
        command_id = None
        if apply:
            command_id = steering.rundir.send_command(advice.cmd, advice.value, source=SOURCE)
        event = steering.event("advice", **advice.to_event(), autopilot=apply, autopilot_command=command_id)
        steering.say(advice.reason + (" — autopilot applies it" if apply else ""))
        if apply:
            steering.handle_commands()  # answered and journaled like any command, before the next step
        return event


def latest_advice(events: list[dict[str, Any]]) -> dict | None:
    """The newest ``advice`` event that still stands: nothing steered the run since it was given.

    A hyperparameter command applied, a rewind or a divergence after the advice makes it stale.
    """
    for event in reversed(events):
        kind = event.get("event")
        if kind == "advice":
            return event
        if kind in ("rewound", "diverged") or (kind == "applied" and event.get("cmd") in (*cmds.HPARAM_COMMANDS, "stop")):
            return None
    return None


def autopilot_on(config: dict | None, events: list[dict[str, Any]]) -> bool:
    """Whether a run's autopilot is on: ``config.json``'s ``autopilot``, then the last applied ``set_autopilot``.

    >>> autopilot_on({"autopilot": False}, [{"event": "applied", "cmd": "set_autopilot", "autopilot": True}])
    True
    """
    on = bool((config or {}).get("autopilot", False))
    for event in events:
        if event.get("event") == "applied" and event.get("cmd") == "set_autopilot":
            on = bool(event.get("autopilot", on))
    return on
