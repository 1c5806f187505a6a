"""Panda's trainer: one TensorFlow run, steered live through its run directory.

Importing this package is cheap: TensorFlow loads only when training starts, so clients that just
read a run directory (:mod:`trainer.rundir`) never pay for it.
"""

__version__ = "0.1.0"
