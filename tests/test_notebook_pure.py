"""``app.notebook`` without a kernel: the page's address, which folder is served, Colab's proxy
(through a stand-in for ``google.colab.output``, the one thing that cannot run here), and the
plain link a terminal gets."""

from __future__ import annotations

import html
import socket
import sys
import types
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given, strategies as st

from app import notebook
from app.notebook.display import PandaFrame, locate, page_path
from conftest_app import make_run, wait_until

pytestmark = pytest.mark.timeout(180)

names = st.text(alphabet=st.characters(blacklist_categories=()), min_size=1, max_size=40) | st.sampled_from(
    ["\udfff", 'a"b<c>&d', "x y&run=other&embed=false", "🐼", "%41", "' onload='alert(1)"])


class Iframes(HTMLParser):
    def __init__(self):
        super().__init__()
        self.srcs: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "iframe":
            self.srcs.append(dict(attrs)["src"])


@given(names)
def test_any_run_name_stays_one_query_value_inside_one_iframe(name):
    path = page_path(name)
    frame = PandaFrame(f"http://127.0.0.1:8501{path}", Path("/runs"), 600)
    parser = Iframes()
    parser.feed(frame._repr_html_())
    assert len(parser.srcs) == 1 and parser.srcs[0] == f"http://127.0.0.1:8501{path}"
    query = parse_qs(urlsplit(parser.srcs[0]).query, keep_blank_values=True, errors="strict")
    assert query.pop("embed") == ["true"] and query.pop("compact") == ["1"]
    try:
        assert query == {"run": [name.encode("utf-8").decode("utf-8")]}
    except UnicodeEncodeError:  # lone surrogates: no such name in a URL, the page picks the run
        assert query == {}
    assert "<" not in path and '"' not in path and " " not in path


def test_a_runs_folder_is_served_from_its_parent(tmp_path):
    make_run(tmp_path, "tiny", epochs_done=1, epochs=1, state="finished")
    assert locate(tmp_path / "tiny") == (tmp_path, "tiny")
    assert locate(tmp_path) == (tmp_path, None)
    assert locate(tmp_path, "coming") == (tmp_path, "coming")
    assert locate(tmp_path / "new") == (tmp_path / "new", None)  # not a run (yet): a run directory


def test_a_height_that_is_no_size_is_refused_before_any_server(tmp_path):
    with pytest.raises(ValueError, match="positive"):
        notebook.show(tmp_path, height=0)
    assert not notebook.servers() and not (tmp_path / "runs").exists()


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def colab_stand_in(monkeypatch) -> list:
    """A stand-in for ``google.colab.output``: records what the proxy was asked to serve."""
    calls = []
    output = types.ModuleType("google.colab.output")
    output.serve_kernel_port_as_iframe = lambda port, path="/", height="400": calls.append((port, path, height))
    google, colab = types.ModuleType("google"), types.ModuleType("google.colab")
    google.colab, colab.output = colab, output
    for name, module in (("google", google), ("google.colab", colab), ("google.colab.output", output)):
        monkeypatch.setitem(sys.modules, name, module)
    return calls


def test_a_terminal_gets_the_link_and_colab_the_proxy_of_the_same_server(tmp_path, capsys, monkeypatch):
    make_run(tmp_path, "tiny", epochs_done=2, epochs=2, state="finished")
    try:
        notebook.show(tmp_path / "tiny")
        (root, server), = notebook.servers().items()
        assert root == tmp_path.resolve()
        link = f"http://127.0.0.1:{server.port}/?run=tiny&embed=true&compact=1"
        assert capsys.readouterr().out.strip() == f"Panda dashboard for {root}: {link}"
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/_stcore/health", timeout=5) as r:
            assert r.read() == b"ok"

        calls = colab_stand_in(monkeypatch)
        notebook.show(tmp_path, run="tiny", height=321)
        notebook.show(tmp_path / "tiny", height=400)
        assert notebook.servers() == {root: server}  # still the one server
        page = "/?run=tiny&embed=true&compact=1"
        assert calls == [(server.port, page, 321), (server.port, page, 400)]
        assert capsys.readouterr().out == ""  # the proxy displays the page; nothing printed
    finally:
        assert notebook.stop() == 1
    assert wait_until(lambda: not listening(server.port), timeout=20)
    assert server.process.poll() is not None
    assert notebook.stop() == 0 and not notebook.servers()
