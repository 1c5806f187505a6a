"""What a trainer offers its :class:`~trainer.steering.core.Steering`, and the rules a command meets on arrival.

:class:`Steerable` is the protocol both trainers implement (``panda train``'s
:class:`~trainer.training.loop.Trainer` and :class:`~trainer.keras_callback.callback.PandaCallback`): the parts of
steering that differ between them. The functions are the pure rules every received line goes
through before its handler runs: its id must be new and its command valid
(:func:`check_command`), and a pause or resume must make sense in the current state.

>>> from trainer.contract.inbox import Received
>>> check_command(Received(1, {"id": "c-1", "cmd": "set_lr", "value": 0.1}, 0.0, 0), set())
Command(id='c-1', cmd='set_lr', value=0.1)
>>> check_command(Received(2, {"id": "c-1", "cmd": "pause"}, 0.0, 0), {"c-1"})
Traceback (most recent call last):
...
trainer.steering.steerable.DuplicateId: duplicate command id 'c-1'
"""

from __future__ import annotations

from typing import Protocol

from trainer.contract import commands as cmds
from trainer.contract.inbox import Received
from trainer.contract.rundir import WAITING_STATES


class Steerable(Protocol):
    """What a trainer offers its :class:`Steering`: the parts that differ between trainers."""

    #: Which trainer this is (one of :data:`trainer.contract.commands.TRAINER_KINDS`): the commands it obeys.
    kind: str

    def hparams(self) -> dict:
        """The hyperparameters in force, for status and events."""

    def restore(self, meta: dict) -> None:
        """Load checkpoint ``meta``'s weights and optimizer state (the hyperparameters in force stay)."""

    def restore_hparams(self, latest: dict) -> None:
        """Put back the hyperparameters the journal last recorded (``--resume``)."""

    def after_rewind(self, meta: dict) -> None:
        """Drop the epoch in progress after a rewind or rollback to ``meta``."""

    def refuse_checkpoint(self) -> str | None:
        """Why the current state must not be saved now (it diverged), or ``None``."""

    def set_lr(self, value: float) -> None: ...
    def scale_lr(self, factor: float) -> None: ...
    def set_beta(self, value: float) -> None: ...
    def set_batch_size(self, value: int) -> None: ...
    def find_lr(self, spec: dict) -> dict: ...
    def fork(self, spec: dict) -> dict: ...

    def adopt(self, source: dict, spec: dict) -> None:
        """Load another run's checkpoint ``source`` and set ``spec``'s lr/beta; refuse (CommandError) before changing anything."""


class DuplicateId(cmds.CommandError):
    """A line repeating an id already answered: rejected without that id, so the id keeps one answer."""


#: What a handler returns to answer its command later itself (``steering.answer(steering.current_item, ...)``):
#: PandaCallback's ``find_lr`` runs on fit's next batches, so its answer comes when they are done.
DEFERRED = object()


def check_command(item: Received, seen_ids: set[str]) -> cmds.Command:
    """Validate one received line and refuse an id seen before; records the id as seen.

    Never raises anything but :class:`~trainer.contract.commands.CommandError`, whatever the line holds.
    """
    if item.id is not None and item.id in seen_ids:
        raise DuplicateId(f"duplicate command id {item.id!r}")
    if item.problem is not None:
        raise cmds.CommandError(item.problem)
    try:
        command = cmds.validate(item.record)
    except cmds.CommandError:
        raise
    except Exception as e:  # validate is meant to catch everything; a client's line never ends the run
        raise cmds.CommandError(f"invalid command ({type(e).__name__})") from None
    finally:
        if item.id is not None:
            seen_ids.add(item.id)
    return command


def after_pause(state: str) -> str:
    """The state a ``pause`` command leads to from ``state``; refuses a pause that cannot apply."""
    if state == "paused":
        raise cmds.CommandError("already paused")
    if state == "diverged":
        raise cmds.CommandError("already paused after divergence; resume when ready")
    return "paused"


def after_resume(state: str) -> str:
    """The state a ``resume`` command leads to from ``state`` (also out of a divergence)."""
    if state not in WAITING_STATES:
        raise cmds.CommandError(f"not paused (state is {state})")
    return "running"
