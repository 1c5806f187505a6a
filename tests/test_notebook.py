"""Panda in a real notebook: nbclient runs a Jupyter kernel that calls ``show()`` and ``%panda``.

The cell's output must hold an iframe to a loopback URL whose server answers, several calls must
share one server, no token may reach the saved notebook, and the server must go with the kernel:
after a shutdown (atexit) and after a SIGKILL (PR_SET_PDEATHSIG) nothing listens on its port.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import urllib.request
from pathlib import Path

import nbformat
import pytest
from jupyter_client.manager import start_new_kernel
from nbclient import NotebookClient

from conftest_app import make_run, wait_until

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parent.parent
IFRAME = re.compile(r'<iframe src="(http://127\.0\.0\.1:(\d+)/\?[^"]*)"')
SECRET = "not-for-the-notebook-7f3a"  # a presenter token in the kernel's environment


def kernel_env() -> dict:
    """The kernel imports this checkout's ``app`` (not an installed one) and holds a presenter token."""
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {**os.environ, "PYTHONPATH": path, "PANDA_TOKEN": SECRET}


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=5) as response:
            return response.status == 200 and response.read() == b"ok"
    except OSError:
        return False


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def html_outputs(cell) -> list[str]:
    return [o["data"]["text/html"] for o in cell.outputs if "text/html" in o.get("data", {})]


def test_show_and_the_magic_embed_one_loopback_server_that_goes_with_the_kernel(tmp_path):
    runs = tmp_path / "runs"
    make_run(runs, "tiny", epochs_done=3, epochs=3, state="finished")
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(f"from app.notebook import show\nshow({str(runs / 'tiny')!r})"),
        nbformat.v4.new_code_cell(f"%load_ext app.notebook\n%panda --run-dir {runs} --run tiny --height 500"),
    ])
    client = NotebookClient(nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    with client.setup_kernel(env=kernel_env()):
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
        assert [o["output_type"] for o in nb.cells[0].outputs] == ["display_data"]  # no warning, no server log
        shown, magic = (html_outputs(cell) for cell in nb.cells)
        assert len(shown) == 1 and len(magic) == 1, [c.outputs for c in nb.cells]
        url, port = IFRAME.search(shown[0]).groups()
        assert url == f"http://127.0.0.1:{port}/?run=tiny&amp;embed=true&amp;compact=1"  # the run's compact page
        assert 'width="100%"' in shown[0] and 'height="800"' in shown[0]
        port = int(port)
        assert healthy(port)
        assert IFRAME.search(magic[0]).group(2) == str(port), "the magic started a second server"
        assert 'height="500"' in magic[0]
        plain = [o["data"]["text/plain"] for o in nb.cells[0].outputs if "text/plain" in o.get("data", {})]
        assert plain == [f"Panda dashboard for {runs}: http://127.0.0.1:{port}/?run=tiny&embed=true&compact=1"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as page:
            assert page.status == 200 and b"<title>" in page.read()
    assert wait_until(lambda: not listening(port), timeout=30), f"port {port} still listens after the kernel shut down"
    saved = tmp_path / "saved.ipynb"
    nbformat.write(nb, saved)
    text = saved.read_text(encoding="utf-8")
    assert SECRET not in text and "code=" not in text and "token" not in text.lower()
    assert json.loads(text)["cells"][0]["outputs"]  # the output was saved, just nothing secret in it


def test_a_killed_kernel_takes_its_server_with_it(tmp_path):
    """SIGKILL runs no atexit handler: the server ends through PR_SET_PDEATHSIG."""
    make_run(tmp_path, "tiny", epochs_done=2, epochs=2, state="finished")
    km, kc = start_new_kernel(kernel_name="python3", env=kernel_env(), cwd=str(tmp_path))
    try:
        outputs = []
        reply = kc.execute_interactive(f"from app.notebook import show\nshow({str(tmp_path)!r}, run='tiny')",
                                       timeout=240, output_hook=outputs.append)
        assert reply["content"]["status"] == "ok", reply["content"]
        html = [m["content"]["data"]["text/html"] for m in outputs if m["msg_type"] == "display_data"]
        port = int(IFRAME.search(html[0]).group(2))
        assert healthy(port)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)  # SIGKILL, no shutdown request
    assert sys.platform.startswith("linux")
    assert wait_until(lambda: not listening(port), timeout=30), f"port {port} still listens after the kernel was killed"
