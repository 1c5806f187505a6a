"""The learning rate a run actually used, step by step: ``panda export RUN --format schedule``.

:func:`lr_schedule` walks the journal and the epoch records in the order they were written: the
α the run started with, every applied command's α (from the step it took effect), the decay at
each epoch's end, and — after a rewind, a divergence rollback or a ``--resume`` — the steps the
run went back over are dropped, so the schedule follows the run's current history. The result is
``{"run", "steps", "values"}``: α is ``values[i]`` from optimizer step ``steps[i]`` (0-based, the
count of steps already taken, as Keras's ``optimizer.iterations``) until the next entry.
:class:`trainer.reports.keras_schedule.PandaSchedule` loads it into a plain ``model.fit``. Pure Python.

In the trainer, *schedule* means this alone: α as a function of the step, as Keras's
``LearningRateSchedule`` does (:mod:`trainer.reports.keras_schedule`, PandaCallback's
``SteeredSchedule``). The commands a replay applies are its *plan* (:func:`trainer.steering.replay.plan_of`),
and the epochs whose internals are measured follow a *cadence* (:class:`trainer.training.internals.Cadence`).

>>> events = [{"event": "started", "step": 0, "time": 1, "hparams": {"lr": 0.01}},
...           {"event": "applied", "cmd": "scale_lr", "step": 40, "time": 2, "hparams": {"lr": 0.001}}]
>>> schedule_from(events, [], {"lr": 0.01})
{'steps': [0, 40], 'values': [0.01, 0.001]}
"""

from __future__ import annotations

import json
from pathlib import Path

from trainer.contract.hparams import Hyperparameters
from trainer.contract.rundir import RunDir

#: Events after which the run continues from an earlier step (the steps after it are gone).
MOVED_BACK = ("rewound", "diverged", "started")


def schedule_from(events: list[dict], records: list[dict], hparams: dict, epochs: int | None = None) -> dict:
    """α by step from a journal (``events``), the epoch records (all branches) and the starting hyperparameters
    (``epochs``: the run's, which a cosine decay anneals over)."""
    hp = Hyperparameters.from_dict(hparams)
    lr0, lr0_epoch = hp.lr, 0
    points: list[tuple[int, float]] = [(0, hp.lr)]

    def put(step: int, lr: float) -> None:
        while points and points[-1][0] >= step:
            points.pop()
        points.append((step, float(lr)))

    items = [(e.get("time", 0), 0, e) for e in events] + [(r.get("time", 0), 1, r) for r in records]
    for _, is_record, item in sorted(items, key=lambda x: (x[0], x[1])):
        step = item.get("step")
        if not isinstance(step, int):
            continue
        if is_record:
            if hp.decay != "none":  # decay is applied after the epoch's record, from the next step
                put(step, hp.decayed_lr(lr0, item["epoch"] - lr0_epoch, None if epochs is None else epochs - lr0_epoch))
            continue
        kind, new = item.get("event"), item.get("hparams")
        if kind in MOVED_BACK:
            while points and points[-1][0] > step:
                points.pop()
        if isinstance(new, dict) and isinstance(new.get("lr"), (int, float)) and (
                kind in ("started", "rewound", "applied", "lr_observed")):
            lr0, lr0_epoch = new.get("lr0", new["lr"]), new.get("lr0_epoch", lr0_epoch)
            put(step, new["lr"])
    steps, values = _changes(points)
    return {"steps": steps, "values": values}


def scales_from(events: list[dict]) -> dict:
    """A ``PandaCallback`` run compiled with a Keras schedule: Panda's multiplier by step (``lr_scale`` of the
    answers and of the hyperparameters journaled, an ``undo`` included).

    >>> scales_from([{"event": "applied", "cmd": "set_lr", "step": 40, "lr_scale": 0.5},
    ...              {"event": "rewound", "step": 20}, {"event": "applied", "cmd": "scale_lr", "step": 30, "lr_scale": 2.0}])
    {'steps': [0, 30], 'scales': [1.0, 2.0]}
    """
    points: list[tuple[int, float]] = [(0, 1.0)]
    for event in events:
        step = event.get("step")
        if not isinstance(step, int):
            continue
        if event.get("event") in MOVED_BACK:
            while len(points) > 1 and points[-1][0] > step:
                points.pop()
        scale = event.get("lr_scale", (event.get("hparams") or {}).get("lr_scale"))
        if event.get("event") in ("applied", "started") and isinstance(scale, (int, float)):
            while points and points[-1][0] >= step:
                points.pop()
            points.append((step, float(scale)))
    steps, scales = _changes(points)
    return {"steps": steps, "scales": scales}


def _changes(points: list[tuple[int, float]]) -> tuple[list[int], list[float]]:
    """The steps where the value changes, and the value from each: a piecewise-constant curve, each piece once."""
    steps, values = [], []
    for step, value in points:
        if not values or value != values[-1]:
            steps.append(step)
            values.append(value)
    return steps, values


def lr_schedule(run_path: Path | str) -> dict:
    """The α(step) run ``run_path`` used along its current history, with its name.

    A ``PandaCallback`` run compiled with a Keras ``LearningRateSchedule`` exports that schedule
    (``schedule``, its Keras serialization) and Panda's multiplier by step (``steps``, ``scales``):
    α(step) = scale(step) × schedule(step), which :class:`~trainer.reports.keras_schedule.PandaSchedule` rebuilds.
    """
    run = RunDir(run_path).require()
    config = run.read_config()
    if isinstance(config.get("lr_schedule"), dict):
        if "error" in config["lr_schedule"]:
            raise ValueError(f"{run.path}'s schedule could not be serialized: {config['lr_schedule']['error']}")
        return {"run": run.name, "schedule": config["lr_schedule"], **scales_from(run.read_events())}
    return {"run": run.name, **schedule_from(run.read_events(), run.read_metrics(), config.get("hparams") or {},
                                                   config.get("epochs"))}


def write_schedule(run_path: Path | str, folder: Path | str) -> Path:
    path = Path(folder) / "schedule.json"
    path.write_text(json.dumps(lr_schedule(run_path), indent=1) + "\n")
    return path


def lr_at(schedule: dict, step: int) -> float:
    """α at optimizer step ``step`` (Python; the Keras class computes the same in the graph)."""
    value = schedule["values"][0]
    for s, v in zip(schedule["steps"], schedule["values"]):
        if s > step:
            break
        value = v
    return value
