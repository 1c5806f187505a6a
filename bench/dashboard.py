"""Dashboard figures: how fresh the data layer is, and what a page refresh costs on the server.

    .venv/bin/python bench/dashboard.py            # about a minute on 2 cores

* Freshness: an epoch record is appended to ``metrics.jsonl`` (one ``write`` + ``fsync``, as the
  trainer does); the clock stops when :class:`app.data.RunData`, fed by its ``watchdog`` observer
  and without being asked to refresh, holds that epoch. A page shows it on its next fragment run
  (every second), so on screen add up to 1 s.
* Refresh cost for one run of 5,000 epochs and 200,000 batch records: the first load, then the
  server time of one live refresh — the data layer's update plus the four figures (taken from the
  shared figure cache, or rebuilt after a new epoch) serialized as ``st.plotly_chart`` does.
* Overlay: one figure with 50 runs of 1,000 epochs each, built and serialized.
"""

from __future__ import annotations

import json
import math
import statistics
import tempfile
import threading
import time
from pathlib import Path


import plotly.io

from app.figures import run_charts as charts
from app.data import RunData
from trainer.contract.rundir import RunDir, append_jsonl

HPARAMS = {"optimizer": "adam", "lr": 0.003, "beta": 0.9, "batch_size": 64}


def epoch_record(epoch: int, steps: int = 40) -> dict:
    loss = 2.3 * math.exp(-epoch / 500) + 0.05
    return {"epoch": epoch, "branch": 0, "step": epoch * steps, "lr": 0.003, "beta": 0.9, "batch_size": 64,
            "loss": loss, "accuracy": 1 - loss / 2.5, "val_loss": loss * 1.1, "val_accuracy": 1 - loss / 2.4,
            "grad_norm": 1.0, "epoch_seconds": 0.1, "samples_per_second": 9000.0, "time": time.time()}


def batch_lines(epoch: int, steps: int = 40) -> str:
    start = (epoch - 1) * steps
    return "".join(json.dumps({"epoch": epoch, "step": s, "loss": 2.3 * math.exp(-s / 20000) + 0.01 * (s % 7),
                               "branch": 0}) + "\n" for s in range(start + 1, start + steps + 1))


def make_run(root: Path, name: str, epochs: int, steps: int = 40, batches: bool = True) -> RunDir:
    run = RunDir(root / name).create()
    run.write_config({"name": name, "created": time.time(), "hparams": HPARAMS, "epochs": epochs * 2})
    run.append_event("started", epoch=0, step=0, pid=0, resumed_from=None, hparams=HPARAMS)
    with open(run.metrics_path, "w") as f:
        f.write("".join(json.dumps(epoch_record(e, steps)) + "\n" for e in range(1, epochs + 1)))
    if batches:
        with open(run.batches_path, "w") as f:
            f.write("".join(batch_lines(e, steps) for e in range(1, epochs + 1)))
    return run


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def freshness(root: Path, samples: int = 100) -> None:
    run = make_run(root, "fresh", epochs=10, batches=False)
    data = RunData(run.path, watch=True)
    pause = threading.Event()
    latencies = []
    try:
        for epoch in range(11, 11 + samples):
            record = epoch_record(epoch)
            start = time.perf_counter()
            append_jsonl(run.metrics_path, record)
            while data.epochs.last("epoch") != epoch:  # the watcher thread ingests; we only look
                if time.perf_counter() - start > 5:
                    raise SystemExit(f"epoch {epoch} never reached the data layer")
                pause.wait(0.0002)
            latencies.append(time.perf_counter() - start)
            pause.wait(0.02)  # epochs do not come back to back
    finally:
        data.close()
    print(f"freshness, record on disk -> data layer ({samples} epochs, watchdog): "
          f"p50 {ms(pct(latencies, 0.5))}, p95 {ms(pct(latencies, 0.95))}, max {ms(max(latencies))}"
          f"  (on screen: + at most 1 s, the fragment's period)")


def serialize(figure) -> int:
    """What ``st.plotly_chart`` does with a figure on every run: to_dict, then JSON."""
    return len(plotly.io.to_json(figure.to_dict(), validate=False))


def refresh_cost(root: Path, repeats: int = 30) -> None:
    from app.views.run_page import FigureCache

    run = make_run(root, "big", epochs=5000, steps=40)
    start = time.perf_counter()
    data = RunData(run.path, watch=True)
    view = data.view()
    load = time.perf_counter() - start
    assert view.n_epochs == 5000 and len(view.batches["step"]) == 200_000
    cache = FigureCache()
    builders = {"loss": charts.loss_figure, "accuracy": charts.accuracy_figure, "lr": charts.learning_rate_figure,
                "batch": charts.batch_loss_figure}

    def page_refresh() -> tuple[float, int]:
        t = time.perf_counter()
        v = data.view()
        size = 0
        for kind, build in builders.items():
            fig = cache.get((kind, v.log_version), lambda: build(v))
            size += serialize(fig)
        return time.perf_counter() - t, size

    first, size = page_refresh()
    print("refresh cost, 1 run with 5,000 epochs and 200,000 batch records:")
    print(f"  first load (parse all files): {ms(load)}; first draw of the 4 charts: {ms(first)} "
          f"({size / 1e3:.0f} kB of figure JSON)")
    idle = [page_refresh()[0] for _ in range(repeats)]
    print(f"  refresh, nothing new:  median {ms(statistics.median(idle))}, p95 {ms(pct(idle, 0.95))}")
    fresh = []
    pause = threading.Event()
    try:
        for i in range(repeats):
            epoch = 5001 + i
            with open(run.batches_path, "a") as f:
                f.write(batch_lines(epoch))
            append_jsonl(run.metrics_path, epoch_record(epoch))
            deadline = time.monotonic() + 5
            while data.epochs.last("epoch") != epoch and time.monotonic() < deadline:
                pause.wait(0.001)
            fresh.append(page_refresh()[0])
    finally:
        data.close()
    print(f"  refresh, one new epoch (40 batches): median {ms(statistics.median(fresh))}, p95 {ms(pct(fresh, 0.95))}")
    data_only = []
    for _ in range(repeats):
        t = time.perf_counter()
        data.refresh(force=True)
        data_only.append(time.perf_counter() - t)
    print(f"  data layer alone, forced look at the files with nothing new: median {ms(statistics.median(data_only))}")


def overlay(root: Path, runs: int = 50, epochs: int = 1000) -> None:
    views = [RunData(make_run(root, f"trial-{i:02d}", epochs=epochs, batches=False).path, watch=False).view()
             for i in range(runs)]
    times = []
    for _ in range(5):
        t = time.perf_counter()
        fig = charts.overlay_figure(views, "val_loss", highlight="trial-07")
        size = serialize(fig)
        times.append(time.perf_counter() - t)
    print(f"overlay of {runs} runs x {epochs} epochs (build + serialize): median {ms(statistics.median(times))}, "
          f"{size / 1e3:.0f} kB")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        freshness(root)
        refresh_cost(root)
        overlay(root)


if __name__ == "__main__":
    main()
