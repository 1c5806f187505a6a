"""``PandaCallback(autopilot=True)``: what the autopilot can do inside a Keras ``model.fit``, honestly.

The lookahead autopilot (``panda train``'s default) forks candidate α's from the current state and
trains each on the *same* batches, then measures them on validation data. A callback never holds
fit's data — Keras hands it one batch at a time, once — so it cannot fork, and asking for
``autopilot_method="lookahead"`` is refused with that reason. What it can do, it does:

* **rules** — the advisor (:mod:`trainer.steering.advice`) reads each epoch's record and sampled batch
  losses and its most urgent new advice is applied as a command with ``source: "autopilot"``
  (journaled and undoable like any command), as ``panda train --autopilot-method rules`` does;
* **divergence without a pause** — a non-finite loss rolls back to the last checkpoint as the guard
  does, then α is set to a tenth and ``fit`` goes on (without the autopilot it pauses for a person).
"""

from __future__ import annotations

from trainer.contract.rundir import current_line
from trainer.steering.advice import Advising

#: The methods a callback can run, and why not the other.
METHODS = ("rules",)
LOOKAHEAD_REFUSAL = ("PandaCallback cannot run the lookahead autopilot: it forks candidate learning rates from the "
                     "current state on the same batches, and a callback never holds fit's data (Keras hands it "
                     "one batch at a time). Use autopilot_method='rules' (the advisor's advice, applied), or "
                     "panda train for the lookahead stages")
#: Keras optimizer classes -> the advisor's names (its "α already high" thresholds).
OPTIMIZER_NAMES = {"SGD": "sgd", "RMSprop": "rmsprop", "Adam": "adam", "AdamW": "adam"}


def check_method(autopilot: bool, method: str) -> str:
    """The method, or ``ValueError``: lookahead (or an unknown word) is refused with the reason."""
    if method == "lookahead" and autopilot:
        raise ValueError(LOOKAHEAD_REFUSAL)
    if method not in (*METHODS, "lookahead"):
        raise ValueError(f"autopilot_method must be 'rules' for PandaCallback, got {method!r}")
    return method


def optimizer_name(optimizer) -> str | None:
    """The advisor's name for a Keras optimizer (SGD with momentum is ``momentum``); ``None`` when unknown."""
    name = OPTIMIZER_NAMES.get(type(optimizer).__name__)
    if name == "sgd" and float(getattr(optimizer, "momentum", 0) or 0) > 0:
        return "momentum"
    return name


class CallbackAutopilot:
    """The rule autopilot and the autonomous divergence recovery of one :class:`PandaCallback`."""

    def __init__(self, callback, on: bool):
        self.cb = callback
        self.on = bool(on)
        self.advising: Advising | None = None

    def opened(self, reopened: bool) -> None:
        """The run is open: an advisor for the model's class count and optimizer (only when on)."""
        if not self.on:
            return
        model, steering = self.cb.model, self.cb.steering
        shape = getattr(model, "output_shape", None)
        n_classes = shape[-1] if isinstance(shape, tuple) and isinstance(shape[-1], int) else None
        self.advising = Advising(steering, n_classes, optimizer_name(self.cb.optimizer), autopilot=True, method="rules")
        if reopened:
            run = steering.rundir
            self.advising.resumed(current_line(run.read_metrics()), run.read_events())

    def epoch_end(self, record: dict, batches: list[dict]) -> None:
        if self.advising is not None:
            self.advising.epoch_end(record, batches)

    def diverged(self, reason: str) -> bool:
        """Roll back, then α × 0.1 as the autopilot's command, and go on; ``False`` when off (the guard pauses)."""
        if not self.on:
            return False
        steering = self.cb.steering
        steering.diverge(reason, wait=False)
        if steering.state == "running":
            self.advising.lower_after_divergence()
        steering.handle_commands()
        return True
