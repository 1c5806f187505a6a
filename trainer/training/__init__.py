"""Training: ``panda train``'s own TensorFlow trainer.

The epoch loop (:mod:`~trainer.training.loop`) around compiled steps
(:mod:`~trainer.training.steps`), what each command touches there and the divergence policy
(:mod:`~trainer.training.train_knobs`), the model, data, optimizers and devices, checkpoints and
in-memory snapshots, exploration from the current state (finder, forks:
:mod:`~trainer.training.exploration`), adopting another run's state
(:mod:`~trainer.training.adopt`) and the network's insides (:mod:`~trainer.training.internals`).
Nothing is imported here: importing a module of this package loads TensorFlow, and the
contract and the control path must not pay for it.
"""

__all__: list[str] = []
