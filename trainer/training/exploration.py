"""Exploring from the current state without keeping it: the learning-rate finder and forks.

Both commands take a :class:`~trainer.training.snapshot.Snapshot` of everything training touches, train
on a side track, write what they saw to an append-only file in the run directory, and restore the
snapshot bit for bit, so the run goes on exactly as if nothing had happened (no epoch, step,
checkpoint or metrics record comes from them).

* ``find_lr`` ramps α exponentially from ``min`` to ``max`` over ``steps`` steps (one step per
  α), stops early once the smoothed loss is 4x its minimum (or not finite), and suggests an α:
  the steepest descent of the smoothed loss against log α, and the minimum's α / 10 (the
  suggestion to apply). One line per run of the finder in ``lr_finder.jsonl``.
* ``fork`` trains each candidate (``lr``, ``beta``, ``batch_size``) ``steps`` steps from the same
  state on the same example order, measures each on a fixed validation subset (the first 1,024
  validation examples), writes every candidate's loss curve to ``forks.jsonl`` and a
  ``fork_result`` event, then pauses for the user (``pick: "ask"``) or applies the best
  candidate's hyperparameters (``pick: "best"``).

Both can take minutes (8 candidates x 5,000 steps), so between any two steps they publish their
progress (``status.json``'s ``activity``) and look for a stop (a ``stop`` command or a stop
signal, :meth:`~trainer.steering.core.Steering.interruption`): on one, the exploration is abandoned,
the exact state put back, the command rejected with a reason starting ``interrupted``, and the stop
carried out. Other commands that arrive meanwhile wait, and are handled in order after its answer.

Steps reuse the trainer's compiled ``train_step`` (pointed at its own order of the examples) and
``eval_step`` (:mod:`trainer.training.steps`): nothing is traced again. Pure helpers (:func:`ramp`, :func:`suggest`,
:func:`smooth`, :func:`best_of`) are tested without TensorFlow.

``find_lr`` and ``fork`` share the snapshot, the side track, the progress and the interruption, so they
stay in one module.

>>> [round(a, 6) for a in ramp(1e-4, 1e-2, 3)]
[0.0001, 0.001, 0.01]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from trainer.contract import commands as cmds
from trainer.contract.rundir import append_jsonl, now
from trainer.steering.durability import EXPLORE_RECORDS
from trainer.training.snapshot import Snapshot

#: Append-only records of the finder's curves and of forks (docs/run-directory.md).
LR_FINDER, FORKS = EXPLORE_RECORDS  # lr_finder.jsonl, forks.jsonl
#: find_lr stops once the smoothed loss is this many times its minimum.
STOP_FACTOR = 4.0
#: Smoothing of the finder's loss (an exponential moving average, bias-corrected).
SMOOTHING = 0.9
#: A fork records at most this many points of each candidate's curve.
MAX_CURVE_POINTS = 200
#: Salt of the example order exploration trains on (a fixed permutation per step of the run).
ORDER_SALT = 1_000_003


def ramp(low: float, high: float, steps: int) -> list[float]:
    """``steps`` learning rates spaced evenly on a log scale from ``low`` to ``high``."""
    if steps == 1:
        return [low]
    ratio = math.log(high / low)
    return [low * math.exp(ratio * i / (steps - 1)) for i in range(steps)]


def smooth(losses: list[float], beta: float = SMOOTHING) -> list[float]:
    """Bias-corrected exponential moving average (fast.ai's finder); non-finite values stay non-finite.

    >>> [round(x, 3) for x in smooth([1.0, 1.0, 4.0], 0.5)]
    [1.0, 1.0, 2.714]
    """
    out, avg = [], 0.0
    for i, loss in enumerate(losses, 1):
        avg = beta * avg + (1 - beta) * loss
        out.append(avg / (1 - beta**i))
    return out


def suggest(lrs: list[float], smoothed: list[float]) -> dict:
    """The finder's suggestions from its curve: steepest descent, and the minimum's α / 10.

    >>> s = suggest([1e-4, 1e-3, 1e-2, 1e-1, 1.0], [2.0, 1.9, 1.0, 0.5, 9.0])
    >>> s["steepest"], s["min_lr"], s["min_over_10"], s["lr"]
    (0.01, 0.1, 0.01, 0.01)
    """
    pairs = [(a, l) for a, l in zip(lrs, smoothed) if math.isfinite(l)]
    if not pairs:
        return {"steepest": None, "min_lr": None, "min_over_10": None, "lr": None}
    best = min(range(len(pairs)), key=lambda i: pairs[i][1])
    min_lr = pairs[best][0]
    steepest = None
    upto = pairs[:best + 1]  # the descent: up to the minimum
    if len(upto) >= 2:
        x = np.log([a for a, _ in upto])
        y = np.array([l for _, l in upto])
        slopes = np.gradient(y, x)
        steepest = float(upto[int(np.argmin(slopes))][0])
    over_10 = max(min_lr / 10, lrs[0]) if lrs else min_lr / 10
    return {"steepest": steepest, "min_lr": float(min_lr), "min_over_10": float(over_10), "lr": float(over_10)}


def descent(smoothed: list[float]) -> float:
    """How far the smoothed loss fell below its first value, as a fraction (0: it never fell). A finder
    whose curve is flat found nothing: its "suggestion" is the noise's minimum.

    >>> descent([2.0, 1.5, 0.5, 9.0]), descent([2.3, 2.31, 2.3]), descent([])
    (0.75, 0.0, 0.0)
    """
    finite = [x for x in smoothed if math.isfinite(x)]
    if not finite or finite[0] <= 0:
        return 0.0
    return max(0.0, 1.0 - min(finite) / finite[0])


def best_of(results: list[dict]) -> int | None:
    """The candidate with the lowest finite validation loss (else final training loss); ``None`` if all diverged.

    >>> best_of([{"val_loss": 0.5}, {"val_loss": 0.3}, {"val_loss": float("nan")}])
    1
    """
    def score(r: dict) -> float:
        value = r.get("val_loss") if r.get("val_loss") is not None else r.get("final_loss")
        return value if isinstance(value, (int, float)) and math.isfinite(value) else math.inf

    scores = [score(r) for r in results]
    best = min(range(len(scores)), key=scores.__getitem__) if scores else None
    return best if best is not None and math.isfinite(scores[best]) else None


def thin(values: list, limit: int = MAX_CURVE_POINTS) -> list[tuple[int, Any]]:
    """``(index, value)`` pairs of at most ``limit`` evenly spaced values, always with the last."""
    if len(values) <= limit:
        return list(enumerate(values))
    every = math.ceil(len(values) / limit)
    picked = list(range(0, len(values), every))
    if picked[-1] != len(values) - 1:
        picked.append(len(values) - 1)
    return [(i, values[i]) for i in picked]


def finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


class Interrupted(cmds.CommandError):
    """A stop arrived during an exploration: it was abandoned and the state put back (the command is rejected)."""


class Explorer:
    """``find_lr`` and ``fork`` for :class:`trainer.training.loop.Trainer` (its variables, compiled steps, data)."""

    def __init__(self, trainer):
        self.t = trainer

    # ------------------------------------------------------------------ the state

    def variables(self) -> list:
        t = self.t
        return [*t.model.variables, *t.optimizer.variables, *t.steps.variables(),
                t.knobs.lr, t.knobs.beta]

    def base(self) -> dict:
        """The hyperparameters a fork's candidates vary, as in force now."""
        t = self.t
        return {"lr": t.hp.lr, "beta": t.hp.beta, "batch_size": t.hp.batch_size}

    def snapshot(self) -> Snapshot:
        t = self.t
        return Snapshot.take(self.variables(), step=t.steering.step, hp=t.hp, lr0=t.lr0, lr0_epoch=t.lr0_epoch,
                             best_loss=t.best_loss)

    def restore(self, snap: Snapshot) -> None:
        t = self.t
        saved = snap.restore()
        t.steering.step, t.hp, t.lr0, t.lr0_epoch, t.best_loss = (
            saved["step"], saved["hp"], saved["lr0"], saved["lr0_epoch"], saved["best_loss"])

    # ------------------------------------------------------------------ stepping on a side track

    def _start_order(self, batch_size: int) -> None:
        """Point the compiled step at exploration's own order of the examples (the same for every candidate)."""
        from trainer.training.datasets import epoch_permutation

        t = self.t
        n = len(t.data.x_train)
        self._order = epoch_permutation(n, t.config.seed, ORDER_SALT + t.steering.step)
        self._per_pass = max(1, math.ceil(n / batch_size))
        self._taken = 0
        t.steps.batch.assign(batch_size)
        t.steps.order.assign(self._order)
        t.steps.position.assign(0)

    def _step(self) -> float:
        t = self.t
        if self._taken and self._taken % self._per_pass == 0:
            t.steps.position.assign(0)  # one pass done: the same order again
        self._taken += 1
        t.steering.explore_steps += 1  # training compute too (status.json's explore_steps)
        return float(t.steps.train_step().numpy())

    def _val_subset(self) -> tuple[float | None, float | None]:
        import tensorflow as tf

        t = self.t
        n = min(len(t.data.x_val), 1024)
        if not n:
            return None, None
        loss_sum, hits = t.steps.eval_step(tf.constant(0, tf.int32))
        return finite_or_none(float(loss_sum) / n), float(hits) / n

    # ------------------------------------------------------------------ progress, and giving up on a stop

    def _begin(self, kind: str, total: int, **more) -> None:
        """From now on ``status.json`` says what runs (``activity``); its step is the run's, not the side track's."""
        s = self.t.steering
        self._total, self._done, self._more = total, 0, {"kind": kind, **more}
        self._live, s.live_step = s.live_step, None  # the epoch's live step reads the position exploration moves
        self._started = now()
        self._publish()
        s.write_status()

    def _publish(self, **more) -> None:
        self._more.update(more)
        self.t.steering.activity = {**self._more, "command_id": getattr(self.t.steering.current, "id", None),
                                    "done": self._done, "total": self._total, "started": self._started}

    def _go_on(self, **more) -> None:
        """Before each step: publish the progress; raise :class:`Interrupted` when a stop arrived."""
        self._publish(**more)
        why = self.t.steering.interruption()
        if why is not None:
            raise Interrupted(f"interrupted by {why} after {self._done} of {self._total} steps; "
                              f"nothing was kept, the state is put back")

    def _end(self) -> None:
        s = self.t.steering
        s.activity, s.live_step = None, self._live
        s.write_status()

    def record_line(self, name: str, record: dict) -> None:
        s = self.t.steering
        append_jsonl(s.rundir.path / name, {**record, "command_id": getattr(s.current, "id", None),
                                            "epoch": s.epoch, "step": s.step, "branch": s.branch, "time": now()})

    # ------------------------------------------------------------------ the commands

    def find_lr(self, spec: dict) -> dict:
        t = self.t
        snap = self.snapshot()
        lrs, losses = ramp(spec["min"], spec["max"], spec["steps"]), []
        stopped = "max"
        self._begin("find_lr", len(lrs))
        try:
            self._start_order(t.hp.batch_size)
            best = math.inf
            for lr in lrs:
                self._go_on()
                t.knobs.lr.assign(lr)
                losses.append(self._step())
                self._done += 1
                value = smooth(losses)[-1]
                if not math.isfinite(value):
                    stopped = "not finite"
                    break
                best = min(best, value)
                if value > STOP_FACTOR * best:
                    stopped = f"loss over {STOP_FACTOR:g}x its minimum"
                    break
        finally:
            self.restore(snap)
            self._end()
        tried = lrs[:len(losses)]
        smoothed = smooth(losses)
        suggestion = suggest(tried, smoothed)
        if suggestion["lr"] is not None:
            suggestion["lr"] = cmds.check_lr(float(f"{suggestion['lr']:.3g}"))
        self.record_line(LR_FINDER, {
            "kind": "lr_finder", "min": spec["min"], "max": spec["max"], "steps": spec["steps"],
            "stopped": stopped, "suggestion": suggestion, "batch_size": t.hp.batch_size,
            "points": [{"lr": a, "loss": finite_or_none(l), "smoothed": finite_or_none(s)}
                       for a, l, s in zip(tried, losses, smoothed)]})
        t.steering.say(f"find_lr: {len(losses)} steps ({stopped}); suggested α {suggestion['lr']}")
        return {"suggestion": suggestion, "points": len(losses), "stopped": stopped, "record": LR_FINDER,
                "drop": descent(smoothed)}

    def try_candidates(self, candidates: list[dict], steps: int, kind: str = "fork") -> tuple[list[dict], list[list[float]]]:
        """Train each candidate ``steps`` steps from the current state on the same examples; put the state back.

        Returns each candidate's result (as ``forks.jsonl`` holds it) and its every step's loss (a diverged
        candidate stops at its first non-finite loss). Nothing is recorded and nothing paused: ``fork`` and
        the autopilot's stages (:mod:`trainer.training.autopilot_stages`) decide what follows.
        """
        t = self.t
        snap = self.snapshot()
        base = self.base()
        if t.knobs.beta is None and any("beta" in c for c in candidates):
            raise cmds.CommandError(f"optimizer {t.hp.optimizer} has no beta: a fork candidate cannot set one")
        results, curves = [], []
        self._begin(kind, len(candidates) * steps, candidates=len(candidates))
        try:
            for index, candidate in enumerate(candidates):
                self._done = index * steps  # a diverged candidate stops early: its steps count as done
                self._go_on(candidate=index + 1)
                self.restore(snap)
                hp = {**base, **candidate}
                t.knobs.lr.assign(hp["lr"])
                if t.knobs.beta is not None:
                    t.knobs.beta.assign(hp["beta"])
                self._start_order(hp["batch_size"])
                losses = []
                for _ in range(steps):
                    self._go_on()
                    losses.append(self._step())
                    self._done += 1
                    if not math.isfinite(losses[-1]):
                        break
                val_loss, val_accuracy = self._val_subset()
                tail = [x for x in losses[-max(1, len(losses) // 10):] if math.isfinite(x)]
                results.append({"candidate": candidate, "hparams": hp, "steps": len(losses),
                                "final_loss": finite_or_none(sum(tail) / len(tail)) if tail else None,
                                "val_loss": val_loss, "val_accuracy": val_accuracy,
                                "curve": [{"step": i + 1, "loss": finite_or_none(l)} for i, l in thin(losses)]})
                curves.append(losses)
        finally:
            self.restore(snap)
            self._end()
        return results, curves

    def fork(self, spec: dict) -> dict:
        t = self.t
        s = t.steering
        base = self.base()
        results, _ = self.try_candidates(spec["candidates"], spec["steps"])
        best = best_of(results)
        self.record_line(FORKS, {"kind": "fork", "steps": spec["steps"], "pick": spec["pick"], "base": base,
                             "best": best, "candidates": results, "val_examples": min(len(t.data.x_val), 1024)})
        summary = [{k: r[k] for k in ("hparams", "final_loss", "val_loss", "val_accuracy", "steps")} for r in results]
        s.event("fork_result", command_id=getattr(s.current, "id", None), best=best, pick=spec["pick"],
                candidates=summary, record=FORKS)
        if spec["pick"] == "best" and best is not None:
            self.apply(results[best]["candidate"])
            s.say(f"fork: continuing with candidate {best + 1} {results[best]['candidate']}")
        else:
            s.state = "paused"
            s.message = ("fork done: pick a candidate (set its hyperparameters), then resume" if best is not None
                         else "fork done: every candidate diverged; resume when ready")
            s.event("paused", command_id=getattr(s.current, "id", None), reason="fork")
            s.say(f"fork: {len(results)} candidates tried; paused for your choice")
        return {"best": best, "pick": spec["pick"], "record": FORKS}

    def apply(self, candidate: dict) -> None:
        """Continue the run with ``candidate``'s hyperparameters (through the trainer's own setters)."""
        t = self.t
        if "lr" in candidate:
            t.set_lr(candidate["lr"])
        if "beta" in candidate:
            t.set_beta(candidate["beta"])
        if "batch_size" in candidate:
            t.set_batch_size(candidate["batch_size"])
