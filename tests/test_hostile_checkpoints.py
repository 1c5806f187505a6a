"""Issue 18: a checkpoint or run folder a trainer reads may hold anything; the trainer never dies of it.

A rewind, a divergence rollback and an adopt skip an unusable checkpoint (or refuse the command)
with the reason in the journal; the run goes on, and ``--resume`` works afterwards. Real trainers
on digits, as in test_hostile_live.py and test_adopt.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import event_of, wait_for
from trainer.contract.rundir import CHECKPOINT_META, RunDir

PANDA = [sys.executable, "-m", "trainer"]


def skipped(run: RunDir) -> dict[str, str]:
    return {e["checkpoint"]: e["reason"] for e in run.read_events() if e.get("event") == "checkpoint_skipped"}


def resume_finishes(run: RunDir) -> None:
    """``panda train --resume`` continues the run one more epoch and exits 0."""
    epochs = run.status().epoch + 1
    done = subprocess.run([*PANDA, "train", "--resume", str(run.path), "--epochs", str(epochs), "--quiet"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert run.status().state == "finished" and run.status().epoch == epochs


def corrupt(meta_path: Path, how: str) -> None:
    if how == "not json":
        meta_path.write_text('{"seq": 2, "epo')
    elif how == "list":
        meta_path.write_text("[1]")
    elif how == "mixed seq":  # this checkpoint's seq is text, the others' numbers
        meta = json.loads(meta_path.read_text())
        meta_path.write_text(json.dumps({**meta, "seq": str(meta["seq"])}))
    elif how == "fifo":
        meta_path.unlink()
        os.mkfifo(meta_path)


def test_rewind_to_a_checkpoint_with_a_corrupt_meta_is_refused_and_journaled_then_resume_works(start_trainer):
    t = start_trainer(epochs=100000, pace=0.05, checkpoint_every=1)
    run = t.run
    wait_for(lambda: len(run.list_checkpoints()) >= 5, run.path, what="four epoch checkpoints", recursive=True)
    initial, *bad = run.list_checkpoints()[:5]
    hows = ["not json", "list", "mixed seq", "fifo"]
    for meta, how in zip(bad, hows):
        corrupt(Path(meta["path"]) / CHECKPOINT_META, how)
    for meta in bad:
        answer = t.send("rewind", meta["name"])
        assert answer["event"] == "rejected" and f"checkpoint {meta['name']} is unusable" in answer["reason"], answer
    assert set(skipped(run)) == {m["name"] for m in bad}
    assert skipped(run)[bad[1]["name"]] == "meta.json holds a JSON array, not an object"
    assert skipped(run)[bad[3]["name"]] == "meta.json is not a regular file"
    # a good rewind still works: the scan for a new branch number reads every meta.json, bad ones too
    rewound = t.send("rewind", initial["name"])
    assert rewound["event"] == "applied" and rewound["to_epoch"] == 0, rewound
    assert t.thread.is_alive()
    assert t.send("stop")["event"] == "applied"
    assert t.join() == "finished"
    resume_finishes(run)
    at_resume = [e for e in run.read_events() if e.get("event") == "checkpoint_skipped"]
    assert len(at_resume) == 2 * len(bad), "the resumed trainer journals each unusable checkpoint once more"


def test_divergence_rolls_back_past_a_corrupt_newest_checkpoint(start_trainer):
    t = start_trainer(epochs=100000, pace=0.1, checkpoint_every=1, optimizer="momentum", lr=0.05, beta=0.9)
    run = t.run
    wait_for(lambda: len(run.read_metrics()) >= 2, run.path, what="two good epochs")
    assert t.send("pause")["event"] == "applied"
    *older, newest = t.trainer.steering.store.checkpoints  # waits for the commit in flight
    corrupt(Path(newest["path"]) / CHECKPOINT_META, "not json")
    assert t.send("set_lr", 10.0)["event"] == "applied"
    assert t.send("resume")["event"] == "applied"
    wait_for(lambda: event_of(run, "diverged"), run.path, what="divergence")
    diverged = event_of(run, "diverged")
    assert diverged["checkpoint"] == older[-1]["name"], (diverged, newest["name"])
    assert skipped(run) == {newest["name"]: "meta.json is not valid JSON"}
    wait_for(lambda: (s := run.status()) and s.state == "diverged", run.path, what="diverged in status.json")
    assert t.send("set_lr", 0.02)["event"] == "applied"
    assert t.send("stop")["event"] == "applied"
    assert t.join() == "finished"
    resume_finishes(run)


def test_adopt_of_a_hostile_folder_is_refused_with_a_reason_never_a_hang(start_trainer, tmp_path):
    source = start_trainer(name="source", epochs=2, units=32, layers=2)
    assert source.join() == "finished"
    newest = source.run.list_checkpoints()[-1]["name"]

    def hostile(name: str, change) -> str:
        folder = tmp_path / name
        shutil.copytree(source.run.path, folder)
        change(folder)
        return str(folder)

    def meta_of(folder: Path) -> Path:
        return folder / "checkpoints" / newest / CHECKPOINT_META

    def fifo(path: Path) -> None:
        path.unlink()
        os.mkfifo(path)

    cases = [
        (hostile("config-list", lambda f: (f / "config.json").write_text("[]")), None,
         "config.json holds a JSON array"),
        (hostile("config-fifo", lambda f: fifo(f / "config.json")), None, "no config.json"),
        (hostile("meta-list", lambda f: corrupt(meta_of(f), "list")), None, "unusable checkpoint"),
        (hostile("meta-seq", lambda f: corrupt(meta_of(f), "mixed seq")), newest, "has no whole-number seq"),
        (hostile("meta-fifo", lambda f: corrupt(meta_of(f), "fifo")), newest, "meta.json is not a regular file"),
        (hostile("index-fifo", lambda f: fifo(meta_of(f).parent / "ckpt.index")), None, "not a regular file"),
    ]
    t = start_trainer(name="target", epochs=100000, pace=0.05, units=32, layers=2)
    run = t.run
    wait_for(lambda: run.read_metrics(), run.path, what="a first epoch")
    branch = run.status().branch
    for folder, checkpoint, words in cases:
        answer = t.send("adopt", {"run": folder, **({"checkpoint": checkpoint} if checkpoint else {})})
        assert answer["event"] == "rejected" and words in answer["reason"], (folder, answer)
        assert run.status().state == "running", "the heartbeat never says running while stuck: nothing is stuck"
    assert run.status().branch == branch and event_of(run, "adopted") is None, "a refused adopt changes nothing"
    assert t.send("adopt", {"run": str(source.run.path)})["event"] == "applied"
    assert t.send("stop")["event"] == "applied"
    assert t.join() == "finished"
    resume_finishes(run)
