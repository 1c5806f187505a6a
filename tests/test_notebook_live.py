"""``PandaCallback(..., show=True)`` in a real Jupyter kernel, steered from inside the cell's iframe.

The kernel trains a small Keras model on digits; the page appears in the cell before ``fit``'s
first line; headless Chromium opens the cell's HTML (the iframe, as the notebook renders it),
watches the loss chart grow and presses Pause inside the frame; the trainer pauses. A stop from
``panda ctl``'s path ends ``fit``; the kernel's shutdown ends the server. Outside a notebook
``show=True`` does nothing.
"""

from __future__ import annotations

import textwrap

import pytest

from conftest_app import wait_until
from test_notebook import IFRAME, healthy, kernel_env, listening
from trainer.contract.rundir import RunDir

pytestmark = pytest.mark.timeout(420)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]

FIT = """\
import threading
import keras
from sklearn.datasets import load_digits
from app.notebook import PandaCallback

x, y = load_digits(return_X_y=True)
x = (x / 16).astype("float32")
model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"),
                          keras.layers.Dense(10, activation="softmax")])
model.compile(optimizer=keras.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
pace = keras.callbacks.LambdaCallback(on_epoch_end=lambda *_: threading.Event().wait(0.3))  # epochs to watch
history = model.fit(x, y, epochs=2000, batch_size=64, validation_split=0.2, verbose=2,
                    callbacks=[PandaCallback({run!r}, show=True, height=700), pace])
print("fit returned after", len(history.epoch), "epochs")
"""


def _points(frame) -> int:
    return frame.evaluate("""() => { const g = document.querySelector('.st-key-chart-loss .js-plotly-plot');
                                     return g && g._fullData && g._fullData.length ? g._fullData[0].x.length : 0 }""")


def test_the_callback_shows_the_page_above_fit_and_pause_works_from_inside_the_cell(tmp_path):
    from jupyter_client.manager import start_new_kernel
    from playwright.sync_api import expect, sync_playwright

    run = RunDir(tmp_path / "runs" / "fit")
    km, kc = start_new_kernel(kernel_name="python3", env=kernel_env(), cwd=str(tmp_path))
    port = None
    try:
        msg_id = kc.execute(FIT.format(run=str(run.path)))
        before_page = []  # what fit printed before the page was displayed
        while port is None:
            msg = kc.get_iopub_msg(timeout=240)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            assert kind != "error", content
            if kind == "stream":
                before_page.append(content["text"])
            elif kind == "display_data" and "text/html" in content["data"]:
                cell_html = content["data"]["text/html"]
                port = int(IFRAME.search(cell_html).group(2))
        assert not any("Epoch" in text for text in before_page), before_page  # the page comes first
        assert 'height="700"' in cell_html and "?run=fit&amp;embed=true" in cell_html
        assert healthy(port)
        host = tmp_path / "cell.html"
        host.write_text(f"<!doctype html><html><body style='width:1100px'>{cell_html}</body></html>", encoding="utf-8")

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1150, "height": 800})
                page.goto(host.as_uri())
                frame = page.frame_locator("iframe")
                expect(frame.locator("h2", has_text="fit")).to_contain_text("running", timeout=60_000)
                inner, = [f for f in page.frames if f.url.startswith(f"http://127.0.0.1:{port}/")]
                inner.wait_for_function("() => { const g = document.querySelector('.st-key-chart-loss .js-plotly-plot');"
                                        " return g && g._fullData && g._fullData.length && g._fullData[0].x.length >= 2 }",
                                        timeout=60_000)
                seen = _points(inner)
                inner.wait_for_function(  # live: the chart grows without a reload
                    "n => document.querySelector('.st-key-chart-loss .js-plotly-plot')._fullData[0].x.length > n",
                    arg=seen + 1, timeout=30_000)
                expect(frame.locator(".st-key-pause button")).to_be_enabled(timeout=30_000)
                frame.locator(".st-key-pause button").click(timeout=60_000)
                assert wait_until(lambda: (run.read_status() or {}).get("state") == "paused", timeout=30)
                expect(frame.get_by_text("pause: applied at epoch").first).to_be_visible(timeout=15_000)  # the toast, the answers panel
                assert not frame.locator('[data-testid="stException"]').count()
            finally:
                browser.close()

        run.send_command("stop", source="test")
        reply = kc.get_shell_msg(timeout=120)
        while reply["parent_header"].get("msg_id") != msg_id:  # start_new_kernel's kernel_info reply comes first
            reply = kc.get_shell_msg(timeout=120)
        assert reply["content"]["status"] == "ok", reply["content"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel()
    assert run.read_status()["state"] in ("stopped", "completed", "finished"), run.read_status()["state"]
    assert wait_until(lambda: not listening(port), timeout=30), f"port {port} still listens after the kernel shut down"


def test_outside_a_notebook_show_does_nothing(tmp_path):
    import keras
    import numpy as np

    from app import notebook

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    callback = notebook.PandaCallback(tmp_path / "quiet", show=True)
    model.fit(np.zeros((8, 4), "float32"), np.zeros(8, "int64"), epochs=1, verbose=0, callbacks=[callback])
    assert RunDir(tmp_path / "quiet").read_metrics()  # the trainer's callback did its work ...
    assert notebook.servers() == {}  # ... and no page was served
