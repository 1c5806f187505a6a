"""Panda inside JupyterLab, as a person sees it: a real ``jupyter lab`` server, headless Chromium
runs a cell that calls ``show()``, the run's charts appear inside the cell's iframe. The picture
is saved as ``docs/notebook.png`` (the README's). Stopping JupyterLab stops its kernel, and with it
the dashboard: nothing listens on its port afterwards."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import nbformat
import pytest

from conftest_app import free_port, interrupt, make_run, wait_until
from test_notebook import IFRAME, kernel_env, listening

pytestmark = pytest.mark.timeout(600)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "notebook.png"
#: JupyterLab's user settings for the test: no news or update checks (no network), no toast over the picture.
QUIET = {"@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                               "checkForUpdates": False}}


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture
def lab(tmp_path):
    """``jupyter lab`` on loopback and a free port, serving ``tmp_path`` (no token: a test's own server)."""
    settings = tmp_path / ".lab-settings"
    for name, values in QUIET.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(values), encoding="utf-8")
    env = {**kernel_env(), "JUPYTERLAB_SETTINGS_DIR": str(settings), "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / ".ws"),
           "JUPYTER_CONFIG_DIR": str(tmp_path / ".jupyter"), "JUPYTER_RUNTIME_DIR": str(tmp_path / ".runtime")}
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         f"--ServerApp.root_dir={tmp_path}", "--IdentityProvider.token=", "--ServerApp.password=",
         "--allow-root", "--ServerApp.terminals_enabled=False", "--LabApp.extension_manager=readonly",  # CI is root
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=env, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: answers(f"http://127.0.0.1:{port}/api/status") or process.poll() is not None,
                          timeout=120, interval=0.5) and process.poll() is None, "jupyter lab did not start"
        yield f"http://127.0.0.1:{port}", process
    finally:
        interrupt(process)


def test_the_page_inside_jupyterlab(tmp_path, lab):
    from playwright.sync_api import expect, sync_playwright

    base, process = lab
    make_run(tmp_path / "runs", "digits-mlp", epochs_done=24, epochs=24, state="finished")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        'from app.notebook import show\nshow("runs/digits-mlp", height=620)')])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(nb, tmp_path / "panda.ipynb")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{base}/lab/tree/panda.ipynb")
            expect(page.locator(".jp-Notebook .jp-Cell").first).to_be_visible(timeout=120_000)
            expect(page.locator(".jp-StatusBar-Widget", has_text="Idle")).to_have_count(1, timeout=120_000)
            page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current").click()  # the cell gets the width
            page.locator(".jp-Notebook .jp-Cell .jp-InputArea-editor").first.click()
            page.keyboard.press("Control+Enter")  # run the cell, stay on it
            iframe = page.locator(".jp-OutputArea-output iframe")
            expect(iframe).to_have_count(1, timeout=120_000)
            port = int(IFRAME.search(iframe.evaluate("e => e.outerHTML")).group(2))
            frame = page.frame_locator(".jp-OutputArea-output iframe")
            expect(frame.locator("h2", has_text="digits-mlp")).to_be_visible(timeout=180_000)
            inner, = [f for f in page.frames if f.url.startswith(f"http://127.0.0.1:{port}/")]
            inner.wait_for_function("() => [...document.querySelectorAll('.js-plotly-plot')]"
                                    ".filter(g => g._fullData && g._fullData.length).length >= 2", timeout=180_000)
            expect(frame.locator(".st-key-pause button")).to_be_visible()  # the Steer panel is in the cell
            assert not frame.locator('[data-testid="stException"]').count()
            shot = tmp_path / "notebook.png"
            page.screenshot(path=str(shot), timeout=120_000)
        finally:
            browser.close()
    process.terminate()  # SIGTERM: JupyterLab shuts its kernels down and exits
    process.wait(timeout=60)
    assert wait_until(lambda: not listening(port), timeout=60), f"port {port} still listens after JupyterLab stopped"
    SCREENSHOT.parent.mkdir(exist_ok=True)
    shutil.copyfile(shot, SCREENSHOT)
    assert SCREENSHOT.stat().st_size > 50_000
