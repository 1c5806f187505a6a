"""The autopilot benchmark's arithmetic: compute to a target from a run's records, the table, the goals.

Compute is counted in training steps: every step the run trained (also the epochs a divergence
rollback threw away) plus every step it spent on a side track (forks and finders: the
``explore_steps`` of its ``autopilot_stage`` events, and ``status.json``'s ``explore_steps`` for the
whole run). A run's *compute to target* is that count at the first epoch whose validation metric
reaches the target. Pure Python: :mod:`bench.autopilot` trains, this module reads and writes text.

>>> records = [{"epoch": 1, "step": 10, "time": 1.0, "val_accuracy": 0.5},
...            {"epoch": 2, "step": 20, "time": 3.0, "val_accuracy": 0.9}]
>>> events = [{"event": "autopilot_stage", "step": 10, "time": 2.0, "explore_steps": 6}]
>>> compute_to_target(records, events, 0.9, steps_per_epoch=10, explore_total=6)
26
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: The methods compared, in the table's order: (a) .. (e).
METHODS = {"a": "no intervention", "b": "rule autopilot", "c": "new autopilot", "d": "best fixed α (sweep)",
           "e": "cosine from (d)'s α"}
#: Journal events after which the run goes on from an earlier step (``diverged``: its epoch was trained, then lost).
ROLLBACKS = ("rewound", "diverged")
#: The journal event of an autopilot decision (its ``explore_steps`` were spent on a side track).
STAGE_EVENT = "autopilot_stage"
#: The goal: (c) within this factor of (d)'s compute on every cell.
WITHIN = 1.5


@dataclass(frozen=True)
class Outcome:
    """One run, read back: steps to the target (``None``: not reached), final validation accuracy, spending."""

    compute: int | None
    final_acc: float | None
    total: int = 0  # every step spent, trained and explored
    explore: int = 0  # the side-track steps among them
    lr: float | None = None  # the fixed α of (d) and (e)
    note: str = ""  # how the run ended when that matters ("diverged: stopped")


@dataclass
class Row:
    """One cell of the benchmark: a workload, an optimizer and a start, with each method's outcome."""

    workload: str
    optimizer: str
    start: str
    start_lr: float
    outcomes: dict[str, Outcome | None] = field(default_factory=dict)  # by method letter; None: not run


def _walk(records: list[dict], events: list[dict], steps_per_epoch: int, explore_total: int):
    """Each epoch record in time order with the steps spent up to it, then ``(None, all steps spent)``.

    An epoch record adds the steps from where the run stood; a rollback puts the run back at its step
    (a ``diverged`` one first adds its lost epoch, ``steps_per_epoch``); a stage adds its side track's
    ``explore_steps``. Side-track steps of ``explore_total`` that no stage event accounts for (a fork or
    finder of another source) count from the start.
    """
    items = sorted([(r.get("time", 0.0), 1, r) for r in records] + [(e.get("time", 0.0), 0, e) for e in events],
                   key=lambda item: (item[0], item[1]))
    staged = sum(int(e.get("explore_steps") or 0) for e in events if e.get("event") == STAGE_EVENT)
    spent, position = max(0, int(explore_total) - staged), 0
    for _, is_record, item in items:
        step = item.get("step")
        if is_record and isinstance(step, int):
            spent += max(0, step - position)
            position = step
            yield item, spent
        elif item.get("event") == STAGE_EVENT:
            spent += int(item.get("explore_steps") or 0)
        elif item.get("event") in ROLLBACKS and isinstance(step, int):
            spent += steps_per_epoch if item["event"] == "diverged" else 0
            position = step
    yield None, spent


def compute_to_target(records: list[dict], events: list[dict], target: float, *, steps_per_epoch: int,
                      explore_total: int = 0, metric: str = "val_accuracy") -> int | None:
    """Steps spent (trained and explored) at the first epoch whose ``metric`` reaches ``target``; ``None``: never.

    ``records``: every epoch record in ``metrics.jsonl`` (all branches); ``events``: the journal;
    ``explore_total``: ``status.json``'s ``explore_steps``. A loss ``metric`` (a name ending in ``loss``)
    reaches the target from above.
    """
    lower_is_better = metric.endswith("loss")
    for record, spent in _walk(records, events, steps_per_epoch, explore_total):
        value = None if record is None else record.get(metric)
        if isinstance(value, (int, float)) and (value <= target if lower_is_better else value >= target):
            return spent
    return None


def steps_spent(records: list[dict], events: list[dict], *, steps_per_epoch: int, explore_total: int = 0) -> int:
    """Every step the run spent: trained (lost epochs included) and explored."""
    return list(_walk(records, events, steps_per_epoch, explore_total))[-1][1]


def _steps(outcome: Outcome | None) -> str:
    if outcome is None:
        return "not run"
    text = "—" if outcome.compute is None else f"{outcome.compute:,}"
    if outcome.explore and outcome.total:
        text += f" ({100 * outcome.explore / outcome.total:.0f} % exploring)"
    if outcome.lr is not None:
        text += f" α={outcome.lr:.3g}"
    return text + (f" ({outcome.note})" if outcome.note else "")


def _acc(outcome: Outcome | None) -> str:
    return "—" if outcome is None or outcome.final_acc is None else f"{outcome.final_acc:.3f}"


def checks(row: Row) -> dict[str, bool | None]:
    """The issue's goals on one row: (c) reached; (c) ≤ 1.5×(d); (c) < (d); (c)'s final accuracy ≥ (d)'s.

    ``None`` where the goal cannot be judged ((c) or (d) not run; neither reached the target). A (d)
    that never reached the target counts as infinitely slow.

    >>> row = Row("w", "adam", "default", 1e-3, {"c": Outcome(300, 0.97), "d": Outcome(250, 0.96)})
    >>> checks(row)
    {'reached': True, 'within': True, 'faster': False, 'final': True}
    """
    c, d = row.outcomes.get("c"), row.outcomes.get("d")
    if c is None:
        return {"reached": None, "within": None, "faster": None, "final": None}
    reached = c.compute is not None
    if d is None or (d.compute is None and not reached):
        within = faster = None
    elif d.compute is None:
        within = faster = True
    else:
        within = reached and c.compute <= WITHIN * d.compute
        faster = reached and c.compute < d.compute
    final = None if d is None or c.final_acc is None or d.final_acc is None else c.final_acc >= d.final_acc
    return {"reached": reached, "within": within, "faster": faster, "final": final}


def _mark(value: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "n/a"}[value]


def table(rows: list[Row], targets: dict[str, str]) -> str:
    """The markdown table: one line per workload × optimizer × start (``targets``: each workload's target, shown)."""
    head = ["workload (target)", "optimizer", "start α", *(f"({k}) {v}" for k, v in METHODS.items()),
            "final acc (c)", "final acc (d)", "(c) reached", f"(c) ≤ {WITHIN:g}×(d)", "(c) < (d)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        goal = checks(row)
        cells = [f"{row.workload} ({targets.get(row.workload, '?')})", row.optimizer, f"{row.start} ({row.start_lr:.3g})",
                 *(_steps(row.outcomes.get(k)) for k in METHODS), _acc(row.outcomes.get("c")), _acc(row.outcomes.get("d")),
                 _mark(goal["reached"]), _mark(goal["within"]), _mark(goal["faster"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary(rows: list[Row]) -> str:
    """One line: each of the issue's goals, met or missed, with its count.

    >>> rows = [Row("w", "adam", s, 1e-3, {"c": Outcome(c, 0.97), "d": Outcome(100, 0.96)})
    ...         for s, c in (("low", 90), ("high", 160))]
    >>> summary(rows)
    "Goals (issue #22): (c) reaches the target on every start: met (2/2); (c) within 1.5× of (d)'s compute everywhere: missed (1/2); (c) faster than (d) on at least half of the cells: met (1/2); (c)'s final accuracy ≥ (d)'s everywhere: met (2/2)."
    """
    judged = [checks(row) for row in rows]

    def count(key: str) -> tuple[int, int]:
        values = [g[key] for g in judged if g[key] is not None]
        return sum(values), len(values)

    goals = [("reached", "(c) reaches the target on every start", lambda k, n: n > 0 and k == n),
             ("within", f"(c) within {WITHIN:g}× of (d)'s compute everywhere", lambda k, n: n > 0 and k == n),
             ("faster", "(c) faster than (d) on at least half of the cells", lambda k, n: n > 0 and 2 * k >= n),
             ("final", "(c)'s final accuracy ≥ (d)'s everywhere", lambda k, n: n > 0 and k == n)]
    parts = []
    for key, text, met in goals:
        k, n = count(key)
        parts.append(f"{text}: {'met' if met(k, n) else 'missed'} ({k}/{n})" if n else f"{text}: not run")
    return "Goals (issue #22): " + "; ".join(parts) + "."
