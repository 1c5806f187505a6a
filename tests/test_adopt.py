"""``adopt``: a running trainer takes another run's checkpoint (weights and optimizer), or refuses with a reason."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from conftest import event_of, wait_for
from trainer.contract import commands as cmds


def tensors(checkpoint_path) -> dict[str, np.ndarray]:
    reader = tf.train.load_checkpoint(str(checkpoint_path) + "/ckpt")
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if name.startswith("model/") or name.startswith("optimizer/")}


def test_adopt_value_is_checked():
    assert cmds.validate({"id": "a", "cmd": "adopt", "value": {"run": "runs/x", "lr": "0.1"}}).value == {
        "run": "runs/x", "checkpoint": None, "lr": 0.1, "beta": None}
    assert cmds.validate({"id": "b", "cmd": "adopt", "value": "runs/x"}).value["run"] == "runs/x"
    for bad, words in [({"run": ""}, "path"), ({"run": "x", "lr": -1}, "adopt lr"), ({"run": "x", "oops": 1}, "unknown"),
                       ({"run": "x", "checkpoint": "latest!"}, "checkpoint name"), (["runs/x"], "object")]:
        with pytest.raises(cmds.CommandError, match=words):
            cmds.validate({"id": "a", "cmd": "adopt", "value": bad})
    assert cmds.validate({"id": "n", "cmd": "note", "value": {"text": "hi", "kind": "pbt_source"}}).value == {
        "text": "hi", "kind": "pbt_source"}
    for bad in ({"kind": "x"}, {"text": "a\nb"}, {"text": "x" * 501}, {"text": "t", "extra": 1}, 3):
        with pytest.raises(cmds.CommandError):
            cmds.validate({"id": "n", "cmd": "note", "value": bad})


def test_adopt_copies_the_source_checkpoint_sets_alpha_and_training_goes_on(start_trainer, tmp_path):
    source = start_trainer(name="source", epochs=2, lr=0.05, units=32, layers=2)
    assert source.join() == "finished"
    wide = start_trainer(name="wide", epochs=1, units=48, layers=2)
    assert wide.join() == "finished"
    newest = source.run.list_checkpoints()[-1]

    t = start_trainer(name="target", epochs=100, pace=0.1, lr=0.01, units=32, layers=2)
    run = t.run
    wait_for(lambda: run.read_metrics(), run.path, what="a first epoch")
    branch = run.read_status()["branch"]
    for value, words in [({"run": str(tmp_path / "nowhere")}, "no run folder"),
                         ({"run": str(tmp_path)}, "not a Panda run"),
                         ({"run": str(run.path)}, "this run"),
                         ({"run": str(source.run.path), "checkpoint": "ckpt-99999"}, "no checkpoint"),
                         ({"run": str(wide.run.path)}, "incompatible shapes")]:
        answer = t.send("adopt", value)
        assert answer["event"] == "rejected" and words in answer["reason"], answer
    assert run.read_status()["branch"] == branch and event_of(run, "adopted") is None, "a refused adopt changes nothing"

    answer = t.send("adopt", {"run": str(source.run.path), "lr": 0.004})
    assert answer["event"] == "applied", answer
    assert answer["source_checkpoint"] == newest["name"] and answer["branch"] > branch
    assert answer["hparams"]["lr"] == pytest.approx(0.004)
    assert float(t.trainer.knobs.lr.numpy()) == pytest.approx(0.004)
    adopted = event_of(run, "adopted")
    assert adopted["source_run"] == str(source.run.path) and adopted["source_checkpoint"] == newest["name"]

    # right after: the target's adopted checkpoint holds exactly the source checkpoint's weights and optimizer state
    mine = {m["name"]: m for m in run.list_checkpoints()}[answer["checkpoint"]]
    assert mine["reason"] == "adopted"
    theirs, ours = tensors(newest["path"]), tensors(mine["path"])
    weights = [n for n in theirs if n.startswith("model/")]
    assert weights and set(theirs) == set(ours)
    for name in weights:
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)
    before = tensors(run.list_checkpoints()[0]["path"])  # the target's own initial weights differed
    assert any(not np.array_equal(before[n], theirs[n]) for n in weights)

    # panda ctl: a relative path is the user's, resolved before the trainer (elsewhere) reads it
    import os
    import subprocess
    import sys

    ctl = subprocess.run([sys.executable, "-m", "trainer", "ctl", str(run.path), "adopt",
                          json.dumps({"run": os.path.relpath(source.run.path, tmp_path), "lr": 0.003}), "--wait", "60"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=90)
    assert ctl.returncode == 0 and "applied adopt" in ctl.stdout, ctl.stdout + ctl.stderr
    answer = [e for e in run.read_events() if e.get("event") == "applied" and e.get("cmd") == "adopt"][-1]
    assert answer["hparams"]["lr"] == pytest.approx(0.003)

    later = wait_for(lambda: [r for r in run.read_metrics() if r.get("branch") == answer["branch"]], run.path,
                     what="an epoch on the adopted branch")
    assert later[0]["lr"] == pytest.approx(0.003) and later[0]["epoch"] == answer["from_epoch"] + 1
    # the source checkpoint vanishing mid-read: refused, and the run rolled back to its own newest checkpoint
    store = t.trainer.steering.store
    real_restore = store.restore

    def flaky(meta):
        if str(run.path) not in str(meta["path"]):
            real_restore(meta)  # part of it loaded...
            raise tf.errors.NotFoundError(None, None, "ckpt.data-00000-of-00001 not found")
        return real_restore(meta)

    store.restore = flaky
    failed = t.send("adopt", {"run": str(source.run.path)})
    assert failed["event"] == "rejected" and "rolled back to this run's" in failed["reason"], failed
    rewound = [e for e in run.read_events() if e.get("event") == "rewound"][-1]
    assert rewound["reason"] == "adopt failed mid-read" and rewound["branch"] > answer["branch"]
    store.restore = real_restore
    t.send("stop")
    assert t.join() == "finished"


def test_panda_callback_refuses_adopt():
    from trainer.keras_callback.callback import PandaCallback

    with pytest.raises(cmds.CommandError, match="not supported in a Keras model.fit"):
        PandaCallback.adopt(None, {"name": "ckpt-00001"}, {"run": "elsewhere"})
