"""The ``panda`` command: the trainer's commands plus the dashboard's (``app``, ``demo``).

``panda app`` serves :mod:`app.dashboard` with Streamlit in a child process (:mod:`app.serving.server`);
this module decides who may steer (the token, the one-time code), says where to look, and runs
the demo's trainer beside it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from trainer import cli as trainer_cli
from trainer.cli import add_sweep  # registers trainer.search.cli only for `panda sweep`
from trainer.contract import launching
from app.serving.scenarios import DEFAULT, EPOCHS, PACE, SCENARIOS
from app.serving.server import DEFAULT_PORT, Server, pick_port, port_free, wait
from app.serving.share import STEER_FOLDER, qr_terminal, reachable_hosts, steer_file, url, write_private
from app.serving.auth import CODE_TTL, ENV_TOKEN, is_local, new_token, read_token_file

def _urls(host: str, port: int, token: str | None) -> list[str]:
    """The URLs everyone may see: the viewers' (``watch``) with a token, else the page's."""
    return [f"  watch:  {url(h, port)}" if token else f"  {url(h, port)}" for h in reachable_hosts(host)]


def _steer_lines(host: str, port: int, code: str | None, generated_token: str | None = None) -> list[str]:
    """What only the presenter may read: the steer URLs with the one-time code, and a generated token."""
    lines = [f"  steer:  {url(h, port)}?code={code}   (presenter only: works once, within "
             f"{CODE_TTL // 60} minutes of the first page load)" for h in reachable_hosts(host)] if code else []
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
    view_url = url(reachable_hosts(host)[0], port) if token else None
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


def cmd_app(args) -> int:
    served = _serve(args, Path(args.run_dir))
    if served is None:
        return 2
    return wait(served[0])


def cmd_demo(args) -> int:
    from app.panels.controls import SOURCE
    from app.serving.launch import start_run
    from app.serving.scenarios import SCENARIOS, run_name
    from trainer.contract.rundir import RunDir

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
    code = wait(served[0])
    if args.keep_training:
        print(f"The trainer keeps going (pid {launch.pid}); stop it with: panda ctl {run_dir / name} stop", flush=True)
    else:
        _stop_trainer(RunDir(run_dir / name), launch.process, SOURCE)
    return code


def _stop_trainer(run, process: subprocess.Popen, source: str, timeout: float = launching.STOP_GRACE) -> None:
    """Ask the demo's trainer to stop cleanly (checkpoint, finish); SIGTERM it if it does not (:func:`launching.stop`)."""
    from trainer.contract.rundir import LIVE_STATES

    if process.poll() is not None or (run.exists() and run.liveness() not in LIVE_STATES):
        print(f"The demo run is {run.liveness() if run.exists() else 'gone'}: {run.path}", flush=True)
        return
    if run.exists():  # else still loading: nothing to save, SIGTERM it
        run.send_command("stop", source=source)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            print(f"The demo trainer did not stop in {timeout:g}s and was terminated: {run.path}", flush=True)
            launching.stop(process, timeout)
            return
    launching.stop(process, timeout)
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


def _serving_command(subparsers, name: str, func, help: str, description: str) -> argparse.ArgumentParser:
    """A subcommand that serves the dashboard (``panda app``, ``panda demo``): its parser, with the serving options."""
    p = subparsers.add_parser(name, help=help, description=description)
    _add_serving(p)
    p.set_defaults(func=func)
    return p


def add_app(subparsers) -> None:
    """``panda app``: serve the dashboard."""
    _serving_command(
        subparsers, "app", cmd_app, help="serve the dashboard in the browser",
        description="Watch runs live and steer them. Example: panda app --run-dir runs. "
        "For a lecture: panda app --present (prints the viewers' URL and the presenter's).",
    )


def add_demo(subparsers) -> None:
    """``panda demo``: a paced trainer on the bundled digits, and the dashboard."""
    p = _serving_command(
        subparsers, "demo", cmd_demo, help="train on the bundled digits in the background and open the dashboard",
        description="Start a paced trainer on the bundled digits data and the dashboard; prints the URL. "
        "Ctrl-C stops both (the run is checkpointed: panda train --resume continues it).",
    )
    p.add_argument("--scenario", choices=list(SCENARIOS), default=DEFAULT,
                   help="what the run needs from you: " + "; ".join(f"{k}: {v.hint}" for k, v in SCENARIOS.items())
                   .replace("%", "%%"))
    p.add_argument("--epochs", type=int, help=f"epochs to train (default {EPOCHS})")
    p.add_argument("--pace", type=float, help=f"minimum seconds per epoch (default {PACE:g})")
    p.add_argument("--keep-training", action="store_true", help="leave the trainer running after Ctrl-C")


#: Every ``panda`` subcommand, in the order ``panda --help`` lists them: the one registry.
PANDA_COMMANDS = {**trainer_cli.TRAINER_COMMANDS, "sweep": add_sweep, "app": add_app, "demo": add_demo}


def main(argv: list[str] | None = None) -> int:
    return trainer_cli.run(trainer_cli.build_parser(PANDA_COMMANDS), argv)


if __name__ == "__main__":
    sys.exit(main())
