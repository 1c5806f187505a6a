"""Panda's trainer: one TensorFlow run, steered live through its run directory.

Importing this package is cheap: TensorFlow loads only when training starts, so clients that just
read a run directory (:mod:`trainer.contract.rundir`) never pay for it. ``from trainer import PandaCallback``
loads it (and TensorFlow) on first use.
"""

__version__ = "0.1.0"

__all__ = ["PandaCallback", "__version__"]


def __getattr__(name: str):
    if name == "PandaCallback":
        from trainer.keras_callback.callback import PandaCallback

        return PandaCallback
    raise AttributeError(f"module 'trainer' has no attribute {name!r}")
