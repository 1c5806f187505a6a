"""What ``PandaCallback`` costs a ``model.fit``: fit with it / fit without it, in one process.

Two workloads: the digits MLP (2 x 64 + batch norm, batch 64) and the 784-256-256 MLP + batch
norm on 60,000 x 784 synthetic data (batch 128), Adam, validation every epoch. One model per
side, built once and compiled once; then ``--pairs`` alternated pairs of ``fit(epochs=E)`` calls
(with / without, then without / with, ...), each timed end to end (the first call of each side is
a warm-up and is not counted). Prints the median of the per-pair ratios of samples per second
(goal >= 0.97). The callback runs with everything on: run directory, heartbeat, command watcher,
checkpoints every epoch, and ``internals.jsonl`` (which keeps itself under 3 % of the run's time);
``--no-internals`` leaves the internals out, to price the rest alone.

    python -m bench.callback_overhead [--pairs 7] [--epochs 3] [--workloads digits,mlp784] [--no-internals]
    python -m bench.callback_overhead --programs subclassed,vae   # programs of tests/keras_corpus.py instead
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

from bench.throughput import WORKLOADS, hparams, load, model_and_optimizer  # noqa: E402
from trainer import PandaCallback  # noqa: E402


def compiled(w, shape):
    hp = hparams(w)
    model, optimizer = model_and_optimizer(w, shape, hp)
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model, hp.batch_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="digits,mlp784")
    parser.add_argument("--pairs", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--no-internals", dest="internals", action="store_false")
    parser.add_argument("--programs", default="", help="programs of tests/keras_corpus.py, instead of the workloads")
    args = parser.parse_args()
    print(f"fit with PandaCallback / fit without, one process, {args.pairs} alternated pairs of "
          f"fit(epochs={args.epochs}), internals {'on' if args.internals else 'off'}; {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        for name in filter(None, args.programs.split(",")):
            from tests.keras_corpus import PROGRAMS

            program = PROGRAMS[name]
            with program.scope():
                plain, steered = program.build(), program.build()
            kwargs = {**program.fit_kwargs(Path(tmp)), "epochs": args.epochs, "verbose": 0}
            n = len(next(iter(kwargs["x"].values())) if isinstance(kwargs["x"], dict) else kwargs["x"])
            callback = PandaCallback(Path(tmp) / f"run-{name}", checkpoint_every=1, internals=args.internals)
            measure(name, lambda model, callbacks: model.fit(**kwargs, callbacks=callbacks),
                    plain, steered, callback, n * args.epochs, args.pairs)
        for name in filter(None, [] if args.programs else args.workloads.split(",")):
            x, y, xv, yv, _ = load(WORKLOADS[name], Path(tmp))
            plain, batch = compiled(WORKLOADS[name], x.shape[1:])
            steered, _ = compiled(WORKLOADS[name], x.shape[1:])
            callback = PandaCallback(Path(tmp) / f"run-{name}", checkpoint_every=1, internals=args.internals)

            def fit(model, callbacks, x=x, y=y, batch=batch, xv=xv, yv=yv):
                model.fit(x, y, batch_size=batch, epochs=args.epochs, validation_data=(xv, yv), verbose=0,
                          callbacks=callbacks, shuffle=True)

            measure(name, fit, plain, steered, callback, len(x) * args.epochs, args.pairs)


def measure(name, fit, plain, steered, callback, samples, pairs) -> None:
    """``pairs`` alternated pairs of ``fit`` with / without the callback (after one warm-up each); prints the ratios."""
    def timed(model, callbacks):
        start = time.perf_counter()
        fit(model, callbacks)
        return samples / (time.perf_counter() - start)

    timed(plain, []), timed(steered, [callback])  # warm-up: tracing, the run's creation
    ratios = []
    for i in range(pairs):
        if i % 2 == 0:
            with_cb, without = timed(steered, [callback]), timed(plain, [])
        else:
            without, with_cb = timed(plain, []), timed(steered, [callback])
        ratios.append(with_cb / without)
        print(f"  {name} pair {i + 1}: with {with_cb:,.0f} samples/s, without {without:,.0f}: "
              f"{ratios[-1]:.3f}", flush=True)
    geo = math.exp(statistics.fmean(math.log(r) for r in ratios))
    print(f"{name}: fit with PandaCallback / without = {statistics.median(ratios):.3f} median, {geo:.3f} geometric "
          f"mean of {len(ratios)} pairs", flush=True)


if __name__ == "__main__":
    main()
