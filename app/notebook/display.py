"""Where the page goes: an iframe in the cell, Colab's port proxy, or a plain link.

The page embedded is the single-run view of the run asked for (``?run=NAME``) in Streamlit's
embed mode (``?embed=true``: no header, toolbar or footer) and Panda's compact mode (``?compact``:
no page links, run directory, "Start a new run" or "Compare runs"), its Steer panel in the sidebar.
"""

from __future__ import annotations

import html
import importlib
import sys
from pathlib import Path
from urllib.parse import urlencode

from trainer.contract.rundir import CONFIG
from app.serving.page_settings import COMPACT
from app.notebook.server import HOST, START_TIMEOUT, serve

#: The iframe's height in pixels: the charts and the Steer panel without scrolling the notebook.
DEFAULT_HEIGHT = 800


def page_path(run: str | None) -> str:
    """The compact page's path and query, for run ``run`` (or the page's own choice).

    A name that is no UTF-8 text (lone surrogates) cannot travel in a URL: the page then picks.

    >>> page_path("my run&co")
    '/?run=my+run%26co&embed=true&compact=1'
    >>> page_path(chr(0xDCFF)), page_path(None)
    ('/?embed=true&compact=1', '/?embed=true&compact=1')
    """
    try:
        query = {"run": run.encode("utf-8").decode("utf-8")} if run else {}
    except UnicodeEncodeError:
        query = {}
    return "/?" + urlencode({**query, "embed": "true", COMPACT: "1"})


def locate(path: Path | str, run: str | None = None) -> tuple[Path, str | None]:
    """``(run directory, run name)`` for ``show``'s arguments: a run's own folder is served from its parent."""
    path = Path(path).expanduser().resolve()
    if run is None and (path / CONFIG).is_file():
        return path.parent, path.name
    return path, run


class PandaFrame:
    """The page in an iframe as wide as the cell; its plain-text form is the link."""

    def __init__(self, url: str, root: Path, height: int):
        self.url, self.root, self.height = url, root, height

    def _repr_html_(self) -> str:
        src = html.escape(self.url, quote=True)
        return (f'<iframe src="{src}" width="100%" height="{self.height}" frameborder="0" '
                f'title="Panda dashboard" allow="clipboard-write"></iframe>')

    def __repr__(self) -> str:
        return f"Panda dashboard for {self.root}: {self.url}"


def _colab_output():
    """Colab's ``google.colab.output`` when this kernel runs in Colab, else ``None``."""
    if "google.colab" not in sys.modules:  # never import it outside Colab: it is not a package elsewhere
        try:
            importlib.import_module("google.colab")
        except ImportError:
            return None
    try:
        return importlib.import_module("google.colab.output")
    except ImportError:
        return None


def _ipython():
    """The running IPython shell, or ``None`` in a plain interpreter."""
    if "IPython" not in sys.modules:
        return None
    from IPython import get_ipython

    return get_ipython()


def in_notebook() -> bool:
    """Whether this code runs in a notebook's kernel (Jupyter, VS Code, Colab), not a terminal."""
    shell = _ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def show(path: Path | str = "runs", *, run: str | None = None, height: int = DEFAULT_HEIGHT,
         timeout: float = START_TIMEOUT) -> None:
    """Show the live page of ``path`` (a run directory, or one run's folder) in this cell.

    Starts a dashboard server for the run directory, or reuses the one that serves it already,
    and waits until it answers (:class:`app.notebook.server.ServerError` after ``timeout`` s).
    """
    height = int(height)
    if height < 1:
        raise ValueError(f"height must be a positive number of pixels, not {height}")
    root, run = locate(path, run)
    server = serve(root, timeout)
    query = page_path(run)
    colab = _colab_output()
    if colab is not None:  # the browser cannot reach the kernel's loopback: Colab's proxy serves the port
        colab.serve_kernel_port_as_iframe(server.port, path=query, height=height)
        return
    frame = PandaFrame(f"http://{HOST}:{server.port}{query}", root, height)
    if _ipython() is None:
        print(repr(frame), flush=True)
        return
    from IPython.display import display

    display(frame)
