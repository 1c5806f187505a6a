"""The durable half of :class:`~trainer.steering.core.Steering`: opening and reopening a run, checkpoints, endings.

What must survive a crash lives here: a new run's first checkpoint, ``--resume`` putting back the
newest checkpoint, the journal's hyperparameters and its undo stack, every epoch committed once
(checkpoint durable before its record), rewinds and divergence rollbacks onto a new branch, and
the journal's last word on how a run ended. The command dispatch and the live state (status,
heartbeat, the inbox) are :mod:`trainer.steering.core`'s. Pure Python, no TensorFlow.
"""

from __future__ import annotations

import os

from trainer.steering import undo
from trainer.contract.inbox import CommandInbox
from trainer.contract.journal import answered_in, last_hparams, state_at_end
from trainer.contract.file_records import FinderRecord, ForkRecord
from trainer.contract.jsonl import read_jsonl
from trainer.contract.outcome import FINISH_MESSAGES
from trainer.contract.records import BatchRecord, EpochRecord
from trainer.contract.rundir import RunDirError, append_jsonl, current_line, now, repair_jsonl_tail


#: The records of side-track steps (``find_lr``, ``fork``): what ``status.json``'s ``explore_steps`` is rebuilt from.
EXPLORE_RECORDS = ("lr_finder.jsonl", "forks.jsonl")


def recorded_explore_steps(run_path) -> int:
    """Side-track steps a run's exploration records hold: each finder's points, each fork candidate's steps.

    An exploration abandoned on a stop writes no record, so its steps are not counted after ``--resume``.
    """
    finders = [FinderRecord.from_json(r) for r in read_jsonl(run_path / EXPLORE_RECORDS[0])]
    forks = [ForkRecord.from_json(r) for r in read_jsonl(run_path / EXPLORE_RECORDS[1])]
    return (sum(len(f.points) for f in finders if f is not None)
            + sum(c.steps or 0 for f in forks if f is not None for c in f.candidates))


class RunDurability:
    """Opening, reopening and ending a run, and every checkpoint in between (a part of :class:`Steering`)."""

    @property
    def store(self):
        return self._store

    @store.setter
    def store(self, store) -> None:
        """The trainer's checkpoint store; a checkpoint it finds unusable is journaled, never fatal."""
        self._store = store
        if store is not None:
            store.on_skip = self._checkpoint_skipped

    def _checkpoint_skipped(self, name: str, reason: str) -> None:
        self.event("checkpoint_skipped", checkpoint=name, reason=reason)

    # ------------------------------------------------------------------ opening a run

    def open_new(self, config: dict) -> None:
        """A new run: write ``config.json`` and the first status, checkpoint epoch 0, start the inbox."""
        self.rundir.write_config(config)
        self.write_status()
        self.save("initial")  # a divergence in the first epoch rolls back to here
        self.inbox = self._new_inbox()
        self.event("started", pid=os.getpid(), resumed_from=None, hparams=self.trainer.hparams())

    def reopen(self) -> list[dict]:
        """Continue after a stop or crash: newest checkpoint, the journal's hyperparameters, every epoch once.

        Returns the run's current history (the epochs of :func:`~trainer.contract.rundir.current_line`).
        """
        run = self.rundir
        for path in (run.metrics_path, run.batches_path, run.events_path, run.internals_path):
            repair_jsonl_tail(path)
        for name, reason in self.store.skipped:  # found unusable when the store opened
            self._checkpoint_skipped(name, reason)
        meta = self.store.latest()
        if meta is None:
            raise RunDirError(f"{run.path} has no checkpoint to resume from")
        self.trainer.restore(meta)
        self._moved_to(meta)
        events = run.read_events()
        self.trainer.restore_hparams(last_hparams(events, meta))
        line = self._history_after_crash(meta)
        answered, keys = answered_in(events)
        self.seen_ids |= answered
        self.undo_points = undo.undo_points(events)
        self.explore_steps = recorded_explore_steps(run.path)
        self.inbox = self._new_inbox(keys)
        waiting = state_at_end(events)
        self.event("started", pid=os.getpid(), resumed_from=meta["name"], hparams=self.trainer.hparams(),
                   resumed_paused=waiting is not None)
        self.say(f"resuming {run.path} from {meta['name']} (epoch {self.epoch}, step {self.step})")
        if waiting is not None:
            self.state = waiting
            self.message = f"resumed {waiting}: it was {waiting} when the last process ended; resume when ready"
            self.event("paused", command_id=None, reason="resumed paused")
            self.say(self.message)
        return line

    def reattach(self) -> None:
        """The same process trains the same run again (``fit`` called twice): a fresh inbox, a journal line."""
        answered, keys = answered_in(self.rundir.read_events())
        self.seen_ids |= answered
        self.inbox = self._new_inbox(keys)
        self.event("started", pid=os.getpid(), resumed_from=self.latest_checkpoint, hparams=self.trainer.hparams())

    def _new_inbox(self, answered: set = frozenset()) -> CommandInbox:
        return CommandInbox(self.rundir, self.current_step, answered, on_ready=lambda: self.on_command())

    def current_step(self) -> int:
        """The step training has reached, also in the middle of a graph call that runs many steps."""
        live = self.live_step
        return live() if live is not None else self.step

    def _moved_to(self, meta: dict) -> None:
        self.epoch, self.step, self.branch = meta["epoch"], meta["step"], meta.get("branch", 0)
        self.latest_checkpoint = meta["name"]

    # ------------------------------------------------------------------ checkpoints and endings

    def save(self, reason: str, metrics: dict | None = None) -> dict:
        meta = self.store.save(epoch=self.epoch, step=self.step, branch=self.branch, reason=reason,
                               hparams=self.trainer.hparams(), metrics=metrics)
        self.latest_checkpoint = meta["name"]
        return meta

    def rewind_to(self, meta: dict) -> None:
        """Restore ``meta`` on a new branch of the history; the epoch in progress is dropped."""
        self.trainer.restore(meta)
        self._moved_to(meta)
        self.branch = self._next_branch()
        self.last_metrics = meta.get("metrics")
        self.abort_epoch = True
        self.trainer.after_rewind(meta)

    def append_internals(self, record: dict) -> None:
        """One line of ``internals.jsonl`` (see :mod:`trainer.training.internals`); the epoch is already durable."""
        append_jsonl(self.rundir.internals_path, {**record, "time": now()}, sync=False)

    def commit_epoch(self, epoch: EpochRecord, batches: list[BatchRecord], keep_every: int) -> dict:
        """Make a finished epoch durable, in the order ``--resume`` relies on, off the critical path.

        The state is snapshotted into the epoch's checkpoint now; on the store's committer thread
        the checkpoint (which holds the record) becomes durable before the record is appended, so
        a crash in between loses nothing: ``--resume`` appends the record from the checkpoint. A
        crash before the checkpoint is durable loses the epoch, which ``--resume`` trains again.
        Training goes on meanwhile; whatever reads checkpoints (rewind, divergence, stop) waits for
        the commit first (:meth:`CheckpointStore.flush`).
        """
        self.epoch, record = epoch.epoch, epoch.to_json()
        lines = [batch.to_json() for batch in batches]

        def durable(meta: dict) -> None:  # on the committer thread, once the checkpoint is durable
            done = meta["metrics"]
            append_jsonl(self.rundir.batches_path, *lines, sync=False)
            append_jsonl(self.rundir.metrics_path, done)
            self.store.prune(keep_every)
            with self._status_lock:
                self.last_metrics = done
                self.latest_checkpoint = meta["name"]
            self.write_status()

        meta = self.store.save_async(epoch=self.epoch, step=self.step, branch=self.branch, reason="epoch",
                                     hparams=self.trainer.hparams(), metrics=record, then=durable)
        if self.tb is not None:
            self.tb.epoch(meta["metrics"], lines)
        return meta["metrics"]

    def flush(self) -> None:
        """Wait for the epochs being committed (their checkpoints and records); raise a failure."""
        if self.store is not None:
            self.store.flush()

    def _history_after_crash(self, meta: dict) -> list[dict]:
        """The run's current history when resuming from checkpoint ``meta``.

        A crash between an epoch's checkpoint and its record leaves the record only inside the
        checkpoint (see :meth:`commit_epoch`): it is appended now, so every epoch is there once.
        """
        line = current_line(self.rundir.read_metrics())
        record = meta.get("metrics")
        if record and (not line or (line[-1]["epoch"], line[-1].get("branch", 0)) != (meta["epoch"], meta["branch"])):
            append_jsonl(self.rundir.metrics_path, record)
            line.append(record)
        self.last_metrics = line[-1] if line else None
        return line

    def _next_branch(self) -> int:
        """A branch number no checkpoint or record has used yet."""
        highest = max([m.get("branch", 0) for m in self.rundir.list_checkpoints()] + [self.branch])
        for record in self.rundir.read_metrics():
            branch = record.get("branch", 0)
            highest = max(highest, branch if isinstance(branch, int) else 0)
        return highest + 1

    def diverge(self, reason: str, wait: bool = True) -> None:
        """Roll back to the last good checkpoint, then wait paused for the user (``wait``), or go on
        (the autopilot lowers α itself: :mod:`trainer.training.autopilot_stages`)."""
        lr = self.trainer.hparams().get("lr")
        meta = self.store.latest()
        if meta is None:  # every checkpoint was found unusable (and journaled): wait for the user as it is
            self.abort_epoch = True
            self.event("diverged", reason=reason, checkpoint=None, branch=self.branch, lr=lr)
            self.set_state("diverged", f"{reason}; no usable checkpoint to roll back to. Lower the learning rate, "
                                       f"then resume.")
            return
        self.rewind_to(meta)
        self.event("diverged", reason=reason, checkpoint=meta["name"], branch=self.branch, lr=lr,
                   **({} if wait else {"autopilot": True}))
        if not wait:
            self.say(f"diverged: {reason}; rolled back to {meta['name']} (epoch {self.epoch}); the autopilot lowers α")
            self.write_status()
            return
        self.say(f"diverged: {reason}; rolled back to {meta['name']} (epoch {self.epoch}); paused — "
                 f"lower the learning rate and resume")
        self.set_state("diverged", f"{reason}; rolled back to {meta['name']}. Lower the learning rate, then resume.")

    def stop_with_checkpoint(self) -> None:
        """The end of a run asked to stop: checkpoint, then finish (``--resume`` continues it)."""
        self.set_state("stopping")
        meta = self.save("stop")
        self.event("checkpoint_saved", checkpoint=meta["name"], reason="stop")
        self.finish("stopped" if self.stop_requested == "command" else "interrupted")

    def finish(self, reason: str) -> None:
        """Answer what is still queued, journal the end, and say so."""
        self.flush()  # every epoch's record lands before ``finished``
        self._collect()
        while self.pending:
            self.answer(self.pending.popleft(), False, f"the run {reason} before this command was applied")
        self.event("finished", reason=reason)
        self.ending = reason
        self.set_state("finished", FINISH_MESSAGES.get(reason))
        self.say(f"finished ({reason}) at epoch {self.epoch}, step {self.step}: {self.rundir.path}")

    def fail(self, error: str, traceback: str | None = None) -> None:
        """Journal and show a failure (the run can still be resumed from its last checkpoint)."""
        self.event("failed", error=error, traceback=traceback)
        self.set_state("failed", error)
