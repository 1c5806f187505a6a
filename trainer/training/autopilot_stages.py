"""``panda train``'s autopilot at work: lookahead stages, finder restarts, and divergence without a pause.

The planner (:class:`trainer.steering.autopilot.StagePlanner`) says what to try and which to keep;
this is the trainer's side that tries it, on :class:`~trainer.training.exploration.Explorer`'s side
track (a bit-for-bit snapshot, put back after). At an epoch's end (never inside the hot loop):

* **a stage is due** (the step crossed the next stage's start) — or the advisor just said *bouncing*
  or *plateau*: fork the planner's candidates for the lookahead, predict each one's loss at the
  stage's end, and go on with the lowest. The curves go to ``forks.jsonl`` (``pick: "autopilot"``);
* **not learning**: when a stage *raised* α, no α change came after it (stages that kept α aside) and
  the validation loss is now worse than the best before it (a raise can look good for an epoch, then
  kill the network: bench/autopilot.py's CNN), an ``undo`` of its ``set_lr`` (back to the checkpoint taken just before it, at its α: the autopilot takes back its own
  stage, an ``autopilot_vetoed`` event with ``by: "autopilot"``; the sampler hears the raise was bad); otherwise a ``find_lr`` from the current state, and
  its suggestion — unless its curve is flat (the smoothed loss fell less than :data:`FLAT`): a state that
  learns at no α gives no suggestion worth taking, so α moves as the advisor says (×0.1 when high, ×10 when low). The autopilot never sets α below
  :data:`~trainer.steering.autopilot.ALPHA_FLOOR`.

Each decision sends a ``set_lr`` with ``source: "autopilot"`` when α changes (answered, journaled and
undoable like any command) and journals one ``autopilot_stage`` event. A **divergence** under the
autopilot (either method) rolls back as the guard does and goes on by itself at a lower α: lookahead
runs a ``find_lr`` from the rolled-back state (its suggestion when below α, else α × 0.1); the rules
method scales α by 0.1. A stop during a stage abandons it (the state is put back) and is carried out.
"""

from __future__ import annotations

import math

from trainer.contract import commands as cmds
from trainer.steering.autopilot import ALPHA_FLOOR, StagePlanner, lookahead_steps, stage_length
from trainer.training.exploration import FORKS, LR_FINDER, Explorer, Interrupted

#: The finder's ramp when the autopilot runs one: steps, and its range around the current α.
FINDER_STEPS = 100
FINDER_LOW, FINDER_HIGH = 1e-6, 1.0
#: A finder whose smoothed loss fell by less than this fraction of its start found nothing to go by.
FLAT = 0.02
#: Advice that brings the next stage forward.
EARLY = ("bouncing", "plateau")


class StageAutopilot:
    """The lookahead autopilot of a :class:`~trainer.training.loop.Trainer`; its planner is ``advising.planner``."""

    def __init__(self, trainer):
        self.t = trainer
        self._planner: StagePlanner | None = None
        self.next_step = self.horizon()
        self.raised: tuple[int, float] | None = None  # a stage that raised α, and the best val loss before it

    @property
    def planner(self) -> StagePlanner:
        """Made at the first stage (Optuna is imported only by runs that use it); a veto finds it on ``advising``."""
        if self._planner is None:
            from trainer.search.stage_sampler import StageSampler

            self._planner = StagePlanner(StageSampler(self.t.config.hparams.lr, seed=self.t.config.seed))
            self.t.advising.planner = self._planner
        return self._planner

    @property
    def on(self) -> bool:
        return self.t.advising.autopilot and self.t.config.autopilot_method == "lookahead"

    def horizon(self) -> int:
        """The stage length in steps, for the batch size in force."""
        return stage_length(math.ceil(len(self.t.data.x_train) / self.t.hp.batch_size))

    def resumed(self, events: list[dict]) -> None:
        """After ``--resume``: the planner's memory from the journal; the next stage one stage after the last."""
        if not any(e.get("event") == "autopilot_stage" for e in events):
            self.next_step = self.t.steering.step + self.horizon()
            return
        self.planner.resumed(events)
        last = self.planner.stages[-1].get("step") if self.planner.stages else None
        self.next_step = (last if isinstance(last, int) else self.t.steering.step) + self.horizon()

    # ------------------------------------------------------------------ when

    def epoch_end(self, advice: list) -> None:
        """After the epoch's advice: a stage when one is due (or advice brings it forward)."""
        s = self.t.steering
        if not self.on or s.stop_requested or s.state != "running" or s.epoch >= self.t.config.epochs:
            return  # nothing to steer: off, stopping, waiting, or the last epoch is done
        kinds = [a.kind for a in advice]
        if "not learning" in kinds:
            said = next(a for a in advice if a.kind == "not learning")
            if not self.take_back_raise():
                self.find_lr_stage("not learning", said.value if said.cmd == "scale_lr" else None)
        elif s.step >= self.next_step or any(k in EARLY for k in kinds):
            if self.planner.hold:  # a veto keeps the user's α through this stage
                self.planner.hold = False
                self.next_step = s.step + self.horizon()
                return
            self.fork_stage("stage" if s.step >= self.next_step else next(k for k in kinds if k in EARLY))

    def diverged(self, reason: str) -> None:
        """Roll back as the guard does, then lower α and go on (no pause for a person)."""
        s = self.t.steering
        s.diverge(reason, wait=False)
        if s.state != "running":  # no checkpoint to roll back to: it waits for the user after all
            return
        if self.t.config.autopilot_method == "lookahead":
            self.find_lr_stage("diverged")
        else:
            self.t.advising.lower_after_divergence()

    # ------------------------------------------------------------------ what

    def fork_stage(self, trigger: str) -> None:
        t, s = self.t, self.t.steering
        lr, horizon = t.hp.lr, self.horizon()
        steps, stage = lookahead_steps(horizon), self.planner.next_stage
        lrs = self.planner.candidates(lr)
        before, explorer = s.explore_steps, Explorer(t)
        base = explorer.base()
        s.current = None  # the records are the autopilot's, not the last command's
        try:
            results, curves = explorer.try_candidates([{"lr": x} for x in lrs], steps)
        except Interrupted:  # a stop: the state is back; it is carried out now
            self._catch_up()
            return
        decision = self.planner.decide(lrs, curves, horizon)
        chosen = decision["chosen"]
        for result, predicted, fit in zip(results, decision["predicted"], decision["fits"]):
            result["predicted_loss"] = predicted
            result["fit"] = fit or {"a": None, "b": None, "c": None}
        explorer.record_line(FORKS, {"kind": "fork", "steps": steps, "pick": "autopilot", "autopilot_stage": stage,
                                 "base": base, "best": chosen, "horizon": horizon, "candidates": results,
                                 "val_examples": min(len(t.data.x_val), 1024)})
        to_lr = lrs[chosen] if chosen is not None else cmds.check_lr(float(f"{max(lr * 0.1, ALPHA_FLOOR):.3g}"))
        if to_lr != lr:  # a raise is watched until it pays off; a keep leaves the watch as it is
            self.raised = (stage, self._best_val_loss()) if to_lr > lr else None
        candidates = [{"lr": x, "predicted_loss": p, "final_loss": r["final_loss"], "val_loss": r["val_loss"],
                       "steps": r["steps"]} for x, p, r in zip(lrs, decision["predicted"], results)]
        self._decided(stage, trigger, "fork", lr, to_lr, candidates, chosen, s.explore_steps - before, horizon, FORKS)

    def find_lr_stage(self, trigger: str, flat_factor: float | None = None) -> None:
        """A finder from the current state and its suggestion; a flat curve's is noise: then α × ``flat_factor``
        (the advisor's ×0.1 for an α already high, ×10 for a low one), or α as it is."""
        t, s = self.t, self.t.steering
        lr, stage, before = t.hp.lr, self.planner.next_stage, s.explore_steps
        spec = {"steps": FINDER_STEPS, "min": min(FINDER_LOW, lr / 100), "max": min(max(FINDER_HIGH, lr * 10), cmds.MAX_LR)}
        s.current = None
        try:
            found = Explorer(t).find_lr(cmds.check_find_lr(spec))
        except Interrupted:
            self._catch_up()
            return
        suggested = found["suggestion"]["lr"]
        if trigger == "diverged":
            to_lr = suggested if suggested is not None and suggested < lr else lr * 0.1
        elif found["drop"] < FLAT:
            to_lr = lr * (flat_factor or 1.0)  # no α made this state learn: the "suggestion" is the noise's minimum
        else:
            to_lr = suggested if suggested is not None else lr * 10
        to_lr = cmds.check_lr(float(f"{max(to_lr, min(ALPHA_FLOOR, lr)):.3g}"))
        self.raised = None
        self._decided(stage, trigger, "find_lr", lr, to_lr, [], None, s.explore_steps - before, self.horizon(),
                      LR_FINDER)

    def _decided(self, stage: int, trigger: str, action: str, from_lr: float, to_lr: float, candidates: list,
                 chosen: int | None, spent: int, horizon: int, record: str) -> None:
        """Apply α (a set_lr from the autopilot), journal the ``autopilot_stage`` event, schedule the next stage."""
        s = self.t.steering
        command_id = self.t.advising.send("set_lr", to_lr) if to_lr != from_lr else None
        event = s.event("autopilot_stage", stage=stage, trigger=trigger, action=action, from_lr=from_lr, to_lr=to_lr,
                        candidates=candidates, chosen=chosen, explore_steps=spent, horizon=horizon, record=record,
                        command_id=command_id)
        self.planner.record(event)
        self.next_step = s.step + self.horizon()
        self._catch_up()
        s.say(f"autopilot stage {stage} ({trigger}, {action}, {spent} side-track steps): α {from_lr:g} → {to_lr:g}")

    def take_back_raise(self) -> bool:
        """The run stopped learning after a stage raised α: ``undo`` it (the state before, at its α).

        ``False`` (a finder instead) when no raise is watched, it was vetoed, the run is no worse than before
        it, or it is no longer the newest change (a user's command came after it: undo would take back theirs).
        """
        s, raised = self.t.steering, self.raised
        self.raised = None
        event = next((e for e in self.planner.stages if raised and e.get("stage") == raised[0]), None)
        now = (s.last_metrics or {}).get("val_loss")
        if event is None or raised[0] in self.planner.vetoed or not (isinstance(now, float) and now > raised[1]):
            return False
        stage = raised[0]
        if not s.undo_points or s.undo_points[-1].get("command_id") != event.get("command_id"):
            return False
        self.t.advising.send("undo", None)
        if s.undo_points and s.undo_points[-1].get("command_id") == event.get("command_id"):
            return False  # rejected: the run goes on as it was, and a finder looks instead
        self.planner.vetoed_stage(stage, event)
        s.event("autopilot_vetoed", stage=stage, lr=event["from_lr"], command_id=None, by="autopilot",
                reason="not learning since it raised α")
        self.next_step = s.step + self.horizon()
        s.say(f"autopilot: stage {stage} raised α to {event['to_lr']:g} and the run stopped learning; "
              f"undone, back to α {event['from_lr']:g}")
        return True

    def _best_val_loss(self) -> float:
        """The best validation loss of the run's current history (``inf`` before any)."""
        values = [r.get("val_loss") for r in self.t.advising.epochs]
        return min((v for v in values if isinstance(v, float) and math.isfinite(v)), default=math.inf)

    def _catch_up(self) -> None:
        """Handle what arrived during the stage (its side track collected it, so the inbox's flag is down)."""
        if self.t.steering.pending:
            self.t.steering.handle_commands()
