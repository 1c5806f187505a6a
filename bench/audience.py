"""A room of viewers against one live, paced run: server CPU, server memory, and freshness.

Viewers are lightweight clients of Streamlit's own websocket protocol (``/_stcore/stream``,
``BackMsg``/``ForwardMsg`` protobufs), as the frontend speaks it: ask for a script run, then
rerun the live fragment whenever the server's ``auto_rerun`` message says to. Real browsers run
on the audience's own devices, so none runs here (``--browser`` adds one real Chromium page).

Freshness: an epoch record's ``time`` (stamped just before the trainer appends it) → the moment
that viewer received a loss chart whose last point is that epoch (an epoch a viewer skipped
counts until the chart that includes it arrives).

    python -m bench.audience                     # N = 1, 10, 50, 100; 600 s soak at 100
    python -m bench.audience --soak 120 --browser
    python -m bench.audience --runs 0,100,500,2000 --viewers 10,100 --soak 0   # a lived-in run directory

``--runs`` makes that many finished runs up front (:mod:`bench.run_corpus`: realistic size, a tenth in
sweeps) beside the live one; each configuration prints one markdown table row.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ClientState_pb2 import ClientState
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg


from app.serving.launch import start_run  # noqa: E402
from bench.run_corpus import make_corpus  # noqa: E402
from app.serving.scenarios import SCENARIOS  # noqa: E402
from trainer.contract.rundir import RunDir  # noqa: E402

TOKEN = "bench-presenter-token"  # a token makes every client a viewer (the projector page)


def _last_x(spec: str) -> int | None:
    data = json.loads(spec)["data"][0]["x"]
    if isinstance(data, dict) and "bdata" in data:
        data = np.frombuffer(base64.b64decode(data["bdata"]), dtype=np.dtype(data["dtype"]).newbyteorder("<"))
    return int(round(float(data[-1]))) if len(data) else None


class Viewer:
    """One audience member: a websocket session that reruns the live fragment when told to."""

    def __init__(self, url: str, origin: str):
        self.url, self.origin = url, origin
        self.seen: dict[int, float] = {}  # epoch -> when its chart arrived
        self.last_id = ""
        self.page_hash = ""
        self.bytes = 0
        self.errors = 0

    async def run(self, stop: asyncio.Event) -> None:
        try:
            async with websockets.connect(self.url, subprotocols=["streamlit"], origin=self.origin, max_size=None,
                                          ping_interval=None) as ws:
                await ws.send(BackMsg(rerun_script=ClientState(query_string="", page_script_hash="")).SerializeToString())
                timers: dict[str, asyncio.Task] = {}
                receiver = asyncio.create_task(self._receive(ws, timers))
                await stop.wait()
                receiver.cancel()
                for t in timers.values():
                    t.cancel()
        except Exception:
            self.errors += 1

    async def _receive(self, ws, timers) -> None:
        async for raw in ws:
            self.bytes += len(raw)
            msg = ForwardMsg.FromString(raw)
            kind = msg.WhichOneof("type")
            if kind == "new_session":
                self.page_hash = msg.new_session.page_script_hash or self.page_hash
            elif kind == "navigation":
                self.page_hash = msg.navigation.page_script_hash or self.page_hash
            elif kind == "auto_rerun":
                fid = msg.auto_rerun.fragment_id
                if fid not in timers:
                    timers[fid] = asyncio.create_task(self._tick(ws, fid, msg.auto_rerun.interval))
            elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
                element = msg.delta.new_element
                if element.WhichOneof("type") == "plotly_chart" and element.plotly_chart.id.startswith("panda-loss-"):
                    if element.plotly_chart.id != self.last_id:
                        self.last_id = element.plotly_chart.id
                        epoch = _last_x(element.plotly_chart.spec)
                        if epoch is not None and epoch not in self.seen:
                            self.seen[epoch] = time.time()

    async def _tick(self, ws, fragment_id: str, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)  # what the frontend's timer does
            state = ClientState(query_string="", page_script_hash=self.page_hash, fragment_id=fragment_id,
                                is_auto_rerun=True)
            await ws.send(BackMsg(rerun_script=state).SerializeToString())


def freshness(viewers: list[Viewer], written: dict[int, float], start: float, end: float) -> list[float]:
    """Per viewer and epoch written in [start, end): seconds until a chart including it arrived."""
    out = []
    for v in viewers:
        arrivals = sorted(v.seen.items())
        for epoch, t in written.items():
            if not start <= t < end:
                continue
            later = [at for e, at in arrivals if e >= epoch]
            out.append((min(later) if later else end) - t)
    return out


def written_times(run: RunDir) -> dict[int, float]:
    return {r["epoch"]: r["time"] for r in run.read_metrics() if isinstance(r.get("time"), float)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(server: psutil.Process, run: RunDir, url: str, origin: str, n: int, seconds: float, warmup: float,
            rss_every: float | None = None) -> dict:
    viewers = [Viewer(url, origin) for _ in range(n)]
    rss: list[tuple[float, float]] = []

    async def main():
        stop = asyncio.Event()
        tasks = [asyncio.create_task(v.run(stop)) for v in viewers]
        await asyncio.sleep(warmup)
        cpu0, t0, me0 = server.cpu_times(), time.time(), psutil.Process().cpu_times()
        while time.time() - t0 < seconds:
            await asyncio.sleep(min(rss_every or seconds, seconds - (time.time() - t0)))
            rss.append((time.time() - t0, server.memory_info().rss / 2**20))
        cpu1, t1, me1 = server.cpu_times(), time.time(), psutil.Process().cpu_times()
        stop.set()
        await asyncio.gather(*tasks)
        return cpu0, cpu1, t0, t1, me0, me1

    cpu0, cpu1, t0, t1, me0, me1 = asyncio.run(main())
    fresh = freshness(viewers, written_times(run), t0, t1 - 2.0)
    busy = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    return {
        "n": n, "cpu": 100 * busy / (t1 - t0), "rss": rss, "fresh": fresh, "errors": sum(v.errors for v in viewers),
        "clients_cpu": 100 * ((me1.user + me1.system) - (me0.user + me0.system)) / (t1 - t0),
        "mb_per_viewer_s": sum(v.bytes for v in viewers) / max(n, 1) / (t1 - t0 + warmup) / 2**20,
    }


def browser_freshness(url: str, run: RunDir, seconds: float) -> list[float]:
    """One real headless Chromium page: when did its loss chart first show each epoch?"""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.goto(url)
            page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 4", timeout=60_000)
            page.evaluate("""() => { window.seen = {}; setInterval(() => {
                const g = document.querySelector('.st-key-proj-loss .js-plotly-plot');
                const x = g && g._fullData && g._fullData[0] && g._fullData[0].x;
                if (x && x.length) { const e = Math.round(x[x.length - 1]); if (!(e in window.seen)) window.seen[e] = Date.now() / 1000; }
            }, 20); }""")
            t0 = time.time()
            threading.Event().wait(seconds)
            seen = {int(k): v for k, v in page.evaluate("() => window.seen").items()}
        finally:
            browser.close()
    viewer = Viewer("", "")
    viewer.seen = seen
    return freshness([viewer], written_times(run), t0, t0 + seconds - 2.0)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def page_load_cpu(server: psutil.Process, url: str, origin: str, loads: int = 5) -> float:
    """Median server CPU (ms) of one new session's first full page run (a viewer's page load)."""

    async def one() -> float:
        before = server.cpu_times()
        async with websockets.connect(url, subprotocols=["streamlit"], origin=origin, max_size=None,
                                      ping_interval=None) as ws:
            await ws.send(BackMsg(rerun_script=ClientState(query_string="", page_script_hash="")).SerializeToString())
            async for raw in ws:
                msg = ForwardMsg.FromString(raw)
                if msg.WhichOneof("type") == "script_finished":
                    break
        after = server.cpu_times()
        return 1000 * ((after.user + after.system) - (before.user + before.system))

    return float(np.median([asyncio.run(one()) for _ in range(loads)]))


def stop_process(process: subprocess.Popen, timeout: float = 20.0) -> str:
    """End a process we started (SIGTERM: a background shell's children ignore SIGINT), killing it if it
    does not end in ``timeout`` seconds; says which it took."""
    if process.poll() is not None:
        return "had ended"
    process.terminate()
    try:
        process.wait(timeout)
        return "ended"
    except subprocess.TimeoutExpired:
        for child in psutil.Process(process.pid).children(recursive=True):
            child.kill()
        process.kill()
        process.wait()
        return "killed"


class Served:
    """``panda app`` (viewers need its token) on a run directory, plus one paced live demo run in it."""

    def __init__(self, root: Path):
        self.root = root
        self.config = SCENARIOS["healthy"].config(epochs=100_000)  # paced, 1 s an epoch, as panda demo runs it
        self.port = _free_port()
        started = time.monotonic()
        self.app = subprocess.Popen(
            [sys.executable, "-m", "app.serving.panda_cli", "app", "--run-dir", str(root), "--port", str(self.port)],
            env={**os.environ, "PANDA_TOKEN": TOKEN}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            cwd=Path(__file__).resolve().parent.parent)
        for line in self.app.stdout:
            if "watch:" in line:
                break
        self.serving_after = time.monotonic() - started  # the server answered its health check
        threading.Thread(target=lambda: [None for _ in self.app.stdout], daemon=True).start()
        self.server = next(c for c in psutil.Process(self.app.pid).children() if "streamlit" in " ".join(c.cmdline()))
        self.url, self.origin = f"ws://127.0.0.1:{self.port}/_stcore/stream", f"http://127.0.0.1:{self.port}"
        self.page_load_ms = page_load_cpu(self.server, self.url, self.origin)  # before the live run: no noise
        self.launch = start_run(root, "demo-healthy-bench", self.config)
        self.run = RunDir(root / "demo-healthy-bench")
        deadline = time.monotonic() + 120
        while not (self.run.read_metrics() if self.run.exists() else []) and time.monotonic() < deadline:
            threading.Event().wait(0.5)

    def close(self) -> str:
        app = stop_process(self.app)
        if self.run.exists():
            self.run.send_command("stop", source="bench")
        try:
            self.launch.process.wait(30)
        except subprocess.TimeoutExpired:
            stop_process(self.launch.process)
        return app


ROW = "| {runs} | {n} | {cpu:.0f} % | {p50:.2f} s / {p95:.2f} s | {rss:.0f} MiB | {load:.0f} ms | {start:.1f} s | {errors} |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", default="1,10,50,100")
    parser.add_argument("--runs", default="0", help="finished runs made up front, a comma list (e.g. 0,100,500,2000)")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window per N")
    parser.add_argument("--soak", type=float, default=600.0, help="seconds of the memory soak at the largest N (0: none)")
    parser.add_argument("--browser", action="store_true", help="also one real headless Chromium viewer")
    args = parser.parse_args()
    counts = [int(x) for x in args.viewers.split(",")]

    print(f"{psutil.cpu_count()} cores; trainer paced at 1 s/epoch; viewers refresh every 1 s; "
          f"{args.seconds:g} s measured per row after a 10 s warm-up. Page load: a new viewer session's first "
          "script run (median of 5, server CPU); serving: `panda app` start to its health check.\n")
    print("| finished runs | viewers | server CPU (% of a core) | freshness p50 / p95 | server RSS | page load CPU "
          "| serving after | errors |\n|---|---|---|---|---|---|---|---|", flush=True)
    for runs in [int(x) for x in args.runs.split(",")]:
        root = Path(tempfile.mkdtemp(prefix="panda-audience-"))
        if runs:
            make_corpus(root, runs)
        served = Served(root)
        try:
            for n in counts:
                r = measure(served.server, served.run, served.url, served.origin, n, args.seconds, warmup=10.0)
                print(ROW.format(runs=runs, n=n, cpu=r["cpu"], p50=pct(r["fresh"], 50), p95=pct(r["fresh"], 95),
                                 rss=r["rss"][-1][1], load=served.page_load_ms, start=served.serving_after,
                                 errors=r["errors"]), flush=True)
            if args.soak:
                n = max(counts)
                r = measure(served.server, served.run, served.url, served.origin, n, args.soak, warmup=5.0,
                            rss_every=args.soak / 10)
                marks = ", ".join(f"{t:.0f}s {m:.0f}" for t, m in r["rss"])
                print(f"\nsoak {args.soak:g} s at N={n}, {runs} runs: server CPU {r['cpu']:.1f} % of a core, freshness "
                      f"p50 {pct(r['fresh'], 50):.2f} s p95 {pct(r['fresh'], 95):.2f} s; RSS MiB: {marks}", flush=True)
            if args.browser:
                fresh = browser_freshness(f"http://127.0.0.1:{served.port}/", served.run, 30.0)
                print(f"\none Chromium page: freshness p50 {pct(fresh, 50):.2f} s, p95 {pct(fresh, 95):.2f} s "
                      f"({len(fresh)} epochs)", flush=True)
        finally:
            how = served.close()
            shutil.rmtree(root, ignore_errors=True)
        if how == "killed":
            print(f"(the server did not end within 20 s of SIGTERM and was killed; {runs} runs)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
