"""Issue 18, files in a run directory: every reader survives any content and never blocks.

Another run's (or a sweep's) files may hold anything — a careless editor, a sync tool, a crash, a
curious student. The readers here are the app's and the trainer's; each must give typed values or
a one-line notice, never raise, never block on a FIFO.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.data.rundata import RunData
from app.data.runstore import RunStore, RunSummary
from trainer.contract.records import Status, checkpoint_meta, config_record, trial_record
from trainer.contract.rundir import (
    CHECKPOINT_META, MAX_SNAPSHOT_BYTES, NotRegularFile, RunDir, RunDirError, open_regular, read_snapshot,
)

# --------------------------------------------------------------------------- helpers


def make_run(root: Path, name: str, created: float = 1.0, checkpoints: int = 2) -> RunDir:
    """A finished run's folder as a trainer leaves it (no TensorFlow needed to read one)."""
    run = RunDir(root / name).create()
    run.write_config({"name": name, "trainer": "panda-train", "created": created, "epochs": 3,
                      "hparams": {"lr": 0.01}, "dataset": {"name": "digits", "n_classes": 10}})
    run.write_status(Status(name=name, state="finished", epoch=3, epochs=3, heartbeat=1.0, hparams={"lr": 0.01}))
    for seq in range(1, checkpoints + 1):
        folder = run.checkpoints_path / f"ckpt-{seq:05d}"
        folder.mkdir()
        (folder / CHECKPOINT_META).write_text(json.dumps({"seq": seq, "epoch": seq, "step": 10 * seq, "branch": 0}))
        (folder / "ckpt.index").write_bytes(b"")
    return run


def finishes(call, timeout: float = 20.0):
    """``call()``'s result, asserting it returns within ``timeout`` (a FIFO must never block a reader)."""
    out: dict = {}

    def target():
        try:
            out["value"] = call()
        except BaseException as e:  # re-raised below, on the test's thread
            out["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"{call} blocked for {timeout}s"
    if "error" in out:
        raise out["error"]
    return out["value"]


# --------------------------------------------------------------------------- open_regular (for every reader)


def test_open_regular_refuses_a_fifo_a_socket_and_a_folder_without_blocking(tmp_path):
    fifo, sock, plain = tmp_path / "fifo", tmp_path / "sock", tmp_path / "plain"
    os.mkfifo(fifo)  # no writer: a plain open() would block here forever
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock))
    plain.write_bytes(b"{}")
    try:
        for special in (fifo, sock, tmp_path, "/dev/zero"):
            with pytest.raises(NotRegularFile):
                finishes(lambda: open_regular(special))
        with pytest.raises(FileNotFoundError):
            open_regular(tmp_path / "missing")
        with open_regular(plain) as f:
            assert f.read() == b"{}"
    finally:
        server.close()


# --------------------------------------------------------------------------- one reader per record type


@pytest.mark.parametrize("content, notice", [
    (b"[1, 2]", "holds a JSON array, not an object"),
    (b'"running"', "holds a JSON string"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b'{"state": "run', "not valid JSON"),
    (b"[" * 100_000, "not valid JSON"),
    (b" " * (MAX_SNAPSHOT_BYTES + 1), "over 4 MiB"),
])
def test_a_snapshot_that_is_no_json_object_is_a_notice(tmp_path, content, notice):
    path = tmp_path / "status.json"
    path.write_bytes(content)
    read = read_snapshot(path, Status.from_json)
    assert read.record is None and notice in read.notice and "\n" not in read.notice


def test_wrong_types_in_status_and_config_read_as_no_value():
    status = Status.from_json({"state": ["running"], "epoch": "x", "heartbeat": "soon", "hparams": [1],
                               "message": {"a": 1}, "pid": 2**80})
    assert (status.state, status.epoch, status.heartbeat, status.hparams, status.pid, status.message) == (
        "unknown", 0, 0.0, {}, None, None)
    config = config_record({"schema_version": 1, "created": "yesterday", "epochs": 2.5, "devices": ["CPU:0", 3],
                            "versions": {"tensorflow": 2}, "name": "\udfff", "dataset": {"n_classes": "ten"},
                            "seed": 7, "val_split": 0.2})
    assert config == {"schema_version": 1, "seed": 7, "versions": {}, "dataset": {}, "val_split": 0.2}
    assert config_record([]) is None


@pytest.mark.parametrize("meta, words", [
    ([1], "not a JSON object"), ({"seq": "3", "epoch": 1, "step": 2}, "seq"),
    ({"seq": 3, "epoch": True, "step": 2}, "epoch"),
    ({"seq": 3, "epoch": 1}, "step"), ({"seq": 3.0, "epoch": 1, "step": 2}, "seq"),
])
def test_a_checkpoint_meta_of_wrong_types_is_refused_with_the_reason(meta, words):
    with pytest.raises(ValueError, match=words):
        checkpoint_meta(meta)


def test_checkpoint_listing_skips_each_unusable_checkpoint_with_its_reason(tmp_path):
    run = make_run(tmp_path, "r", checkpoints=6)
    metas = {n: run.checkpoints_path / f"ckpt-{n:05d}" / CHECKPOINT_META for n in range(1, 7)}
    metas[2].write_text("not json")
    metas[3].write_text("[1]")
    metas[4].write_text('{"seq": "4", "epoch": 4, "step": 40}')  # seq of mixed types across checkpoints
    metas[5].unlink()
    os.mkfifo(metas[5])
    metas[6].unlink()
    good, bad = finishes(run.checkpoint_listing)
    assert [m["name"] for m in good] == ["ckpt-00001"] == [m["name"] for m in run.list_checkpoints()]
    assert dict(bad) == {"ckpt-00002": "meta.json is not valid JSON",
                         "ckpt-00003": "meta.json holds a JSON array, not an object",
                         "ckpt-00004": "meta.json has no whole-number seq",
                         "ckpt-00005": "meta.json is not a regular file",
                         "ckpt-00006": "meta.json is missing"}


def test_trial_names_read_from_trials_jsonl_are_run_names():
    for bad in ("../../private/run", "/etc", "..", ".hidden", "a/b", "x\n", ["trial-1"], "", "t" * 81, "\udfff"):
        assert trial_record({"trial": bad, "state": "finished"}) is None, bad
    assert trial_record({"trial": "trial-0001", "best_val_accuracy": "0.9", "params": {"lr": [1]}}) == {
        "trial": "trial-0001", "params": {}}


# --------------------------------------------------------------------------- the app: one bad run costs one notice


def test_another_runs_bad_status_or_config_costs_it_a_notice_never_the_run_list(tmp_path):
    good = make_run(tmp_path, "good", created=9.0)
    bad = {name: make_run(tmp_path, name, created=1.0) for name in ("list", "epoch-x", "config-list", "fifo", "bytes")}
    bad["list"].status_path.write_text("[1, 2]")
    bad["epoch-x"].status_path.write_text('{"state": "running", "epoch": "x", "heartbeat": "x", "pid": [1]}')
    bad["config-list"].config_path.write_text("[]")
    bad["fifo"].status_path.unlink()
    os.mkfifo(bad["fifo"].status_path)
    bad["bytes"].status_path.write_bytes(b"\xff\xfe\x00\xc3(\n")
    store = RunStore(tmp_path, watch=False)
    runs = {r.name: r for r in finishes(store.runs)}
    assert set(runs) == {"good", *bad}
    good_line = runs["good"]
    assert good_line.notice is None and (good_line.state, good_line.epoch, good_line.epochs) == ("finished", 3, 3)
    assert runs["list"].notice == "status.json holds a JSON array, not an object"
    assert runs["epoch-x"].notice is None and runs["epoch-x"].epoch == 0 and runs["epoch-x"].state == "not answering"
    assert runs["config-list"].notice == "config.json holds a JSON array, not an object"
    assert runs["fifo"].notice == "status.json is not a regular file"
    assert runs["bytes"].notice == "status.json is not UTF-8 text"
    assert [r.name for r in finishes(store.runs)][0] == "good", "newest first, as before"
    for name, run in bad.items():  # each run's own page: typed values and the one-line notice
        view = finishes(lambda: store.run(run.path).view())
        assert view.notice == runs[name].notice and isinstance(view.state(), str)
        assert view.status is None or isinstance(view.status["epoch"], int)
    assert finishes(lambda: store.run(good.path).view()).notice is None


# Arbitrary content for any file: bytes, JSON of any (wrong) type with lone surrogates, a FIFO, a folder.
surrogate_text = st.text(alphabet=st.characters(blacklist_categories=()), max_size=12) | st.just("\udfff")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70) | st.floats() | surrogate_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(surrogate_text, inner, max_size=4), max_leaves=12)
record_keys = st.sampled_from(["state", "epoch", "epochs", "step", "branch", "pid", "host", "heartbeat", "message",
                               "hparams", "last", "created", "name", "dataset", "versions", "devices", "seq", "time",
                               "metrics", "schema_version", "trainer", "checkpoint", "reason"])
records = st.dictionaries(record_keys, json_values, max_size=8)


def _json_bytes(value) -> bytes:
    return json.dumps(value, allow_nan=True).encode("utf-8")  # "\udfff" is written as its JSON escape


contents = st.one_of(
    st.binary(max_size=200),
    json_values.map(_json_bytes),
    records.map(_json_bytes),
    records.map(lambda r: _json_bytes(r) + b"\n"),  # as a JSONL line
    st.sampled_from(["fifo", "folder", "missing"]),
)
SNAPSHOTS = ("config.json", "status.json", "checkpoints/ckpt-00001/meta.json", "checkpoints/ckpt-00002/meta.json")
LOGS = ("metrics.jsonl", "events.jsonl", "commands.jsonl", "batches.jsonl")  # JsonlTail's: bytes only here


def _put(path: Path, content) -> None:
    if path.is_dir():
        path.rmdir()
    elif path.exists() or path.is_symlink():
        path.unlink()
    if content == "fifo":
        os.mkfifo(path)
    elif content == "folder":
        path.mkdir()
    elif content != "missing":
        path.write_bytes(content)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(snapshots=st.tuples(*[contents] * len(SNAPSHOTS)),
       logs=st.tuples(*[st.binary(max_size=200) | records.map(lambda r: _json_bytes(r) + b"\n")] * len(LOGS)))
def test_any_content_in_any_file_gives_typed_values_or_a_notice(tmp_path_factory, snapshots, logs):
    root = tmp_path_factory.mktemp("runs")
    make_run(root, "good", created=5.0)
    run = make_run(root, "hostile", created=1.0)
    for name, content in zip(SNAPSHOTS, snapshots):
        _put(run.path / name, content)
    for name, content in zip(LOGS, logs):
        _put(run.path / name, content)

    summaries = finishes(RunStore(root, watch=False).runs)
    assert all(isinstance(s, RunSummary) for s in summaries)
    assert any(s.name == "good" and s.notice is None and s.epoch == 3 for s in summaries), "the other run is untouched"
    for s in summaries:
        assert isinstance(s.state, str) and isinstance(s.epoch, int) and isinstance(s.created, float)
        assert s.epochs is None or isinstance(s.epochs, int)
        assert s.notice is None or (isinstance(s.notice, str) and "\n" not in s.notice)

    view = finishes(lambda: RunData(run.path, watch=False).view())
    assert isinstance(view.state(), str) and isinstance(view.word(view.state()), str)
    assert view.status is None or (isinstance(view.status["epoch"], int) and isinstance(view.status["hparams"], dict))
    assert view.config is None or isinstance(view.config, dict)

    status = finishes(run.status)
    assert status is None or isinstance(status, Status)
    good, bad = finishes(run.checkpoint_listing)
    for meta in good:
        assert all(isinstance(meta[k], int) for k in ("seq", "epoch", "step", "branch"))
    assert all(isinstance(name, str) and isinstance(why, str) for name, why in bad)
    try:
        config = finishes(run.read_config)
        assert config["schema_version"] == 1
    except RunDirError as e:  # the one way read_config refuses
        assert "\n" not in str(e)


# --------------------------------------------------------------------------- the Sweeps page: names are run names


def test_a_trial_named_out_of_the_sweep_is_not_shown_and_babysit_cannot_open_it(tmp_path):
    from streamlit.testing.v1 import AppTest

    from app.data import sweeps as sweep_data
    from test_search_page import make_sweep

    root = tmp_path / "runs"
    sweep = make_sweep(root, n=2)
    make_run(tmp_path, "private")  # tmp/private: what ../../private names from runs/s1
    for name in ("../../private", "../../private/run", "/etc", "x\n", "..", ["trial-0001"]):
        sweep.append_trial({"trial": name, "round": 1, "state": "finished", "best_val_accuracy": 1.0})
    sweep.append_trial({"trial": "trial-0002", "round": "one", "params": [1], "best_val_accuracy": "high"})

    view = sweep_data.load_sweep(sweep.path)
    assert list(view.trials) == ["trial-0001", "trial-0002"]
    assert view.trials["trial-0002"].round == 1 and isinstance(view.trials["trial-0002"].params, dict)
    assert isinstance(view.trials["trial-0002"].best_val_accuracy, float)  # "high" is no score: the earlier one stands
    assert set(sweep_data.trials_frame(view)["trial"]) == {"trial-0001", "trial-0002"}
    with pytest.raises(ValueError):
        sweep_data.trial_key(view, "../../private")
    with pytest.raises(ValueError):
        sweep.trial_run("../../private")

    def app(path: str, runs_root: str) -> None:
        from pathlib import Path

        from app.views.sweep_page import render_sweep

        render_sweep(Path(path), runs_root=Path(runs_root))

    at = AppTest.from_function(app, args=(str(sweep.path), str(root)), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    assert len(at.dataframe) == 1 and set(at.dataframe[0].value["trial"]) == {"trial-0001", "trial-0002"}
    assert not any("private" in o or ".." in o or "etc" in o for o in at.selectbox[0].options)
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert at.session_state["run"] in ("s1/trial-0001", "s1/trial-0002")
