"""The dashboard's Streamlit server: a child process of ``panda app`` that dies with it.

Streamlit reads ``.streamlit/config.toml`` only from the working directory, so the project's
settings are passed as flags as well: the server behaves the same from any folder. The presenter's
secrets travel in the child's environment, never in its arguments. ``panda app`` and the notebook's
server (:mod:`app.notebook.server`) both start this one.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
import urllib.request
from pathlib import Path

from app.serving.auth import ENV_CODE, ENV_PRESENT, ENV_RUN_DIR, ENV_TOKEN
from app.serving.share import ENV_VIEW_URL, reachable_hosts
from trainer.contract import launching

DASHBOARD = Path(__file__).resolve().parent.parent / "dashboard.py"
PROJECT_CONFIG = Path(__file__).resolve().parents[2] / ".streamlit" / "config.toml"
DEFAULT_PORT = 8501
#: Seconds the Streamlit child gets to end after SIGTERM before it is killed (a room of websockets
#: kept it serving for more than 13 s): ``panda app`` ends within 5 s of Ctrl-C or SIGTERM.
STOP_GRACE = 2.0
#: Used when the project's config file is not there (an installed wheel): the settings that matter.
FALLBACK_CONFIG = {
    "server": {"address": "127.0.0.1", "headless": True, "runOnSave": False, "fileWatcherType": "none"},
    "browser": {"gatherUsageStats": False},
    "client": {"toolbarMode": "viewer"},
    "runner": {"postScriptGC": False},
}


def streamlit_flags(config_path: Path = PROJECT_CONFIG) -> list[str]:
    """The project's Streamlit settings as command-line flags (``--section.option=value``)."""
    try:
        config = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        config = FALLBACK_CONFIG
    flags = []
    for section, options in config.items():
        for option, value in options.items():
            if f"{section}.{option}" in ("server.address", "server.port"):
                continue  # always given by the command
            if isinstance(value, bool):
                value = "true" if value else "false"
            flags.append(f"--{section}.{option}={value}")
    return flags


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def pick_port(host: str, start: int = DEFAULT_PORT, tries: int = 50) -> int:
    for port in range(start, start + tries):
        if port_free(host, port):
            return port
    raise OSError(f"no free port in {start}..{start + tries - 1}")


class Server:
    """The Streamlit server, as a child process of this command that dies with it."""

    def __init__(self, run_dir: Path, host: str, port: int, token: str | None, present: bool, code: str | None = None,
                 view_url: str | None = None, **popen):
        """``popen``: more of ``subprocess.Popen``'s options (the notebook's server: its output, its session)."""
        self.host, self.port = host, port
        # The secrets travel in the environment (readable by this user only), never as arguments.
        env = {**os.environ, ENV_RUN_DIR: str(run_dir.resolve()), ENV_PRESENT: "1" if present else "0"}
        env.pop(ENV_TOKEN, None)
        env.pop(ENV_CODE, None)
        env.pop(ENV_VIEW_URL, None)
        if view_url:
            env[ENV_VIEW_URL] = view_url
        if token:
            env[ENV_TOKEN] = token
            if code:
                env[ENV_CODE] = code
        self.argv = [
            sys.executable, "-m", "streamlit", "run", str(DASHBOARD), *streamlit_flags(),
            f"--server.address={host}", f"--server.port={port}",
            # Tracebacks name source paths: with an audience they go to the server log, not the pages.
            *(["--client.showErrorDetails=none"] if present or token else []),
            # Streamlit looks up a public IP to print when none is set; Panda sends nothing out.
            f"--browser.serverAddress={reachable_hosts(host)[0]}",
        ]
        # SIGKILLed when panda app dies, even by kill -9 (Linux): else it would outlive it, still serving
        # with the token in its environment.
        guard = launching.parent_death_guard(signal.SIGKILL)
        self.process = subprocess.Popen(self.argv, env=env, stdin=subprocess.DEVNULL, preexec_fn=guard, **popen)
        self.private_files: list[Path] = []  # removed when the server stops (the steer link)

    def wait_ready(self, timeout: float = 60.0) -> bool:
        probe_host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        url = f"http://{'[' + probe_host + ']' if ':' in probe_host else probe_host}:{self.port}/_stcore/health"
        deadline = time.monotonic() + timeout
        pause = threading.Event()
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return True
            except OSError:
                pass
            pause.wait(0.2)
        return False

    def stop(self, grace: float = STOP_GRACE) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds: however many viewers hold a websocket open."""
        launching.stop(self.process, grace)
        for path in self.private_files:
            path.unlink(missing_ok=True)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def wait(server: Server) -> int:
    """Until Ctrl-C (or SIGTERM), then stop the server: it never outlives this command."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return server.process.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)
