"""The ``panda`` command: the trainer's commands plus the dashboard's (``app``, ``demo``).

``panda app`` serves :mod:`app.dashboard` with Streamlit in a child process. Streamlit reads
``.streamlit/config.toml`` only from the working directory, so the project's settings are passed
as flags as well: ``panda app`` behaves the same from any folder.
"""

from __future__ import annotations

import argparse
import ctypes
import functools
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

from trainer import cli as trainer_cli
from trainer.cli import add_sweep  # registers trainer.search.cli only for `panda sweep`

from app.scenarios import DEFAULT, EPOCHS, PACE, SCENARIOS
from app.share import ENV_VIEW_URL, STEER_FOLDER, lan_addresses, qr_terminal, steer_file, url, write_private
from app.auth import CODE_TTL, ENV_CODE, ENV_PRESENT, ENV_RUN_DIR, ENV_TOKEN, is_local, new_token, read_token_file

DASHBOARD = Path(__file__).resolve().parent / "dashboard.py"
PROJECT_CONFIG = Path(__file__).resolve().parent.parent / ".streamlit" / "config.toml"
DEFAULT_PORT = 8501
#: Seconds the Streamlit child gets to end after SIGTERM before it is killed (a room of websockets
#: kept it serving for more than 13 s): ``panda app`` ends within 5 s of Ctrl-C or SIGTERM.
STOP_GRACE = 2.0
#: Linux's prctl option: the signal a process gets when its parent dies.
PR_SET_PDEATHSIG = 1
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


def _die_with_parent(parent: int, prctl) -> None:
    """In the Streamlit child before it starts (Linux): be killed when ``panda app`` dies, even by kill -9.

    Without it the child outlives a killed parent, reparented and still serving with the token
    in its environment. A parent that died before the call is caught by the ``getppid`` check.
    """
    prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _child_guard():
    """The ``preexec_fn`` that ties the child's life to this process, where the platform offers one."""
    if not sys.platform.startswith("linux"):
        return None  # elsewhere Ctrl-C and SIGTERM still stop it (Server.stop); kill -9 does not
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: no dlopen between fork and exec
    except (OSError, AttributeError):
        return None
    return functools.partial(_die_with_parent, os.getpid(), prctl)


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
            f"--browser.serverAddress={_hosts(host)[0]}",
        ]
        self.process = subprocess.Popen(self.argv, env=env, stdin=subprocess.DEVNULL, preexec_fn=_child_guard(), **popen)
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
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for path in self.private_files:
            path.unlink(missing_ok=True)


def _hosts(host: str) -> list[str]:
    """Where a browser finds a server bound to ``host``: every LAN address for all interfaces."""
    return lan_addresses() if host in ("0.0.0.0", "", "::") else [host]


def _urls(host: str, port: int, token: str | None) -> list[str]:
    """The URLs everyone may see: the viewers' (``watch``) with a token, else the page's."""
    return [f"  watch:  {url(h, port)}" if token else f"  {url(h, port)}" for h in _hosts(host)]


def _steer_lines(host: str, port: int, code: str | None, generated_token: str | None = None) -> list[str]:
    """What only the presenter may read: the steer URLs with the one-time code, and a generated token."""
    lines = [f"  steer:  {url(h, port)}?code={code}   (presenter only: works once, within "
             f"{CODE_TTL // 60} minutes of the first page load)" for h in _hosts(host)] if code else []
    if generated_token:
        lines.append(f"  presenter token: {generated_token}   (type it in the sidebar after a reload or in another tab)")
    return lines


#: Printed when the token is given on the command line.
TOKEN_ARG_WARNING = ("panda: warning: --token puts the token on the command line, where every user of this machine "
                     "can read it (ps, /proc). Use --token-file PATH or $PANDA_TOKEN instead.")


def resolve_token(args) -> str | None:
    """The presenter token: ``--token-file``, ``$PANDA_TOKEN``, or (with a warning) ``--token``.

    ``ValueError`` when the token file cannot be read or is empty.
    """
    path = getattr(args, "token_file", None)
    if path:
        try:
            return read_token_file(path)
        except OSError as e:
            raise ValueError(f"cannot read the token file {path}: {e.strerror or e}") from None
    given = getattr(args, "token", None)
    if given:
        print(TOKEN_ARG_WARNING, file=sys.stderr, flush=True)
        return given
    return os.environ.get(ENV_TOKEN) or None


def ctrl_c_text(command: str, keep_training: bool = False) -> str:
    """What Ctrl-C stops, for each command that serves (the trainers the page starts run in their own session).

    >>> ctrl_c_text("demo")
    "Ctrl-C stops the dashboard and the demo's trainer (checkpointed: panda train --resume continues it)."
    """
    if command == "demo" and not keep_training:
        return "Ctrl-C stops the dashboard and the demo's trainer (checkpointed: panda train --resume continues it)."
    return ("Ctrl-C stops the dashboard; trainers keep training (stop one from the page, or with "
            "panda ctl RUN stop).")


def _serve(args, run_dir: Path) -> tuple[Server, str | None] | None:
    present = bool(getattr(args, "present", False))
    host = args.host or ("0.0.0.0" if present else "127.0.0.1")
    try:
        token = resolve_token(args)
    except ValueError as e:
        print(f"panda: error: {e}", file=sys.stderr)
        return None
    generated = present and not token
    if generated:
        token = new_token()
    if not present and not is_local(host) and not token:
        print(f"panda: error: refusing to serve on {host} without a token: anyone who can reach it could steer "
              "your runs. Use --present (prints a presenter token) or --token-file PATH (or $PANDA_TOKEN).",
              file=sys.stderr)
        return None
    code = new_token() if token else None
    probe = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    try:
        port = args.port or pick_port(probe)
        if args.port and not port_free(probe, port):
            raise OSError(f"port {port} is in use (leave --port out to use a free one)")
    except OSError as e:
        print(f"panda: error: {e}", file=sys.stderr)
        return None
    run_dir.mkdir(parents=True, exist_ok=True)
    view_url = url(_hosts(host)[0], port) if token else None
    server = Server(run_dir, host, port, token, present, code, view_url)
    if not server.wait_ready():
        server.stop()
        print(f"panda: error: the dashboard did not start on {host}:{port}", file=sys.stderr)
        return None
    print(f"Panda dashboard for {run_dir.resolve()}:", flush=True)
    for line in _urls(host, port, token):
        print(line, flush=True)
    secret = _steer_lines(host, port, code, token if generated else None)
    if secret and getattr(args, "print_steer", False):
        print("\n".join(secret), flush=True)
    elif secret:  # off the terminal a lecturer may be projecting
        try:
            path = write_private(steer_file(port), "\n".join(line.strip() for line in secret) + "\n")
        except OSError as e:
            server.stop()
            print(f"panda: error: cannot write the presenter's link to {steer_file(port)}: {e.strerror or e} "
                  "(--print-steer prints it here instead)", file=sys.stderr)
            return None
        server.private_files.append(path)
        print(f"  steer:  the presenter's link is in {path} (readable by you only; open it on this machine, "
              "off the projected screen; --print-steer prints it here)", flush=True)
    if token:
        print("Viewers see everything live; only the presenter's link (or the token typed in the sidebar) can steer.",
              flush=True)
        print(f"Scan to watch ({view_url}):", flush=True)
        print(qr_terminal(view_url), end="", flush=True)
    print(ctrl_c_text(args.command, bool(getattr(args, "keep_training", False))), flush=True)
    return server, token


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _wait(server: Server) -> int:
    """Until Ctrl-C (or SIGTERM), then stop the server: it never outlives this command."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return server.process.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)


def cmd_app(args) -> int:
    served = _serve(args, Path(args.run_dir))
    if served is None:
        return 2
    return _wait(served[0])


def cmd_demo(args) -> int:
    from app.controls import SOURCE
    from app.launch import start_run
    from app.scenarios import SCENARIOS, run_name
    from trainer.rundir import RunDir

    run_dir = Path(args.run_dir)
    scenario = SCENARIOS[args.scenario]
    name = run_name(args.scenario)
    launch = start_run(run_dir, name, scenario.config(epochs=args.epochs, pace=args.pace))
    print(f"Training {run_dir / name} in the background (pid {launch.pid}, log {launch.log_path}).", flush=True)
    print(f"Scenario {args.scenario}: {scenario.hint}", flush=True)
    served = _serve(args, run_dir)
    if served is None:
        _stop_trainer(RunDir(run_dir / name), launch.process, SOURCE)
        return 2
    code = _wait(served[0])
    if args.keep_training:
        print(f"The trainer keeps going (pid {launch.pid}); stop it with: panda ctl {run_dir / name} stop", flush=True)
    else:
        _stop_trainer(RunDir(run_dir / name), launch.process, SOURCE)
    return code


def _stop_trainer(run, process: subprocess.Popen, source: str, timeout: float = 20.0) -> None:
    """Ask the demo's trainer to stop cleanly (checkpoint, finish); terminate it if it does not."""
    from trainer.rundir import LIVE_STATES

    if process.poll() is not None or (run.exists() and run.liveness() not in LIVE_STATES):
        print(f"The demo run is {run.liveness() if run.exists() else 'gone'}: {run.path}", flush=True)
        return
    try:
        if run.exists():
            run.send_command("stop", source=source)
        else:
            os.killpg(process.pid, signal.SIGTERM)  # still loading: nothing to save
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        print(f"The demo trainer did not stop in {timeout:g}s and was terminated: {run.path}", flush=True)
    except (OSError, ProcessLookupError):
        pass
    else:
        print(f"Stopped the demo trainer; continue it with: panda train --resume {run.path}", flush=True)


def _add_serving(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run-dir", default="runs", help="folder that holds runs (default: runs)")
    p.add_argument("--port", type=int, help=f"port (default: the first free one from {DEFAULT_PORT})")
    p.add_argument("--host", help="address to serve on (default 127.0.0.1; 0.0.0.0 with --present)")
    p.add_argument("--present", action="store_true",
                   help="lecture mode: serve on all interfaces; viewers watch, only the presenter token steers")
    p.add_argument("--token-file", metavar="PATH",
                   help="read the presenter token from the first line of PATH (default: $PANDA_TOKEN, "
                   "or a random one with --present)")
    p.add_argument("--token", help="presenter token; visible to every user of this machine in ps: "
                   "prefer --token-file or $PANDA_TOKEN")
    p.add_argument("--print-steer", action="store_true",
                   help="print the presenter's steer link (and a generated token) in the terminal instead of "
                   f"writing it to {STEER_FOLDER}/steer-PORT.txt (readable by you only)")


def add_app(subparsers) -> None:
    """``panda app``: serve the dashboard."""
    p = subparsers.add_parser(
        "app", help="serve the dashboard in the browser",
        description="Watch runs live and steer them. Example: panda app --run-dir runs. "
        "For a lecture: panda app --present (prints the viewers' URL and the presenter's).",
    )
    _add_serving(p)
    p.set_defaults(func=cmd_app)


def add_demo(subparsers) -> None:
    """``panda demo``: a paced trainer on the bundled digits, and the dashboard."""
    p = subparsers.add_parser(
        "demo", help="train on the bundled digits in the background and open the dashboard",
        description="Start a paced trainer on the bundled digits data and the dashboard; prints the URL. "
        "Ctrl-C stops both (the run is checkpointed: panda train --resume continues it).",
    )
    _add_serving(p)
    p.add_argument("--scenario", choices=list(SCENARIOS), default=DEFAULT,
                   help="what the run needs from you: " + "; ".join(f"{k}: {v.hint}" for k, v in SCENARIOS.items())
                   .replace("%", "%%"))
    p.add_argument("--epochs", type=int, help=f"epochs to train (default {EPOCHS})")
    p.add_argument("--pace", type=float, help=f"minimum seconds per epoch (default {PACE:g})")
    p.add_argument("--keep-training", action="store_true", help="leave the trainer running after Ctrl-C")
    p.set_defaults(func=cmd_demo)


#: Every ``panda`` subcommand, in the order ``panda --help`` lists them: the one registry.
PANDA_COMMANDS = {**trainer_cli.TRAINER_COMMANDS, "sweep": add_sweep, "app": add_app, "demo": add_demo}


def main(argv: list[str] | None = None) -> int:
    return trainer_cli.run(trainer_cli.build_parser(PANDA_COMMANDS), argv)


if __name__ == "__main__":
    sys.exit(main())
