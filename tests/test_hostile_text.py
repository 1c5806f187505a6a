"""Text that cannot be encoded (issue 18): lone UTF-16 surrogates and control characters from clients.

A lone surrogate (``"\\udfff"`` in JSON) is valid JSON but no UTF-8 text: it is rejected on arrival
with its reason, never printed raw, and scrubbed by every reader so no page, chart, table or CSV
breaks. Hypothesis's ``text()`` leaves surrogates out, so the strategies here put them in.
"""

from __future__ import annotations

import io
import itertools
import json
import re

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from streamlit.dataframe_util import convert_pandas_df_to_arrow_bytes
from streamlit.proto.Markdown_pb2 import Markdown
from streamlit.proto.PlotlyChart_pb2 import PlotlyChart

from trainer.contract import commands as cmds
from trainer.contract import jsonsafe
from trainer.contract.inbox import CommandInbox, Received
from trainer.contract.rundir import JsonlTail, RunDir, append_jsonl
from trainer.steering.steerable import check_command

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))

#: Any character at all, lone surrogates and control characters included, and often a surrogate.
any_char = st.characters(blacklist_categories=()) | st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
hostile_text = st.text(alphabet=any_char, max_size=12)
surrogate = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
with_surrogate = st.tuples(hostile_text, surrogate, hostile_text).map("".join)
values = st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | hostile_text,
                      lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
                      max_leaves=8)
NAMES = sorted(cmds.COMMANDS)
commands = st.fixed_dictionaries(
    {"id": hostile_text | st.from_regex(cmds.ID_PATTERN, fullmatch=True), "cmd": st.sampled_from(NAMES) | hostile_text},
    optional={"value": values, "source": hostile_text, "time": st.floats()})


def utf8_everywhere(value) -> bool:
    """Whether every string and key in ``value`` encodes as UTF-8 (what protobuf and Arrow need)."""
    json.dumps(value, ensure_ascii=False, allow_nan=True).encode("utf-8")  # raises on a surrogate
    return True


def raw_line(record: dict) -> bytes:
    """``record`` as a client would append it: surrogates as ``\\udfff`` escapes (json's ASCII output)."""
    return json.dumps(record).encode() + b"\n"


# ----------------------------------------------------------------------------- rejected on arrival


@pytest.mark.parametrize("record, where", [
    ({"id": "a", "cmd": "set_lr", "value": "0.1\udfff"}, '"value"'),
    ({"id": "a\udfff", "cmd": "pause"}, '"id"'),
    ({"id": "a", "cmd": "pause\udfff"}, '"cmd"'),
    ({"id": "a", "cmd": "pause", "source": "cli\ud800"}, '"source"'),
    ({"id": "a", "cmd": "note", "value": {"text": "hi \udfff"}}, '"value" → "text"'),
    ({"id": "a", "cmd": "note", "value": {"text\udfff": "hi"}}, 'a key of "value"'),
    ({"id": "a", "cmd": "adopt", "value": {"run": "/tmp/\udfff"}}, '"value" → "run"'),
])
def test_a_lone_surrogate_in_any_string_of_a_command_is_rejected_with_its_reason(record, where):
    with pytest.raises(cmds.CommandError) as e:
        cmds.validate(record)
    assert str(e.value).startswith(where) and "lone UTF-16 surrogate" in str(e.value)
    assert utf8_everywhere(str(e.value))


def test_the_inbox_reads_surrogates_raw_and_rejects_them_and_its_echo_is_utf8(tmp_path):
    run = RunDir(tmp_path / "r").create()
    run.commands_path.write_bytes(raw_line({"id": "n-1", "cmd": "note", "value": "x\udfff"})
                                  + b'{"id": "n-2", "cmd": "set_lr", "value": "\xed\xbf\xbf"}\n')  # UTF-8 of \udfff
    items = CommandInbox(run, lambda: 0).drain()
    assert [i.id for i in items] == ["n-1", "n-2"]
    for item in items:
        with pytest.raises(cmds.CommandError, match="surrogate"):
            check_command(item, set())
        echo = CommandInbox.describe(item)
        assert utf8_everywhere(echo) and "\\udfff" in echo["value"] or "\\udc" in echo["value"]


def test_say_escapes_client_text_and_survives_any_terminal():
    for encoding in ("utf-8", "ascii", "latin-1"):
        raw = io.BytesIO()
        stream = io.TextIOWrapper(raw, encoding=encoding, errors="strict", write_through=True)
        jsonsafe.say("rejected note 'x\udfff \x1b[2J\x07 α' \u202e", stream)
        shown = raw.getvalue().decode(encoding)
        assert "\\udfff" in shown and "\\x1b" in shown and "\\x07" in shown and "\\u202e" in shown
        assert "\x1b" not in shown and "\x07" not in shown, "no escape sequence of a client's reaches a terminal"
        assert ("α" if encoding == "utf-8" else "\\u03b1") in shown
    closed = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    closed.close()
    jsonsafe.say("nobody listens", closed)  # a closed terminal costs the line, not the trainer


# ----------------------------------------------------------------------------- ids


@pytest.mark.parametrize("bad", ["h\n", "h\r", "", " ", "a b", "a" * 129, "é", "a/b", 'a"b', "a\\b", "\udfff", "ＡＢ",
                                 "a\x00", 7, None, ["a"]])
def test_an_id_is_strictly_defined(bad):
    assert cmds.valid_id(bad) is None
    with pytest.raises(cmds.CommandError, match="'id'|\"id\""):
        cmds.validate({"id": bad, "cmd": "pause"})


@pytest.mark.parametrize("good", ["c-3f2a9b01d3e4", "pbt-p-0001-source", "replay-12", "a.b:c@d+e=f_g", "x" * 128])
def test_ids_every_client_makes_are_valid(good):
    assert cmds.valid_id(good) == good
    assert cmds.validate({"id": good, "cmd": "pause"}).id == good


def test_the_id_rule_has_one_source_that_the_format_document_quotes():
    from pathlib import Path

    doc = (Path(__file__).parents[1] / "docs" / "run-directory.md").read_text()
    assert f"`{cmds.ID_PATTERN.pattern}`" in doc


@SETTINGS
@given(hostile_text | st.from_regex(cmds.ID_PATTERN, fullmatch=True))
def test_every_accepted_id_is_short_visible_ascii_without_spaces(text):
    got = cmds.valid_id(text)
    assert got is None or (got == text and got.isascii() and got.isprintable() and " " not in got
                           and 1 <= len(got) <= 128)


# ----------------------------------------------------------------------------- properties, surrogates generated


@SETTINGS
@given(commands, with_surrogate)
def test_the_validator_rejects_any_command_holding_a_surrogate_and_only_with_command_error(record, bad):
    try:
        command = cmds.validate(record)
    except cmds.CommandError as e:
        assert utf8_everywhere(str(e))
    else:
        assert jsonsafe.find_surrogate(record) is None and utf8_everywhere(command.value)
    field = ["value", "source", "cmd", "id"][len(bad) % 4]
    with pytest.raises(cmds.CommandError, match="surrogate"):
        cmds.validate({**record, field: bad})


@SETTINGS
@given(commands)
def test_an_answer_echo_is_always_utf8_json(record):
    echo = CommandInbox.describe(Received(1, record, 0.0, 0))
    assert utf8_everywhere(echo)


@SETTINGS
@given(st.lists(values, min_size=1, max_size=4))
def test_every_reader_but_the_inbox_gets_utf8_text(tmp_path, records):
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"".join(raw_line({"v": v, "k": v}) for v in records) + b'{"bad": "\xff\xfe"}\n')
    read = JsonlTail(path).read_new()
    assert len(read) == len(records) + 1 and utf8_everywhere(read)
    raw = JsonlTail(path, scrub_text=False).read_new()
    assert [r["v"] for r in raw[:-1]] == [json.loads(json.dumps(v)) for v in records], "the inbox sees the text as sent"


counter = itertools.count()


def hostile_run(tmp_path, texts: list[str]) -> RunDir:
    """A run whose commands and journal hold ``texts`` in every field a client can fill."""
    run = RunDir(tmp_path / f"r{next(counter)}").create()
    run.write_config({"name": run.name, "epochs": 3})
    append_jsonl(run.metrics_path, {"epoch": 1, "step": 10, "loss": 1.0, "val_loss": 1.1, "lr": 0.01, "time": 5.0})
    with open(run.commands_path, "ab") as f, open(run.events_path, "ab") as g:
        for i, text in enumerate(texts):
            f.write(raw_line({"id": text, "cmd": text, "source": text, "value": text, "time": 1.0 + i}))
            f.write(raw_line({"id": f"ok-{i}", "cmd": "note", "source": text, "value": {"text": text}, "time": 2.0}))
            g.write(raw_line({"event": "note", "epoch": 1, "step": 10, "command_id": f"ok-{i}", "text": text,
                              "time": 3.0, "kind": text}))
            g.write(raw_line({"event": "rejected", "epoch": 1, "step": 10, "command_id": None, "cmd": text, "value": text,
                              "reason": text, "line": 2 * i + 1, "time": 3.0}))
            g.write(raw_line({"event": "applied", "epoch": 1, "step": 10, "command_id": text, "cmd": "checkpoint",
                              "checkpoint": text, "time": 3.0, "hparams": {"lr": 0.01}}))
            g.write(raw_line({"event": "adopted", "epoch": 1, "step": 10, "command_id": text, "source_run": text,
                              "source_checkpoint": text, "time": 3.0}))
        g.write(b'{"event": "note", "epoch": 1, "step": 10, "text": "not UTF-8 \xff", "time": 4.0}\n')
    return run


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(with_surrogate | hostile_text, min_size=1, max_size=3))
def test_the_journal_the_charts_and_the_latest_line_take_any_client_text(tmp_path, texts):
    from app.data import journal_view as journal
    from app.views import projector
    from app.figures.run_charts import interventions
    from app.data import RunData

    run = hostile_run(tmp_path, texts)
    data = RunData(run.path, watch=False)
    data.refresh(force=True)
    view = data.view()
    for frame in (journal.commands_table(view), journal.events_table(view)):
        pa.Table.from_pandas(frame)
        convert_pandas_df_to_arrow_bytes(frame)  # what st.dataframe sends
    notes = [i for i in interventions(view) if i.kind == "note"]
    assert notes and all(utf8_everywhere([i.text, i.detail]) for i in notes)
    assert all("<" not in i.text or "&lt;" in i.detail for i in notes), "a client's HTML is escaped in the hover"
    line = projector.latest_intervention(view)
    Markdown(body=line).SerializeToString()  # what the latest-intervention line sends
    charts = projector.SharedCharts()
    for kind in projector.CHART_KINDS:
        spec, element = charts.chart(view, kind)
        PlotlyChart(spec=spec, id=element).SerializeToString()
    data.close()


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(with_surrogate | hostile_text, min_size=1, max_size=3))
def test_csv_export_takes_any_client_text(tmp_path, texts):
    import pandas as pd

    from trainer.reports.export import export_run

    run = hostile_run(tmp_path, texts)
    out = tmp_path / f"export-{run.name}"
    metrics, journal_csv = export_run(run.path, "csv", out)
    table = pd.read_csv(journal_csv, keep_default_na=False)
    assert len(table) >= 4 * len(texts) and len(pd.read_csv(metrics)) == 1


def test_panda_export_csv_of_a_run_with_surrogates_exits_0(tmp_path):
    import subprocess
    import sys

    run = hostile_run(tmp_path, ["\udfff", "ok\ud800x", "<b>bold</b>\x1b[2J"])
    done = subprocess.run([sys.executable, "-m", "trainer", "export", str(run.path), "--format", "csv"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    text = (run.path / "export" / "journal.csv").read_text(encoding="utf-8")
    assert re.search(r"\\udfff", text) and "ok\\ud800x" in text


# ----------------------------------------------------------------------------- a real panda train on a terminal


HOSTILE_COMMANDS = [  # each rejected; printed escaped
    b'{"id": "s-value", "cmd": "set_lr", "value": "\\udfff"}\n',
    b'{"id": "s-note", "cmd": "note", "value": {"text": "hi \\ud800"}}\n',
    b'{"id": "s-source", "cmd": "pause", "source": "\\udfff"}\n',
    b'{"id": "s\\udfff", "cmd": "pause"}\n',
    b'{"id": "s-cmd", "cmd": "\\udfffpause"}\n',
    b'{"id": "h\\n", "cmd": "pause"}\n',
    b'{"id": "s-esc", "cmd": "set_lr", "value": "\\u001b[2J\\u0007"}\n',
]


def test_a_terminal_trainer_rejects_surrogates_prints_them_escaped_and_resumes_past_them(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    from conftest import answer, wait_for

    run = RunDir(tmp_path / "t")
    out = open(tmp_path / "out.txt", "wb")  # not --quiet: every rejection is printed (strict UTF-8 stdout)
    panda = [sys.executable, "-m", "trainer", "train"]
    proc = subprocess.Popen([*panda, "--run-dir", tmp_path, "--name", "t", "--epochs", "1000", "--pace", "0.05"],
                            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    try:
        wait_for(lambda: (run.read_status() or {}).get("state") == "running" or proc.poll() is not None,
                 tmp_path, what="running")
        with open(run.commands_path, "ab") as f:
            f.write(b"".join(HOSTILE_COMMANDS))
        assert answer(run, run.send_command("set_lr", 0.002, command_id="after"))["event"] == "applied"
        assert proc.poll() is None, (tmp_path / "out.txt").read_text(errors="replace")
        rejected = [e for e in run.read_events() if e.get("event") == "rejected"]
        assert len(rejected) == len(HOSTILE_COMMANDS)
        assert sum("surrogate" in e["reason"] for e in rejected) == 5 and any("'id'" in e["reason"] for e in rejected)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    with open(run.commands_path, "ab") as f:  # one more for the resumed process to answer and print
        f.write(b'{"id": "late", "cmd": "note", "value": "\\udfff"}\n')
    resumed = subprocess.Popen([*panda, "--resume", run.path, "--epochs", "2000"], stdout=out, stderr=subprocess.STDOUT)
    try:
        assert answer(run, "late")["event"] == "rejected"
        assert answer(run, run.send_command("stop", command_id="stop-1"))["event"] == "applied"
        assert resumed.wait(120) == 0
    finally:
        resumed.kill()
        out.close()
    printed = (tmp_path / "out.txt").read_bytes()
    assert b"\x1b" not in printed and b"\x07" not in printed, "no client escape sequence reached the terminal"
    assert printed.count(b"\\udfff") >= 4 and b"Traceback" not in printed
    printed.decode("utf-8")  # valid UTF-8 throughout
    answers = [e for e in run.read_events() if e.get("event") in ("applied", "rejected")]
    assert len(answers) == len(HOSTILE_COMMANDS) + 3, "nothing was answered twice across the restart"
