"""A browser session without a browser: Streamlit's own websocket protocol, as ``bench/audience.py`` speaks it.

A client of ``/_stcore/stream`` sends ``BackMsg`` protobufs (a script run with its query string and
widget states, a ``clear_cache``) and receives ``ForwardMsg`` protobufs (the page's elements). Since
it sends whatever it likes, it is what a hostile viewer is: a forged click is one widget state.
The tests speak it against a real ``panda app`` (:func:`panda_app`).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ClientState_pb2 import ClientState
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState, WidgetStates
from websockets.sync.client import connect

from conftest_app import free_port, interrupt, wait_until

ROOT = Path(__file__).resolve().parent.parent
#: The element types that are widgets here (their proto carries the widget id).
WIDGET_FIELDS = ("button", "selectbox", "text_input", "number_input", "slider", "checkbox")


class Session:
    """One browser tab: a websocket to the server, optionally with the browser's cookie."""

    def __init__(self, port: int, cookie: str | None = None):
        headers = {"Cookie": cookie} if cookie else None
        self._stack = contextlib.ExitStack()
        self.ws = self._stack.enter_context(connect(
            f"ws://127.0.0.1:{port}/_stcore/stream", subprotocols=["streamlit"], origin=f"http://127.0.0.1:{port}",
            additional_headers=headers, max_size=None))
        self.pages: dict[str, str] = {}  # url path -> page script hash
        self.page_hash = ""
        self.elements: list = []  # the last script run's new elements

    def close(self) -> None:
        self._stack.close()

    def send(self, **fields) -> None:
        self.ws.send(BackMsg(**fields).SerializeToString())

    def run(self, query: str = "", page: str | None = None, widgets: list[WidgetState] = (),
            timeout: float = 60.0) -> list:
        """Run the page script (``page``: a url path such as ``lessons``) and collect what it draws."""
        page_hash = self.pages.get(page, "") if page else self.page_hash
        state = ClientState(query_string=query, page_script_hash=page_hash,
                            widget_states=WidgetStates(widgets=list(widgets)))
        self.send(rerun_script=state)
        self.elements = []
        deadline = time.monotonic() + timeout
        while True:
            raw = self.ws.recv(timeout=max(deadline - time.monotonic(), 0.01))
            msg = ForwardMsg.FromString(raw)
            kind = msg.WhichOneof("type")
            if kind == "navigation":
                self.pages = {p.url_pathname: p.page_script_hash for p in msg.navigation.app_pages}
                self.page_hash = msg.navigation.page_script_hash or self.page_hash
            elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
                self.elements.append(msg.delta.new_element)
            elif kind == "script_finished" and msg.script_finished in (ForwardMsg.FINISHED_SUCCESSFULLY,
                                                                        ForwardMsg.FINISHED_WITH_COMPILE_ERROR):
                return self.elements

    def widget_id(self, key: str) -> str | None:
        """The id of the widget drawn with ``key`` in the last run (Streamlit ends a keyed id with ``-key``)."""
        for element in self.elements:
            kind = element.WhichOneof("type")
            if kind in WIDGET_FIELDS and getattr(element, kind).id.endswith(f"-{key}"):
                return getattr(element, kind).id
        return None

    def text(self) -> str:
        """Everything the last run drew, as text (markdown, alerts, HTML, exceptions)."""
        return "\n".join(str(e) for e in self.elements)

    def presenter_key(self) -> str | None:
        """The presenter key the page handed this browser in its cookie script, if any."""
        match = re.search(r"panda_presenter=([A-Za-z0-9_-]+);", self.text())
        return match.group(1) if match else None

    def is_viewer(self) -> bool:
        """Whether the last run drew the viewers' projection (its banner), not the presenter's page."""
        return "panda-banner" in self.text()


@contextlib.contextmanager
def session(port: int, cookie: str | None = None):
    s = Session(port, cookie)
    try:
        yield s
    finally:
        s.close()


class PandaApp:
    """``panda app --token-file`` on a free port, its terminal output in a file, its home in ``tmp``."""

    def __init__(self, tmp: Path, root: Path, *extra: str, token: str = "s3cret-token"):
        self.port = free_port()
        self.home = tmp / "home"
        self.home.mkdir(exist_ok=True)
        token_file = tmp / "token"
        token_file.write_text(token + "\n")
        self.output = tmp / f"panda-app-{self.port}.txt"
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("PANDA_")}, "HOME": str(self.home),
               "PYTHONPATH": str(ROOT)}
        with open(self.output, "w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app.serving.panda_cli", "app", "--run-dir", str(root), "--port", str(self.port),
                 "--token-file", str(token_file), *extra], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp)
        if not wait_until(lambda: "Ctrl-C" in self.terminal() or self.process.poll() is not None, timeout=90):
            raise AssertionError("panda app did not start:\n" + self.terminal())
        assert self.process.poll() is None, self.terminal()

    def terminal(self) -> str:
        return self.output.read_text(errors="replace")

    def steer_file(self) -> Path:
        return self.home / ".panda" / f"steer-{self.port}.txt"

    def code(self) -> str:
        return re.search(r"\?code=([A-Za-z0-9_-]+)", self.steer_file().read_text()).group(1)

    def stop(self) -> None:
        interrupt(self.process)


def listening(port: int) -> bool:
    """Whether anything accepts connections on ``port`` (loopback)."""
    import socket

    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) == 0
