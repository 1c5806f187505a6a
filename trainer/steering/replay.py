"""``panda replay RUN --name NEW``: train RUN's configuration again, applying RUN's interventions where it did.

:func:`plan_of` reads RUN's journal: every *applied* command the command table marks
replayed (:data:`trainer.contract.commands.REPLAYED`: learning rate, β, batch size, checkpoint, rewind), with where it took effect — the epochs completed and the global step at that
moment (an ``applied`` event's ``epoch`` and ``step``; for a rewind, ``from_epoch`` and
``from_step``, where the run was before it jumped back). Autopilot's commands are ordinary applied
commands, so they replay too; the replay itself runs with the autopilot off.

:class:`Replayer` is the trainer's side (``TrainConfig.replay`` = RUN's path): the loop checks
``steering.replay_due`` next to the inbox flag, and when the step matches, the due entries are
appended to the new run's ``commands.jsonl`` (``source: "replay"``) and handled through the same
path as any command, at the same kind of step boundary. Entries are taken in order, so steps that
repeat after a rewind are told apart. With the same seed on CPU, a run without ``--resume``
replays to float tolerance. Not replayed: pauses (no effect on the numbers), a divergence's
waiting for ``resume``, and a batch size set in the gap between an epoch's end and the next
epoch's first step (it is applied one epoch early). Pure Python, no TensorFlow.
"""

from __future__ import annotations

from trainer.contract.commands import REPLAYED
from trainer.contract.rundir import RunDir

SOURCE = "replay"


def plan_of(events: list[dict]) -> list[dict]:
    """The applied interventions of a journal, in order: ``{epoch, step, cmd, value}``."""
    out = []
    for event in events:
        if event.get("event") != "applied" or event.get("cmd") not in REPLAYED:
            continue
        cmd, value = event["cmd"], event.get("value")
        epoch, step = event.get("epoch"), event.get("step")
        if cmd == "veto":  # replayed as what it did (the replay has no autopilot stages): α back
            cmd, value = "set_lr", (event.get("hparams") or {}).get("lr")
        if cmd == "rewind":
            value = event.get("checkpoint", value)
            epoch, step = event.get("from_epoch"), event.get("from_step")
            if epoch is None or step is None:
                raise ValueError("this run's rewinds do not say where they happened (a journal older than replay)")
        out.append({"epoch": epoch, "step": step, "cmd": cmd, "value": value})
    return out


class Replayer:
    """Feeds a replay plan to a :class:`~trainer.steering.core.Steering` at the recorded steps."""

    def __init__(self, plan: list[dict]):
        self.plan = plan
        self.next = 0

    @classmethod
    def of_run(cls, run_path) -> "Replayer":
        return cls(plan_of(RunDir(run_path).require().read_events()))

    def due_step(self) -> int:
        """The global step of the next entry, or -1 when none is left."""
        return self.plan[self.next]["step"] if self.next < len(self.plan) else -1

    def inject(self, steering) -> int:
        """Append every entry due now (same epochs completed and step) as a command; how many."""
        sent = 0
        while self.next < len(self.plan):
            entry = self.plan[self.next]
            command_id = f"replay-{self.next + 1}"
            if command_id in steering.seen_ids:  # answered before a --resume of the replay
                self.next += 1
                continue
            if (entry["epoch"], entry["step"]) != (steering.epoch, steering.step):
                break
            steering.rundir.send_command(entry["cmd"], entry["value"], source=SOURCE, command_id=command_id)
            self.next += 1
            sent += 1
        steering.replay_due = self.due_step()
        return sent
