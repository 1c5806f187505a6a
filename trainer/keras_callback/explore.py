"""``find_lr`` in a Keras ``model.fit`` (:class:`trainer.keras_callback.callback.PandaCallback`): the range test on fit's own batches.

Keras never hands a callback the training data, so the finder cannot train on a side track as
``panda train`` does (:mod:`trainer.training.exploration`). Instead, on the command it takes a
:class:`~trainer.training.snapshot.Snapshot` of everything a batch changes (the model's variables: weights,
batch-norm moving statistics, seed states; the optimizer's: slots, iteration count, learning
rate; the compiled metrics' running sums), then for fit's next ``steps`` training batches sets the
learning rate on the exponential ramp from ``min`` to ``max`` (``on_train_batch_begin``) and
records each batch's loss (``on_train_batch_end``). It stops early once the smoothed loss is 4x
its minimum (or not finite), or when the epoch's batches run out, restores the snapshot (so the
learning rate in force too), appends the curve to ``lr_finder.jsonl`` and only then answers the
command, with the same ``suggestion`` as ``panda train`` — unless the curve cannot carry one
(:func:`unreadable`): then ``suggestion.lr`` is ``null`` and ``suggestion.reason`` says why. The
answer says how many of fit's batches the test used (``steps_used``).

Those batches train nothing (the state is put back), but fit's position in its data cannot be
put back: the epoch goes on after them, so the examples in them are skipped this epoch. The test
does not count as steps; commands that arrive meanwhile wait for it, except a ``stop``, which
abandons it (the state put back, the command rejected ``interrupted``). A run paused when the
command arrives runs only the test's batches, then waits paused again.

>>> ramp_test = LrRangeTest({"steps": 3, "min": 1e-3, "max": 1e-1})
>>> [round(a, 6) for a in ramp_test.lrs]
[0.001, 0.01, 0.1]
"""

from __future__ import annotations

import math

from trainer.contract import commands as cmds
from trainer.training.exploration import LR_FINDER, STOP_FACTOR, finite_or_none, ramp, smooth, suggest
from trainer.contract.rundir import WAITING_STATES, append_jsonl, now
from trainer.training.snapshot import Snapshot
from trainer.steering.steerable import DEFERRED

#: ``stopped`` when the epoch's batches ran out before ``steps``.
EPOCH_END = "epoch end"
#: A curve of fewer finite points than this is too short to suggest from.
MIN_POINTS = 8
#: The smoothed loss must fall at least this fraction below its first value for a suggestion.
MIN_DROP = 0.05


def unreadable(lrs: list[float], smoothed: list[float], suggestion: dict, stopped: str | None) -> str | None:
    """Why the curve cannot carry a suggestion (too short, no clear descent, at an end of the range), or ``None``.

    >>> unreadable([1e-3, 1e-2], [1.0, 0.5], {"lr": 1e-3, "min_lr": 1e-2}, "max")
    'too short to read: 2 batches (at least 8)'
    >>> lrs = [10 ** (k - 6) for k in range(8)]
    >>> unreadable(lrs, [1.0] * 8, {"lr": 1e-6, "min_lr": 1e-5}, "max")
    'no clear descent: the smoothed loss fell 0% below its start (the curve is flat or noisy)'
    """
    finite = [(a, l) for a, l in zip(lrs, smoothed) if math.isfinite(l)]
    if len(finite) < MIN_POINTS:
        return f"too short to read: {len(finite)} batches (at least {MIN_POINTS})"
    start, low = finite[0][1], min(l for _, l in finite)
    drop = (start - low) / abs(start) if start else 0.0
    if drop < MIN_DROP:
        return f"no clear descent: the smoothed loss fell {max(drop, 0.0):.0%} below its start (the curve is flat or noisy)"
    if suggestion["lr"] is None or suggestion["lr"] <= lrs[0] * (1 + 1e-9):
        return f"at the low end of the range ({lrs[0]:g}): the loss fell from the first batches on; try a lower min"
    if suggestion["min_lr"] is not None and suggestion["min_lr"] >= finite[-1][0] and stopped == "max":
        return f"at the high end of the range ({lrs[-1]:g}): the loss was still falling; try a higher max"
    return None


class LrRangeTest:
    """The ramp and the losses seen so far (pure Python: testable without Keras)."""

    def __init__(self, spec: dict):
        self.spec = spec
        self.lrs = ramp(spec["min"], spec["max"], spec["steps"])
        self.losses: list[float] = []
        self.best = math.inf
        self.stopped: str | None = None

    def next_lr(self) -> float:
        return self.lrs[len(self.losses)]

    def add(self, loss: float) -> bool:
        """Record one batch's loss; ``True`` once the test is over (``stopped`` says why)."""
        self.losses.append(loss)
        value = smooth(self.losses)[-1]
        if not math.isfinite(value):
            self.stopped = "not finite"
        else:
            self.best = min(self.best, value)
            if value > STOP_FACTOR * self.best:
                self.stopped = f"loss over {STOP_FACTOR:g}x its minimum"
            elif len(self.losses) == len(self.lrs):
                self.stopped = "max"
        return self.stopped is not None

    def result(self) -> tuple[dict, list[dict]]:
        """The suggestion (as :class:`trainer.training.exploration.Explorer` makes it) and the curve's points."""
        tried, smoothed = self.lrs[:len(self.losses)], smooth(self.losses)
        suggestion = suggest(tried, smoothed)
        reason = unreadable(tried, smoothed, suggestion, self.stopped)
        if reason is not None:
            suggestion = {**suggestion, "lr": None, "reason": reason}
        else:
            suggestion["lr"] = cmds.check_lr(float(f"{suggestion['lr']:.3g}"))
        points = [{"lr": a, "loss": finite_or_none(l), "smoothed": finite_or_none(s)}
                  for a, l, s in zip(tried, self.losses, smoothed)]
        return suggestion, points


class CallbackFinder:
    """Runs one :class:`LrRangeTest` at a time on a :class:`~trainer.keras_callback.callback.PandaCallback`'s batches."""

    def __init__(self, callback):
        self.cb = callback
        self.test: LrRangeTest | None = None
        self._snap: Snapshot | None = None
        self._item = None
        self._command_id = None
        self._was: tuple[str, str | None] | None = None

    @property
    def active(self) -> bool:
        return self.test is not None

    def variables(self) -> list:
        model, steered = self.cb.model, self.cb.steered_schedule
        knobs = [steered.scale, steered.override] if steered is not None else []
        return [*model.variables, *model.optimizer.variables, *(v for m in model.metrics for v in m.variables), *knobs]

    # ------------------------------------------------------------------ the command

    def start(self, spec: dict):
        """The ``find_lr`` handler: arm the test for fit's next batches; its answer comes when it ends."""
        cb, steering = self.cb, self.cb.steering
        if self.active:
            raise cmds.CommandError("a find_lr is already running")
        cb.check_assignable()
        self.test = LrRangeTest(spec)
        self._snap = Snapshot.take(self.variables(), step=steering.step)
        self._item, self._command_id = steering.current_item, getattr(steering.current, "id", None)
        self._was = None
        if steering.state in WAITING_STATES:  # run the test's batches, then wait again
            self._was = (steering.state, steering.message)
            steering.state = "running"
        steering.message = f"find_lr: ramping α over fit's next {spec['steps']} batches"
        steering.say(steering.message)
        self._started = now()
        self._progress()
        return DEFERRED

    def _progress(self) -> None:
        """``status.json``'s ``activity``, as :class:`~trainer.training.exploration.Explorer` shows it."""
        self.cb.steering.activity = {"kind": "find_lr", "command_id": self._command_id, "done": len(self.test.losses),
                                     "total": len(self.test.lrs), "started": self._started}

    # ------------------------------------------------------------------ the batches

    def batch_begin(self) -> None:
        cb = self.cb
        cb.model.reset_metrics()  # the loss in this batch's logs is this batch's alone
        if cb.steered_schedule is not None:
            cb.steered_schedule.override.assign(self.test.next_lr())  # α itself, whatever the schedule says
        else:
            with cb.lr_watch.own():
                cb.optimizer.learning_rate.assign(self.test.next_lr())

    def batch_end(self, logs: dict | None, last_of_epoch: bool) -> None:
        self.cb.steering.explore_steps += 1  # a side-track step: compute the run's steps put back (status.json)
        loss = (logs or {}).get("loss")
        try:
            loss = float(loss)
        except (TypeError, ValueError):
            loss = math.nan
        if self.test.add(loss) or last_of_epoch:
            self.finish(EPOCH_END if self.test.stopped is None else self.test.stopped)
            return
        self._progress()
        why = self.cb.steering.interruption()
        if why is not None:
            self.abandon(why)

    def _put_back(self) -> LrRangeTest:
        """The state as before the test; the run's state and message too. Returns the test that ran."""
        steering, test = self.cb.steering, self.test
        with self.cb.lr_watch.own():  # the finder's own α is no change by someone else
            steering.step = self._snap.restore()["step"]
        self.test, self._snap = None, None
        if self._was is not None:
            steering.state, steering.message = self._was
        else:
            steering.message = None
        steering.activity = None
        if steering.pending:  # what arrived during the test (Steering.interruption queued it) is handled next
            steering.inbox.wake()
        return test

    def abandon(self, why: str) -> None:
        """A stop arrived: put the state back, record nothing, reject the command ``interrupted``."""
        steering = self.cb.steering
        test = self._put_back()
        steering.write_status()
        steering.answer(self._item, False, f"interrupted by {why} after {len(test.losses)} of {len(test.lrs)} "
                                           f"batches; nothing was kept, the state is put back")

    def finish(self, stopped: str | None = None) -> dict:
        """Put the state back, record the curve, answer the command."""
        cb, steering = self.cb, self.cb.steering
        self.test.stopped = self.test.stopped or stopped or EPOCH_END
        test = self._put_back()
        suggestion, points = test.result()
        append_jsonl(steering.rundir.path / LR_FINDER, {
            "kind": "lr_finder", "min": test.spec["min"], "max": test.spec["max"], "steps": test.spec["steps"],
            "stopped": test.stopped, "suggestion": suggestion, "batch_size": cb.batch_size, "points": points,
            "on": "model.fit batches", "command_id": self._command_id, "epoch": steering.epoch,
            "step": steering.step, "branch": steering.branch, "time": now()})
        said = suggestion["lr"] if suggestion["lr"] is not None else f"none ({suggestion['reason']})"
        steering.say(f"find_lr: {len(points)} batches ({test.stopped}); suggested α {said}")
        result = {"suggestion": suggestion, "points": len(points), "steps_used": len(points) * cb._steps_per_call,
                  "stopped": test.stopped, "record": LR_FINDER}
        steering.write_status()  # before the answer: whoever sees it finds the run's state put back
        steering.answer(self._item, True, **result)
        return result
