"""The machine a run trains on: the GPU set up for sharing, and what ``config.json`` records of it."""

from __future__ import annotations

import platform
import sys

import keras
import numpy as np
import tensorflow as tf

import trainer


def configure_devices() -> list[str]:
    """Let TensorFlow grow GPU memory as needed (the dashboard may share the card); the devices seen."""
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialized
            pass
    return [d.name.replace("/physical_device:", "") for d in tf.config.list_physical_devices()]


def configure_threads(threads: int | None) -> None:
    """Limit TensorFlow to ``threads`` threads per op pool, so P trials on one machine do not each
    take every core (a sweep gives each trial its share). ``None``: TensorFlow's default (all cores).
    Must run before TensorFlow's first op; later it is too late and is ignored."""
    if not threads:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
        tf.config.threading.set_inter_op_parallelism_threads(int(threads))
    except RuntimeError:  # TensorFlow is already initialized
        pass


def run_record(name: str, trainer_name: str, **fields) -> dict:
    """``config.json`` for a new run: what both trainers record, then each one's own ``fields``."""
    from trainer.contract.rundir import now

    return {
        "name": name, "created": now(), "trainer": trainer_name, **fields,
        "versions": {"panda": trainer.__version__, "python": platform.python_version(),
                     "tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__},
        "devices": configure_devices(),
        "argv": fields.get("argv", sys.argv[1:]),
    }
