"""Population-based training with a person in the loop (``panda sweep --scheduler pbt``).

All the trials train at once (the population). Every ``--perturb-every E`` epochs of a trial,
the scheduler ranks the population by each trial's latest ``val_accuracy`` (read from their run
directories). A trial in the bottom ``--quantile`` is *proposed* to exploit one of the top
quantile (picked with the sweep's seed): to copy its newest checkpoint — weights and optimizer
state — and to explore around its hyperparameters: α (and β, when it has one) moved by × 0.8 or × 1.25
on its scale (α's log scale, 1 − β's: β = 0.99 becomes 0.992 or 0.9875), inside the table's range. Each proposal waits for a person (the Sweeps page's Approve / Veto) and is applied
when approved, or on its own after ``--approve-timeout`` seconds; ``--auto`` approves at once.
Applying is appending an ``adopt`` command (source ``pbt``) to the target trial, which loads the
checkpoint and journals ``adopted`` naming the source (docs/run-directory.md), and a ``note``
to the source (when it still trains), which journals ``note`` naming the target.

Everything goes through ``SWEEP/pbt.jsonl``, append-only: the scheduler writes ``proposed``,
``expired``, ``applied`` and ``failed``; the page writes ``approved`` / ``vetoed``
(:func:`append_decision`, through the dashboard's PageWriter). The first decision of a proposal
wins; later ones are ignored. Every line has ``time``, ``event`` and ``proposal``.

>>> lr, beta = perturb(0.01, 0.99, random.Random(0))
>>> lr in (0.008, 0.0125), round(beta, 6) in (0.992, 0.9875)
(True, True)
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from trainer.contract.rundir import JsonlTail, RunDir, append_jsonl, read_jsonl
from trainer.contract.hparams import step

PBT_LOG = "pbt.jsonl"
#: Explore multiplies a value (on its scale) by one of these: symmetric on a log scale (0.8 × 1.25 = 1).
FACTORS = (0.8, 1.25)
#: The fewest trials PBT runs with: a bottom and a top quantile that are not the same trials.
MIN_TRIALS = 4
DECISIONS = ("approved", "vetoed")
#: Parameters that shape the checkpoint: PBT copies weights between trials, so these must be fixed.
SHAPE_PARAMS = ("units", "layers", "batch_norm", "optimizer", "model")


class PbtError(ValueError):
    """A PBT sweep that cannot run as asked."""


def check_pbt(settings, space) -> None:
    """Refuse a PBT sweep before anything starts: too few trials, a population not alive at once, mixed shapes."""
    if settings.scheduler != "pbt":
        return
    if settings.trials < MIN_TRIALS:
        raise PbtError(f"--scheduler pbt needs at least {MIN_TRIALS} trials (a bottom and a top quantile to copy "
                       f"from), got --trials {settings.trials}")
    if settings.parallel < settings.trials:
        raise PbtError(f"--scheduler pbt trains the whole population at once: --parallel ({settings.parallel}) must "
                       f"be at least --trials ({settings.trials})")
    if settings.rounds != 1:
        raise PbtError("--scheduler pbt runs one population: use --rounds 1")
    varying = [name for name in SHAPE_PARAMS if name in space and not _fixed(space[name])]
    if varying:
        raise PbtError("--scheduler pbt copies weights between trials, so their shapes must match: fix "
                       + ", ".join(varying) + " (e.g. " + " ".join(f"--param {n}=VALUE" for n in varying) + ")")


def _fixed(param) -> bool:
    values = getattr(param, "values", None)
    return values is not None and len(values) == 1


def perturb(lr: float, beta: float | None, rng: random.Random) -> tuple[float, float | None]:
    """Explore: α and β (when there is one) each moved by × 0.8 or × 1.25 *on their scale*
    (:func:`trainer.contract.hparams.step`: α on a log scale, β on 1 − β's), inside the table's range."""
    new_lr = step("lr", lr, rng.choice(FACTORS))
    return new_lr, None if beta is None else step("beta", beta, rng.choice(FACTORS))


def append_decision(sweep_path: Path | str, proposal: str, decision: str, by: str = "page") -> dict:
    """A person's answer to a proposal: one ``approved`` or ``vetoed`` line in ``pbt.jsonl``."""
    if decision not in DECISIONS:
        raise ValueError(f"a PBT decision is one of {', '.join(DECISIONS)}, got {decision!r}")
    record = {"time": time.time(), "event": decision, "proposal": str(proposal), "by": by}
    append_jsonl(Path(sweep_path) / PBT_LOG, record)
    return record


def proposals(records: list[dict]) -> dict[str, dict]:
    """Each proposal folded with what followed: ``state`` is pending, approved, vetoed, expired, applied or failed."""
    out: dict[str, dict] = {}
    for r in records:
        pid = r.get("proposal")
        if not isinstance(pid, str):
            continue
        if r.get("event") == "proposed":
            out[pid] = {**r, "state": "pending"}
        elif pid in out:
            p = out[pid]
            event = r.get("event")
            if event in DECISIONS and p["state"] != "pending":
                continue  # the first decision wins
            p["state"] = event
            if event in ("applied", "failed"):
                p.update({k: v for k, v in r.items() if k not in ("event", "time", "proposal")})
    return out


def read_log(sweep_path: Path | str) -> list[dict]:
    return read_jsonl(Path(sweep_path) / PBT_LOG)


@dataclass
class Member:
    """What the scheduler knows of one running trial."""

    name: str
    run: RunDir
    curve: list[float | None]  # val_accuracy of its current history, epoch by epoch
    hparams: dict = field(default_factory=dict)
    checkpoint: str | None = None

    @property
    def score(self) -> float | None:
        last = next((v for v in reversed(self.curve) if isinstance(v, (int, float)) and math.isfinite(v)), None)
        return last


def population(running: dict) -> list[Member]:
    """A sweep's running trials (``SweepRunner.running``) as PBT's population; stopping ones left out."""
    out = []
    for name, trial in running.items():
        status = trial.run.status()
        if status is None or status.state != "running" or trial.stop_reason or trial.diverged:
            continue
        out.append(Member(name, trial.run, list(trial.curve), dict(status.hparams or {}), status.checkpoint))
    return out


class PbtScheduler:
    """Proposes, waits for and applies exploits; :meth:`step` is called on every poll of the sweep."""

    def __init__(self, sweep_path: Path | str, *, perturb_every: int, quantile: float, auto: bool,
                 approve_timeout: float, seed: int = 0, clock: Callable[[], float] = time.time):
        self.path = Path(sweep_path) / PBT_LOG
        self.every, self.quantile, self.auto, self.timeout = perturb_every, quantile, auto, approve_timeout
        self.rng = random.Random(seed)
        self.clock = clock
        self.tail = JsonlTail(self.path)
        self.pending: dict[str, dict] = {}
        self.applied: dict[str, dict] = {}  # proposal -> its applied record, until the target answers
        self.checked: dict[str, int] = {}  # trial -> the epoch it was last ranked at
        self.count = 0
        records = read_jsonl(self.path)  # a resumed sweep: go on numbering; close what was left open
        self.count = sum(r.get("event") == "proposed" for r in records)
        for pid, p in proposals(records).items():
            if p["state"] in ("pending", "approved", "expired"):
                self._log("failed", pid, reason="the sweep stopped before this proposal was applied")

    @classmethod
    def of(cls, sweep_path: Path | str, settings, **kwargs) -> "PbtScheduler":
        return cls(sweep_path, perturb_every=settings.perturb_every, quantile=settings.quantile, auto=settings.auto,
                   approve_timeout=settings.approve_timeout, seed=settings.seed, **kwargs)

    def _log(self, event: str, proposal: str, **fields: Any) -> dict:
        record = {"time": self.clock(), "event": event, "proposal": proposal, **fields}
        append_jsonl(self.path, record)
        return record

    def step(self, members: list[Member]) -> None:
        alive = {m.name: m for m in members}
        self._decisions(alive)
        self._answers()
        for member in members:
            self._maybe_propose(member, members)

    # ------------------------------------------------------------------ proposing

    def _maybe_propose(self, target: Member, members: list[Member]) -> None:
        epoch = len(target.curve)
        if epoch < self.checked.get(target.name, 0) + self.every or target.score is None:
            return
        if any(p["target"] == target.name for p in self.pending.values()):
            return
        scored = sorted((m for m in members if m.score is not None), key=lambda m: m.score)
        if len(scored) < MIN_TRIALS:
            return  # too few trials scored yet to rank; ask again on the next poll
        self.checked[target.name] = epoch
        n = max(1, int(len(scored) * self.quantile))
        bottom, top = scored[:n], scored[-n:]
        if target not in bottom or target in top:
            return
        source = self.rng.choice([m for m in top if m.name != target.name])
        lr = source.hparams.get("lr")
        if not isinstance(lr, (int, float)) or not source.checkpoint:
            return
        beta = source.hparams.get("beta") if isinstance(source.hparams.get("beta"), (int, float)) else None
        new_lr, new_beta = perturb(float(lr), beta, self.rng)
        self.count += 1
        pid = f"p-{self.count:04d}"
        record = self._log(
            "proposed", pid, target=target.name, source=source.name, checkpoint=source.checkpoint,
            epoch=epoch, target_score=target.score, source_score=source.score, lr=new_lr, beta=new_beta,
            old={"lr": target.hparams.get("lr"), "beta": target.hparams.get("beta")},
            source_run=str(source.run.path.resolve()), deadline=None if self.auto else self.clock() + self.timeout)
        self.pending[pid] = record
        if self.auto:
            self._log("approved", pid, by="auto")
            self._apply(pid, {m.name: m for m in members})

    # ------------------------------------------------------------------ deciding and applying

    def _decisions(self, alive: dict[str, Member]) -> None:
        for record in self.tail.read_new():
            pid = record.get("proposal")
            if pid not in self.pending or record.get("event") not in DECISIONS or record.get("by") == "auto":
                continue
            if record["event"] == "vetoed":
                self.pending.pop(pid)
            else:
                self._apply(pid, alive)
        now = self.clock()
        for pid, p in list(self.pending.items()):
            if p.get("deadline") is not None and now >= p["deadline"]:
                self._log("expired", pid, after_seconds=self.timeout)
                self._apply(pid, alive)

    def _apply(self, pid: str, alive: dict[str, Member]) -> None:
        p = self.pending.pop(pid)
        target = alive.get(p["target"])
        if target is None:
            self._log("failed", pid, reason=f"{p['target']} is no longer training")
            return
        value = {"run": p["source_run"], "lr": p["lr"]}
        if p.get("beta") is not None and target.hparams.get("beta") is not None:
            value["beta"] = p["beta"]
        source_ckpts = {m["name"] for m in RunDir(p["source_run"]).list_checkpoints()}
        if p.get("checkpoint") in source_ckpts:
            value["checkpoint"] = p["checkpoint"]  # the state that was ranked (pruned since: the newest)
        command_id = target.run.send_command("adopt", value, source="pbt", command_id=f"pbt-{pid}")
        self._log("applied", pid, target=p["target"], source=p["source"], command_id=command_id,
                  target_epoch=len(target.curve), value=value)
        source = alive.get(p["source"])
        if source is not None:  # the exploit in the source's journal too (the target journals ``adopted``)
            source.run.send_command("note", {
                "kind": "pbt_source", "proposal": pid, "target": p["target"], "checkpoint": value.get("checkpoint"),
                "text": f"{p['target']} adopts this run's {value.get('checkpoint') or 'newest checkpoint'} (PBT {pid})"},
                source="pbt", command_id=f"pbt-{pid}-source")
        self.applied[pid] = (target.run, command_id)

    def _answers(self) -> None:
        """A target that refused its adopt: ``failed`` with the trainer's reason."""
        for pid, (run, command_id) in list(self.applied.items()):
            answer = run.answer_to(command_id)
            if answer is None:
                continue
            del self.applied[pid]
            if answer.get("event") == "rejected":
                self._log("failed", pid, reason=answer.get("reason"))
