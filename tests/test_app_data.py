"""The dashboard's data layer: incremental, tolerant of bad lines, rewinds and deleted folders."""

from __future__ import annotations

import os
import shutil
import time

import numpy as np
import pytest

from app.data import SMOOTHING, RunData, RunStore
from conftest_app import batch_records, epoch_record, make_run, wait_until, write_status
from trainer.contract.rundir import append_jsonl

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def run(tmp_path):
    return make_run(tmp_path, "demo", epochs_done=10)


def test_reads_everything_once_then_only_what_was_appended(run):
    data = RunData(run.path, watch=False)
    view = data.view()
    assert list(view.epochs["epoch"]) == list(range(1, 11))
    assert len(view.batches["step"]) == sum(len(batch_records(e)) for e in range(1, 11))
    first = data.records_read
    assert data.refresh(force=True) is False  # nothing new: nothing parsed
    assert data.records_read == first
    append_jsonl(run.metrics_path, epoch_record(11))
    assert data.refresh(force=True) is True
    assert data.records_read == first + 1  # one line parsed, not the whole file again
    assert data.view().epochs["epoch"][-1] == 11


def test_torn_line_waits_for_its_newline_and_malformed_lines_are_counted(run):
    data = RunData(run.path, watch=False)
    with open(run.metrics_path, "a") as f:
        f.write('{"epoch": 11, "loss": 0.1')  # a writer mid-append
    data.refresh(force=True)
    assert data.view().n_epochs == 10
    assert data.view().malformed_total == 0
    with open(run.metrics_path, "a") as f:
        f.write(', "step": 220}\nnot json at all\n[1, 2]\n')
    data.refresh(force=True)
    view = data.view()
    assert view.epochs["epoch"][-1] == 11
    assert view.malformed == {"metrics.jsonl": 2}


def test_rewind_replaces_the_history_after_the_checkpoint(run):
    data = RunData(run.path, watch=False)
    before = data.view()
    # rewind to epoch 6: the trainer writes epoch 7 again, on branch 1, from step 120
    append_jsonl(run.batches_path, *batch_records(7, branch=1))
    append_jsonl(run.metrics_path, {**epoch_record(7, branch=1), "loss": 9.0})
    view = data.view()
    assert list(view.epochs["epoch"]) == [1, 2, 3, 4, 5, 6, 7]
    assert view.epochs["loss"][-1] == 9.0 and view.epochs["branch"][-1] == 1
    assert view.batches["step"].max() <= 7 * 20
    assert np.all(np.diff(view.batches["step"]) > 0)
    # the snapshot taken before the rewind is untouched
    assert list(before.epochs["epoch"]) == list(range(1, 11))
    # the smoothed curve continues from the cut, as if the undone batches never happened
    fresh = RunData(run.path, watch=False).view()
    np.testing.assert_allclose(view.batches["smooth"], fresh.batches["smooth"])


def test_smoothing_is_a_debiased_moving_average(tmp_path):
    run = make_run(tmp_path, "s", epochs_done=1)
    view = RunData(run.path, watch=False).view()
    losses = view.batches["loss"]
    ema, expected = 0.0, []
    for i, x in enumerate(losses, 1):
        ema = SMOOTHING * ema + (1 - SMOOTHING) * x
        expected.append(ema / (1 - SMOOTHING**i))
    np.testing.assert_allclose(view.batches["smooth"], expected)
    assert view.batches["smooth"][0] == pytest.approx(losses[0])


def test_watcher_ingests_appends_without_a_refresh(run):
    data = RunData(run.path, watch=True)
    try:
        assert data.watching
        append_jsonl(run.metrics_path, epoch_record(11))
        # only look at the ingested state: no refresh() call from here
        assert wait_until(lambda: data.epochs.last("epoch") == 11, timeout=5)
        assert data.refresh() is False  # already read by the watcher: nothing left to do
    finally:
        data.close()


def test_deleted_folder_keeps_the_data_and_a_new_run_under_that_name_is_read_afresh(run, tmp_path):
    data = RunData(run.path, watch=True)
    try:
        shutil.rmtree(run.path)
        assert wait_until(lambda: data.view().missing, timeout=5)
        view = data.view()
        assert view.n_epochs == 10 and view.state() == "deleted"
        assert not data.watching
        make_run(tmp_path, "demo", epochs_done=3)
        assert wait_until(lambda: not data.view().missing, timeout=10)
        assert list(data.view().epochs["epoch"]) == [1, 2, 3]
    finally:
        data.close()


def test_replaced_log_is_read_again_from_the_start(run):
    data = RunData(run.path, watch=False)
    events = len(data.view().events)
    tmp = run.path / "events.new"
    tmp.write_text(open(run.events_path).read())
    os.replace(tmp, run.events_path)
    data.refresh(force=True)
    assert len(data.view().events) == events  # not doubled


def test_store_lists_runs_newest_first_with_their_state(tmp_path):
    make_run(tmp_path, "old", state="finished")
    live = make_run(tmp_path, "live")
    make_run(tmp_path, "gone", heartbeat=time.time() - 60)
    (tmp_path / ".panda").mkdir()
    store = RunStore(tmp_path, watch=False)
    listed = store.runs()
    assert [r.name for r in listed] == ["gone", "live", "old"]  # newest first
    runs = {r.name: r for r in listed}
    assert set(runs) == {"old", "live", "gone"}
    assert runs["old"].state == "finished"
    assert runs["live"].state == "running"
    assert runs["gone"].state == "not answering"
    write_status(live, state="paused", epoch=10)
    assert {r.name: r.state for r in store.runs()}["live"] == "paused"
    assert store.run(live.path) is store.run(live.path)  # one reader per run, shared


def test_killed_trainer_reads_as_not_answering(tmp_path):
    run = make_run(tmp_path, "killed", pid=2**22 + 12345)  # a pid that does not exist
    view = RunData(run.path, watch=False).view()
    assert view.status["state"] == "running"
    assert view.state() == "not answering"


def test_stopping_the_watcher_never_waits_under_the_readers_lock(run):
    """The observer holds its dispatch lock while its callback waits for the reader's lock; a reader that
    stopped the observer while holding its own lock deadlocked (seen in CI when a run folder was deleted)."""
    import threading

    data = RunData(run.path, watch=False)
    got_lock, stopped = [], threading.Event()

    class Observer:  # stop() waits for a thread that needs the reader's lock, as the real dispatch thread does
        def stop(self):
            def dispatch():
                got_lock.append(data._lock.acquire(timeout=3))
                if got_lock[-1]:
                    data._lock.release()

            thread = threading.Thread(target=dispatch)
            thread.start()
            thread.join()
            stopped.set()

    data._watcher = Observer()
    shutil.rmtree(run.path)
    assert data.refresh(force=True) and data.view().missing and not data.watching
    assert stopped.wait(10) and got_lock == [True]


def test_right_after_a_rewind_the_view_is_the_new_branch_and_the_dropped_epochs_are_abandoned(tmp_path):
    """The status moves to epoch 5 (branch 1) before the new branch's first record: cards and charts follow it."""
    from app.figures import run_charts as charts
    from conftest_app import epoch_record, make_run
    from trainer.contract.rundir import append_jsonl

    run = make_run(tmp_path, "demo", epochs_done=20, epochs=40)
    fifth = run.read_metrics()[4]
    status = run.read_status()
    run.write_status({**status, "epoch": 5, "branch": 1, "last": fifth, "state": "paused"})
    data = RunData(run.path, watch=False)
    view = data.view()
    assert list(view.epochs["epoch"]) == [1, 2, 3, 4, 5] and view.last_epoch["val_loss"] == fifth["val_loss"]
    [dropped] = view.abandoned
    assert list(dropped["epoch"]) == list(range(5, 21))  # from the branch point to the old newest epoch
    names = [t.name for t in charts.loss_figure(view).data]
    assert "abandoned branch" in names and names.count("abandoned branch") == 2  # train and validation
    # the new branch's first record: the same abandoned branch, now cut for good
    append_jsonl(run.metrics_path, {**epoch_record(6), "branch": 1, "val_loss": 0.5})
    run.write_status({**status, "epoch": 6, "branch": 1, "state": "running"})
    view = data.view()
    assert list(view.epochs["epoch"]) == [1, 2, 3, 4, 5, 6] and view.last_epoch["val_loss"] == 0.5
    assert [list(b["epoch"]) for b in view.abandoned] == [list(range(5, 21))]


def test_epoch_lines_are_read_as_epoch_records_one_column_per_field(run):
    from trainer.contract.records import EPOCH_COLUMNS, EpochRecord

    values = {name: float(k + 1) for k, name in enumerate(EPOCH_COLUMNS)}
    values.update(epoch=1, branch=0, step=7, batch_size=32)
    append_jsonl(run.path / "metrics.jsonl", values)
    append_jsonl(run.path / "metrics.jsonl", {**values, "epoch": 2, "loss": "low", "accuracy": True})
    view = RunData(run.path, watch=False).view()
    assert set(view.epochs) == set(EPOCH_COLUMNS)  # the record's field list, not a copy of it
    for name in EPOCH_COLUMNS:
        assert view.epochs[name][0] == values[name], name
    assert np.isnan(view.epochs["loss"][1]) and np.isnan(view.epochs["accuracy"][1])  # wrong types: gaps
    assert view.last_epoch == EpochRecord.from_json({**values, "epoch": 2, "loss": "low", "accuracy": True}).to_json()
    assert view.last_epoch["loss"] is None
