"""Panda's trainer against a bare Keras ``model.fit`` and against the physical limit, end to end.

Three workloads (same layers, optimizer, batch size and a validation pass every epoch on every side):

* ``digits``: MLP 2 x 64 + batch norm on digits (1,437 train / 360 val), batch 64;
* ``mlp784``: MLP 784-256-256 + batch norm on 60,000 x 784 synthetic (10,000 val), batch 128;
* ``cnn``: ``--model cnn`` on 28 x 28 x 1 synthetic (12,000 train / 2,000 val), batch 128.

Each run is a whole process (``--worker``), alternated A B C, A B C, ... ``--repeats`` times:
A = ``panda train`` (a real Trainer writing its run directory), B = ``model.fit``, C = the
physical limit: the same step over data held in the graph and no control at all (no commands,
records, checkpoints), run two ways in the same process: "stepwise", a Python loop calling the
compiled step (the dispatch a step-by-step controllable loop cannot avoid), and "whole epoch in
one graph", every step of an epoch inside one ``tf.function``. Epoch 1 (tracing) is
left out. Two figures per side:

* step rate: training samples per second of the training steps alone;
* end to end: training samples over epoch record to epoch record (Panda: ``metrics.jsonl``'s
  ``time``; fit: ``on_epoch_end``), validation and checkpoints included.

Ratios are taken within each alternated triple, and the median over triples is printed. Panda runs
with ``--no-internals``: fit records nothing of the kind, and ``bench/internals_cost.py`` measures
what the (default-on) internals cost on their own.

    python bench/throughput.py [--workloads digits,mlp784,cnn] [--epochs 5] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = Path(__file__).resolve().parent
WORKLOADS = {
    "digits": dict(model="mlp", layers=2, units=64, batch_size=64, data="digits"),
    "mlp784": dict(model="mlp", layers=2, units=256, batch_size=128, data="synthetic", n=60_000, n_val=10_000,
                   shape=(784,)),
    "cnn": dict(model="cnn", layers=1, units=64, batch_size=128, data="synthetic", n=12_000, n_val=2_000,
                shape=(28, 28, 1)),
}


def synthetic(n, n_val, shape, classes=10, seed=0):
    """Learnable blobs: both sides do real work."""
    import numpy as np

    rng = np.random.default_rng(seed)
    features = int(np.prod(shape))
    centers = rng.normal(size=(classes, features)).astype(np.float32)
    y = rng.integers(0, classes, n + n_val).astype(np.int32)
    x = (centers[y] + rng.normal(scale=3.0, size=(len(y), features)).astype(np.float32)).reshape((-1, *shape))
    return x[:n], y[:n], x[n:], y[n:]


def load(w: dict, folder: Path):
    """(x, y, x_val, y_val, dataset spec for panda train)."""
    from trainer.training.datasets import load_dataset

    if w["data"] == "digits":
        d = load_dataset("digits", 0.2, 0)
        return d.x_train, d.y_train, d.x_val, d.y_val, "digits"
    import numpy as np

    path = folder / f"{w['model']}-{w['n']}.npz"
    x, y, xv, yv = synthetic(w["n"], w["n_val"], w["shape"])
    if not path.exists():
        np.savez(path, x_train=x, y_train=y, x_val=xv, y_val=yv)
    return x, y, xv, yv, str(path)


def hparams(w: dict):
    from trainer.contract.hparams import Hyperparameters

    return Hyperparameters(optimizer="adam", lr=1e-3, batch_size=w["batch_size"], layers=w["layers"],
                           units=w["units"], batch_norm=True)


def model_and_optimizer(w: dict, shape, hp):
    import keras

    from trainer.training.model import build_model
    from trainer.training.optimizers import make_optimizer

    keras.utils.set_random_seed(0)
    model = build_model(w["model"], shape, 10, hp.layers, hp.units, hp.batch_norm, hp.dropout)
    optimizer, _ = make_optimizer(hp.optimizer, hp.lr, hp.beta, hp.beta2, hp.epsilon)
    return model, optimizer


def run_panda(w, epochs, folder) -> dict:
    from trainer.training.loop import TrainConfig, Trainer

    x, *_, spec = load(w, folder)
    # internals.jsonl off: this compares the trainer with fit; bench/internals_cost.py prices the internals
    config = TrainConfig(hparams=hparams(w), dataset=spec, model=w["model"], epochs=epochs, checkpoint_every=1,
                         internals=False)
    trainer = Trainer.create(folder / f"run-{time.time_ns()}", config, verbose=False)
    assert trainer.run() == "finished"
    records = trainer.rundir.read_metrics()[1:]
    start = trainer.rundir.read_metrics()[0]["time"]
    return {"step": statistics.median(r["samples_per_second"] for r in records),
            "e2e": len(x) * len(records) / (records[-1]["time"] - start),
            "recorded_e2e": statistics.median(r["wall_samples_per_second"] for r in records)}


def run_fit(w, epochs, folder) -> dict:
    import keras

    x, y, xv, yv, _ = load(w, folder)
    hp = hparams(w)
    model, optimizer = model_and_optimizer(w, x.shape[1:], hp)
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    begins, trained, ends = [], [], []
    clock = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda e, logs: begins.append(time.perf_counter()),
        on_epoch_end=lambda e, logs: ends.append(time.perf_counter()))

    class TrainEnd(keras.callbacks.Callback):  # no batch hooks: fit's own dispatch stays as it is
        def on_test_begin(self, logs=None):
            if len(trained) < len(begins):
                trained.append(time.perf_counter())

    model.fit(x, y, batch_size=hp.batch_size, epochs=epochs, validation_data=(xv, yv), verbose=0,
              callbacks=[clock, TrainEnd()], shuffle=True)
    steps = [len(x) / (t - b) for b, t in zip(begins[1:], trained[1:])]
    return {"step": statistics.median(steps), "e2e": len(x) * (epochs - 1) / (ends[-1] - ends[0])}


def run_limit(w, epochs, folder) -> dict:
    """The same step with the data in the graph, one tf.function per epoch, and nothing else."""
    import keras
    import tensorflow as tf

    x, y, xv, yv, _ = load(w, folder)
    hp = hparams(w)
    model, optimizer = model_and_optimizer(w, x.shape[1:], hp)
    optimizer.build(model.trainable_variables)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    xs, ys, xvs, yvs = tf.constant(x), tf.constant(y), tf.constant(xv), tf.constant(yv)
    n, b = len(x), hp.batch_size
    steps = -(-n // b)

    @tf.function
    def epoch(seed):
        order = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int32), seed=seed)
        for i in tf.range(steps):
            index = order[i * b:(i + 1) * b]
            xb, yb = tf.gather(xs, index), tf.gather(ys, index)
            with tf.GradientTape() as tape:
                loss = loss_fn(yb, model(xb, training=True))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    @tf.function
    def evaluate():
        total = tf.constant(0.0)
        for i in tf.range(-(-len(xv) // 1024)):
            xb, yb = xvs[i * 1024:(i + 1) * 1024], yvs[i * 1024:(i + 1) * 1024]
            total += loss_fn(yb, model(xb, training=False)) * tf.cast(tf.shape(yb)[0], tf.float32)
        return total

    @tf.function
    def one_step(index):
        xb, yb = tf.gather(xs, index), tf.gather(ys, index)
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, model(xb, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    def stepwise(seed):  # a Python loop over the compiled step: the per-step dispatch control needs
        order = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int32), seed=seed)
        for i in range(steps):
            loss = one_step(order[i * b:(i + 1) * b])
        return loss

    result = {}
    for key, run_epoch in (("step", stepwise), ("graph", epoch)):
        rates, ends = [], []
        for e in range(epochs):
            start = time.perf_counter()
            float(run_epoch(tf.constant([0, e])))
            rates.append(n / (time.perf_counter() - start))
            float(evaluate())
            ends.append(time.perf_counter())
        result[key] = statistics.median(rates[1:])
        result["e2e" if key == "step" else "graph_e2e"] = n * (epochs - 1) / (ends[-1] - ends[0])
    return result


def worker(side: str, workload: str, epochs: int, folder: str) -> None:
    result = {"panda": run_panda, "fit": run_fit, "limit": run_limit}[side](WORKLOADS[workload], epochs, Path(folder))
    print("RESULT " + json.dumps(result), flush=True)


def in_process(side, workload, epochs, folder) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, __file__, "--worker", side, workload, str(epochs), folder],
                         capture_output=True, text=True, env=env)
    line = next((l for l in out.stdout.splitlines() if l.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"{side} {workload} failed:\n{out.stderr[-3000:]}")
    return json.loads(line[len("RESULT "):])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="digits,mlp784,cnn")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"whole processes alternated panda / fit / limit, {args.repeats} triples, {args.epochs} epochs each "
          f"(epoch 1 left out); ratios are medians of the per-triple ratios; {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.workloads.split(","):
            rows = []
            for i in range(args.repeats):
                order = ["panda", "fit", "limit"] if i % 2 == 0 else ["limit", "fit", "panda"]
                got = {side: in_process(side, name, args.epochs, tmp) for side in order}
                rows.append(got)
                print(f"  {name} triple {i + 1}: " + ", ".join(
                    f"{s} step {got[s]['step']:,.0f} / e2e {got[s]['e2e']:,.0f}" for s in ("panda", "fit", "limit"))
                    + f"; panda recorded wall_samples_per_second {got['panda']['recorded_e2e']:,.0f}", flush=True)

            def ratio(a, b, key):
                return statistics.median(r[a][key] / r[b][key] for r in rows)

            print(f"{name}: panda / fit  step rate {ratio('panda', 'fit', 'step'):.2f}  end to end "
                  f"{ratio('panda', 'fit', 'e2e'):.2f};  panda / limit end to end: stepwise {ratio('panda', 'limit', 'e2e'):.2f}, "
                  f"whole epoch in one graph {statistics.median(r['panda']['e2e'] / r['limit']['graph_e2e'] for r in rows):.2f}"
                  f"  (fit / limit {ratio('fit', 'limit', 'e2e'):.2f});  recorded / measured panda e2e "
                  f"{statistics.median(r['panda']['recorded_e2e'] / r['panda']['e2e'] for r in rows):.2f}", flush=True)


if __name__ == "__main__":
    main()
