"""Between ``fit``'s batches: how :class:`~trainer.keras_callback.callback.PandaCallback` steps in, and what it counts there.

Panda wraps the one function ``fit`` calls per batch (``model.train_function``) for the length
of the ``fit``: one Python call a batch, no batch hooks. After each training batch it counts the
step (no device read), keeps the batch's running loss as the tensor Keras returned, journals an
α change another callback made, and applies the commands that arrived. While ``find_lr`` runs,
the batches go to the range test instead and Keras is handed the newest training batch's logs.
The examples an epoch trained on come from Keras's loss tracker, else from its steps and fit's
batch size (:class:`~trainer.keras_callback.logs.FitData`).
"""

from __future__ import annotations

from trainer.keras_callback.explore import EPOCH_END
from trainer.contract.rundir import WAITING_STATES


class FitBatches:
    """The per-batch half of :class:`~trainer.keras_callback.callback.PandaCallback` (a mixin: it shares the callback's state)."""

    def _hook_train_function(self) -> None:
        """Wrap the function ``fit`` calls once per batch, so Panda runs between batches.

        The wrapper costs one Python call a batch and keeps the batch's logs as the tensors
        Keras returned (read once, at the end of the epoch); batch hooks would cost more Python per
        batch. It is taken off at the end of ``fit`` (:meth:`on_train_end`, :meth:`close`) and
        passes batches straight through whenever this callback is not in a ``fit``.
        """
        model = self.model
        inner = model.train_function
        if getattr(inner, "panda_callback", None) is self:
            return

        def train_function(iterator):
            if not self._in_fit:
                return inner(iterator)
            if self.finder.active:
                return self._finder_call(inner, iterator)
            logs = inner(iterator)
            self._after_batch(logs)
            return logs

        train_function.panda_callback, train_function.panda_inner = self, inner
        model.train_function = train_function

    def _unhook_train_function(self) -> None:
        self._in_fit = False
        model = self.model
        hooked = getattr(model, "train_function", None) if model is not None else None
        if getattr(hooked, "panda_callback", None) is self:
            model.train_function = hooked.panda_inner

    def _after_batch(self, logs) -> None:
        """A batch ended: count it, keep its loss (a tensor), apply the commands that arrived."""
        # Only Python here: the step is counted from the calls (no device read), and the running
        # mean of the loss is kept as the tensor Keras returned. Batch losses, the sampled records
        # and the examples seen are worked out once, at the end of the epoch.
        steering = self.steering
        self._calls += 1
        self._last_logs, self._lr_batch = logs, self.lr_watch.current
        if not self._opened:  # the model made its variables in this batch: the run opens now
            self._open_after_first_batch()
        batch = self._calls * self._steps_per_call - 1 - self._skip  # the index Keras gives batch hooks (end_step)
        steering.step = self._base_step + batch + 1 - self._base_batch
        self._next_batch = batch + 1
        self._batches_in_epoch += 1
        mean = logs.get("loss") if isinstance(logs, dict) else None
        if self.batch_size is None and not self._sized:
            self._sized = True  # the first batch of the run: one device read, once
            self.batch_size = self._first_batch_size()
        if mean is not None:
            self._means[batch] = mean
        if self.lr_watch.pending:
            self._journal_lr_changes()
        if steering.inbox.ready.is_set() or steering.state in WAITING_STATES:
            steering.handle_commands()
        if steering.stop_requested:
            self._cut_short = True
            self.model.stop_training = True

    def _open_after_first_batch(self) -> None:
        """The run opens now; a resumed run's checkpoint replaces what this first batch trained (not counted)."""
        calls = self._calls * self._steps_per_call
        if self._open_and_start():
            self._base_step, self._base_batch = self.steering.step, calls
        else:
            self._base_step, self._base_batch = self.steering.step - calls, 0
        self._epoch_step0 = self._base_step

    def _finder_call(self, inner, iterator):
        """A batch of the learning-rate finder: its loss goes to the test, nothing else is counted.

        Keras is handed the newest training batch's logs, not the finder's: a ``train_step`` whose
        returned keys are not its metrics' names makes Keras take the epoch's numbers from the last
        logs it saw. When the data runs out in the finder's batch, the state is put back before
        Keras reads the epoch's metrics.
        """
        self.finder.batch_begin()
        try:
            logs = inner(iterator)
        except BaseException:  # the data ran out (or fit failed): put everything back, even with no point yet
            if self.finder.active:
                self.finder.finish(EPOCH_END)
            raise
        self._calls += 1
        self._skip += self._steps_per_call
        steps = self.params.get("steps") if isinstance(self.params, dict) else None
        batch = self._calls * self._steps_per_call - 1
        self.finder.batch_end(logs, last_of_epoch=steps is not None and batch + 1 >= steps)
        steering = self.steering
        if not self.finder.active and (steering.inbox.ready.is_set() or steering.state in WAITING_STATES):
            steering.handle_commands()  # the test is over: a run paused before it waits again here
            if steering.stop_requested:  # the stop that abandoned it
                self._cut_short = True
                self.model.stop_training = True
        return self._last_logs if self._last_logs is not None else logs

    def _end_finder(self, why: str) -> None:
        """Fit's training batches ran out (or fit ended) with a finder under way: finish it with what it has."""
        if self.finder.active and (self.finder.test.losses or why != EPOCH_END):
            self.finder.finish(why)

    def _first_batch_size(self) -> int | None:
        """Examples in a batch: fit's data adapter says, else Keras's loss tracker after the first batch."""
        if self.data.batch_size:
            return self.data.batch_size
        seen = self._samples_seen()
        if not seen:
            self.warn_once("batch", "neither fit's data (a data set of unknown batch shape) nor Keras's loss "
                                    "tracker (a train_step of its own) tells the batch size: batch_size and "
                                    "samples_per_second are left out of the records")
        return seen // self._steps_per_call if seen else None

    def _samples_seen(self) -> int | None:
        """Examples trained on this epoch: Keras weights its loss mean by batch size (``None`` if it never ran)."""
        tracker = getattr(self.model, "_loss_tracker", None)
        count = getattr(tracker, "count", None)
        try:
            seen = int(round(float(count.numpy()))) if count is not None else None
        except Exception:
            return None
        return seen if seen else None  # a train_step of its own never feeds the tracker

    def _samples_from_steps(self) -> int | None:
        """Examples trained on this epoch from its steps and the batch size (the last batch may be smaller)."""
        steps = self.steering.step - self._epoch_step0
        if not self.batch_size or steps <= 0:
            return None
        samples = steps * self.batch_size
        data = self.data
        if data.partial and data.num_batches and self._calls * self._steps_per_call >= data.num_batches:
            samples -= self.batch_size - data.partial
        return samples
