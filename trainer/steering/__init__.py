"""Steering: what every Panda trainer does alike when a client steers it.

:class:`~trainer.steering.core.Steering` takes each command from the inbox and dispatches it
(:mod:`~trainer.steering.core`), keeps the run durable and resumable
(:mod:`~trainer.steering.durability`), and asks the trainer only for what
:class:`~trainer.steering.steerable.Steerable` names. Around it: undo
(:mod:`~trainer.steering.undo`), replaying a run's interventions (:mod:`~trainer.steering.replay`),
and advice: the rules that read the curves (:mod:`~trainer.steering.advice_rules`) and the
trainer's side that runs them each epoch and drives the autopilot (:mod:`~trainer.steering.advice`).
No TensorFlow is needed to import it.
"""

from trainer.steering.core import Steering
from trainer.steering.steerable import Steerable

__all__ = ["Steerable", "Steering"]
