"""A big run directory's first seconds and a big sweep's page: how long until ``panda app`` serves, and
what the Sweeps page costs to open and to refresh.

``--runs`` finished runs are made up front (:mod:`bench.run_corpus`), plus one sweep of ``--trials``
trials marked running (so its page refreshes itself). Then: seconds from starting ``panda app`` to
its health check answering, and to a new session's page having run; the Sweeps page's first run
(wall seconds) and its refreshes (the live fragment rerun as the browser's timer asks; wall ms and
server CPU ms each), over Streamlit's own websocket protocol.

    python -m bench.sweeps_page --runs 2000 --trials 200
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ClientState_pb2 import ClientState
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from websockets.sync.client import connect


from bench.audience import TOKEN, _free_port, stop_process  # noqa: E402
from bench.run_corpus import _template, make_corpus, make_sweep  # noqa: E402
from trainer.contract.rundir import atomic_write_json  # noqa: E402

SWEEP = "big-sweep"


class Tab:
    """One session; :meth:`run` waits for the script run's end and returns what it noticed."""

    def __init__(self, port: int):
        self._stack = contextlib.ExitStack()
        self.ws = self._stack.enter_context(connect(f"ws://127.0.0.1:{port}/_stcore/stream", subprotocols=["streamlit"],
                                                    origin=f"http://127.0.0.1:{port}", max_size=None))
        self.pages: dict[str, str] = {}
        self.fragment = ""
        self.debug = bool(os.environ.get("SWEEPS_PAGE_DEBUG"))

    def run(self, state: ClientState, timeout: float = 120.0) -> None:
        self.ws.send(BackMsg(rerun_script=state).SerializeToString())
        deadline = time.monotonic() + timeout
        while True:
            msg = ForwardMsg.FromString(self.ws.recv(timeout=max(deadline - time.monotonic(), 0.01)))
            kind = msg.WhichOneof("type")
            if kind == "navigation":
                self.pages = {p.url_pathname: p.page_script_hash for p in msg.navigation.app_pages}
            elif kind == "auto_rerun":
                self.fragment = msg.auto_rerun.fragment_id
                if self.debug:
                    print("auto_rerun", msg.auto_rerun.fragment_id, msg.auto_rerun.interval, file=sys.stderr)
            elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element" \
                    and msg.delta.new_element.WhichOneof("type") == "exception":
                raise RuntimeError(f"the page raised: {msg.delta.new_element.exception.message}")
            elif kind == "script_finished":
                return
            elif kind == "session_status_changed" and not msg.session_status_changed.script_is_running and self.debug:
                print("status: not running", file=sys.stderr)
            if self.debug:
                print(kind, file=sys.stderr)

    def close(self) -> None:
        self._stack.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--refreshes", type=int, default=10)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="panda-sweeps-"))
    work = Path(tempfile.mkdtemp(prefix="panda-template-"))
    try:
        made = make_corpus(root, args.runs)
        make_sweep(root, _template(work / "t", 60), SWEEP, args.trials, time.time())
        spec = json.loads((root / SWEEP / "sweep.json").read_text())
        atomic_write_json(root / SWEEP / "sweep.json", {**spec, "state": "running"})  # its page refreshes itself
        port = _free_port()
        started = time.monotonic()
        app = subprocess.Popen([sys.executable, "-m", "app.serving.panda_cli", "app", "--run-dir", str(root), "--port", str(port)],
                               env={**os.environ, "PANDA_TOKEN": TOKEN}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, cwd=Path(__file__).resolve().parent.parent)
        try:
            for line in app.stdout:
                if "watch:" in line:
                    break
            serving = time.monotonic() - started
            debug = bool(os.environ.get("SWEEPS_PAGE_DEBUG"))  # the server's output drained always: a full pipe blocks it
            threading.Thread(target=lambda: [debug and print("server:", line, end="", file=sys.stderr)
                                             for line in app.stdout], daemon=True).start()
            server = next(c for c in psutil.Process(app.pid).children() if "streamlit" in " ".join(c.cmdline()))
            tab = Tab(port)
            tab.run(ClientState(query_string="", page_script_hash=""))
            first_page = time.monotonic() - started
            query = f"sweep={SWEEP}"
            t0 = time.monotonic()
            tab.fragment = ""  # the Sweeps page's own refresh timer, not the first page's
            tab.run(ClientState(query_string=query, page_script_hash=tab.pages["sweeps"]))
            opened = time.monotonic() - t0
            assert tab.fragment, "the Sweeps page of a running sweep set no refresh timer"
            walls, cpus = [], []
            for _ in range(args.refreshes):
                before, t0 = server.cpu_times(), time.monotonic()
                tab.run(ClientState(query_string=query, page_script_hash=tab.pages["sweeps"],
                                    fragment_id=tab.fragment, is_auto_rerun=True))
                after = server.cpu_times()
                walls.append(1000 * (time.monotonic() - t0))
                cpus.append(1000 * ((after.user + after.system) - (before.user + before.system)))
            tab.close()
        finally:
            stop_process(app)
        print(f"{made['runs']} finished runs + a {args.trials}-trial sweep; {psutil.cpu_count()} cores\n")
        print("| runs | sweep trials | serving after | first page after | Sweeps page opens in | refresh wall p50 / max "
              "| refresh server CPU p50 |\n|---|---|---|---|---|---|---|")
        print(f"| {made['runs']} | {args.trials} | {serving:.1f} s | {first_page:.1f} s | {opened:.2f} s | "
              f"{np.median(walls):.0f} / {max(walls):.0f} ms | {np.median(cpus):.0f} ms |", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
