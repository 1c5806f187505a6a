"""The notebook's dashboard servers: one per run directory, owned by the kernel.

A server is ``panda app``'s own :class:`app.serving.panda_cli.Server` (the same Streamlit child and settings),
bound to loopback on a free port, with no presenter token: on loopback the app trusts its user,
so nothing secret ever needs to reach a notebook's output. It belongs to the kernel:

* ``atexit`` stops every server when the kernel exits (shutdown, restart);
* on Linux :class:`~app.serving.panda_cli.Server` gives the child ``PR_SET_PDEATHSIG``: a kernel that is killed
  (SIGKILL, a crash) takes its servers with it. The signal fires when the *thread* that started the
  child ends, so children are started from one long-lived worker thread, not from whichever thread
  called us;
* the child runs in its own session, so the notebook's Interrupt (SIGINT to the kernel's process
  group) stops the cell, not the dashboard.
"""

from __future__ import annotations

import atexit
import subprocess
import tempfile
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

with warnings.catch_warnings():  # app.serving.panda_cli brings optuna, whose tqdm.auto warns in a kernel without ipywidgets
    warnings.filterwarnings("ignore", message="IProgress not found")
    from app.serving.panda_cli import Server, pick_port

#: The address the notebook's servers listen on: this machine only.
HOST = "127.0.0.1"
#: Seconds to wait for a new server's ``/_stcore/health`` to answer.
START_TIMEOUT = 90.0


class ServerError(RuntimeError):
    """The dashboard could not be started, with what it said."""


_servers: dict[Path, Server] = {}
_lock = threading.Lock()
_spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="panda-notebook")
_atexit_registered = False


def _tail(log, limit: int = 2000) -> str:
    log.seek(0)
    text = log.read().decode("utf-8", "replace").strip()
    return text[-limit:]


def _start(root: Path, timeout: float) -> Server:
    root.mkdir(parents=True, exist_ok=True)
    port = pick_port(HOST)
    log = tempfile.TemporaryFile()  # the server's messages, read back only when it fails to start
    server = _spawner.submit(Server, root, HOST, port, None, False, stdout=subprocess.DEVNULL, stderr=log,
                             start_new_session=True).result()
    _register_atexit()
    if not server.wait_ready(timeout):
        server.stop()
        said = _tail(log)
        raise ServerError(f"the Panda dashboard for {root} did not answer on http://{HOST}:{port}/_stcore/health "
                          f"within {timeout:g}s" + (f"; it said:\n{said}" if said else ""))
    return server


def serve(root: Path | str, timeout: float = START_TIMEOUT) -> Server:
    """The running server for run directory ``root``: the one already serving it, or a new one."""
    root = Path(root).expanduser().resolve()
    with _lock:
        server = _servers.get(root)
        if server is None or server.process.poll() is not None:
            server = _servers[root] = _start(root, timeout)
        return server


def servers() -> dict[Path, Server]:
    """The servers this kernel runs now, by run directory."""
    with _lock:
        return {root: s for root, s in _servers.items() if s.process.poll() is None}


def stop(root: Path | str | None = None) -> int:
    """Stop the server for ``root``, or every one; returns how many were running."""
    with _lock:
        keys = list(_servers) if root is None else [Path(root).expanduser().resolve()]
        stopped = 0
        for key in keys:
            server = _servers.pop(key, None)
            if server is not None:
                stopped += server.process.poll() is None
                server.stop()
        return stopped


def _register_atexit() -> None:
    global _atexit_registered
    if not _atexit_registered:
        atexit.register(stop)
        _atexit_registered = True
