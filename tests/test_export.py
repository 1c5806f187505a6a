"""``panda export``: a real run's metrics and journal of interventions as CSV and Parquet."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from conftest import wait_for
from trainer.contract.rundir import RunDir, current_line

PANDA = [sys.executable, "-m", "trainer"]


def panda(*args) -> subprocess.CompletedProcess:
    return subprocess.run([*PANDA, *map(str, args)], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def steered_run(tmp_path_factory):
    """A finished run with an applied and a rejected command, a rewind, and one command never answered."""
    from conftest import TrainerThread
    from trainer.contract.hparams import Hyperparameters
    from trainer.training.loop import TrainConfig, Trainer

    path = tmp_path_factory.mktemp("export") / "steered"
    config = TrainConfig(hparams=Hyperparameters(lr=0.01), epochs=5, pace=0.2)
    t = TrainerThread(Trainer.create(path, config, verbose=False)).start()
    run = t.run
    wait_for(lambda: len(run.read_metrics()) >= 2, run.path, what="two epochs")
    answers = {"set_lr": t.send("set_lr", 0.004), "bad": t.send("set_lr", "fast"), "rewind": t.send("rewind", "1")}
    assert t.join() == "finished"
    answers["late"] = run.send_command("pause", source="late-client")  # nobody will answer it
    return run, answers


def test_csv_export_has_the_metrics_and_the_journal(steered_run, tmp_path):
    run, answers = steered_run
    result = panda("export", run.path, "--format", "csv", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(tmp_path / "metrics.csv"), str(tmp_path / "journal.csv")]

    metrics = pd.read_csv(tmp_path / "metrics.csv")
    line = current_line(run.read_metrics())
    assert list(metrics["epoch"]) == [r["epoch"] for r in line] == [1, 2, 3, 4, 5]
    assert list(metrics["loss"]) == pytest.approx([r["loss"] for r in line])
    assert list(metrics["branch"]) == [r["branch"] for r in line]
    assert list(metrics.columns[:5]) == ["epoch", "branch", "step", "lr", "beta"]

    journal = pd.read_csv(tmp_path / "journal.csv")
    assert list(journal["event"][:1]) == ["started"] and "finished" in set(journal["event"])
    applied = journal[journal["command_id"] == answers["set_lr"]["command_id"]].iloc[0]
    assert applied["event"] == "applied" and applied["cmd"] == "set_lr" and float(applied["value"]) == 0.004
    assert applied["source"] == "test" and applied["lr"] == pytest.approx(0.004)
    assert applied["latency_steps"] == answers["set_lr"]["step"] - answers["set_lr"]["received_step"]
    assert 0 <= applied["latency_seconds"] < 30
    rejected = journal[journal["command_id"] == answers["bad"]["command_id"]].iloc[0]
    assert rejected["event"] == "rejected" and "number" in rejected["reason"] and rejected["value"] == "fast"
    rewound = journal[journal["event"] == "rewound"].iloc[0]
    assert rewound["checkpoint"] == answers["rewind"]["checkpoint"] and rewound["to_epoch"] == 1
    pending = journal[journal["command_id"] == answers["late"]].iloc[0]
    assert pending["event"] == "pending" and pending["source"] == "late-client"
    assert len(journal) == len(run.read_events()) + 1


def test_parquet_export_holds_the_same_tables(steered_run, tmp_path):
    run, _ = steered_run
    assert panda("export", run.path, "--out", tmp_path / "csv").returncode == 0
    result = panda("export", run.path, "--format", "parquet", "--out", tmp_path / "pq", "--all-branches")
    assert result.returncode == 0, result.stderr
    metrics = pd.read_parquet(tmp_path / "pq" / "metrics.parquet")
    assert list(metrics["epoch"]) == [r["epoch"] for r in run.read_metrics()], "every branch"
    assert len(metrics) > 5, "the rewound epochs are kept with --all-branches"
    journal = pd.read_parquet(tmp_path / "pq" / "journal.parquet")
    from_csv = pd.read_csv(tmp_path / "csv" / "journal.csv")
    assert list(journal.columns) == list(from_csv.columns)
    assert list(journal["event"]) == list(from_csv["event"])
    assert list(journal["command_id"].fillna("")) == list(from_csv["command_id"].fillna(""))


def test_default_folder_and_clear_errors(steered_run, tmp_path, monkeypatch):
    from trainer.reports.export import ExportError, export_run

    run, _ = steered_run
    written = export_run(run.path)
    assert [p.name for p in written] == ["metrics.csv", "journal.csv"]
    assert all(p.parent == run.path / "export" and p.stat().st_size > 0 for p in written)

    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if pyarrow were not installed
    with pytest.raises(ExportError, match=r"pip install 'panda-babysitter\[parquet\]'"):
        export_run(run.path, "parquet", tmp_path / "x")
    assert not (tmp_path / "x").exists(), "nothing is written"

    missing = panda("export", tmp_path / "nope")
    assert missing.returncode == 1 and "no run directory" in missing.stderr
    assert panda("export", run.path, "--format", "xlsx").returncode == 2
    assert RunDir(run.path).read_status()["state"] == "finished", "exporting never touches the run"
