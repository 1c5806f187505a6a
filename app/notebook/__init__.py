"""Panda in a notebook: the live page in a cell, beside ``model.fit``.

::

    from app.notebook import show
    show("runs")               # or show("runs/my-run"), show("runs", run="my-run", height=600)

    %load_ext app.notebook
    %panda --run-dir runs --run my-run

    from app.notebook import PandaCallback
    model.fit(x, y, callbacks=[PandaCallback("runs/my-run", show=True)])

Each run directory gets one dashboard server on loopback, started on first use and stopped with
the kernel (:mod:`app.notebook.server`); ``stop()`` stops it by hand.
"""

from __future__ import annotations

from app.notebook.display import DEFAULT_HEIGHT, in_notebook, show
from app.notebook.server import ServerError, servers, stop

__all__ = ["DEFAULT_HEIGHT", "PandaCallback", "ServerError", "in_notebook", "load_ipython_extension", "servers",
           "show", "stop"]


def load_ipython_extension(ipython) -> None:
    """``%load_ext app.notebook``: registers ``%panda``."""
    from app.notebook.magic import load_ipython_extension as load

    load(ipython)


def __getattr__(name: str):
    if name == "PandaCallback":  # TensorFlow loads only for the callback, not for show()
        from app.notebook.callback import PandaCallback

        return PandaCallback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
