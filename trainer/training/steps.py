"""``panda train``'s compiled side: the training step, the epoch graph around it, and evaluation.

The data lives on the device once; each epoch is a permutation of indices, and a step gathers its
batch through it (as Keras's ``fit`` does): no per-epoch copy of the examples, no shuffle buffer.
An epoch's steps run inside graph calls (:meth:`CompiledSteps.run_span`): a ``tf.while_loop`` over
the step, with no Python between two steps, that stops early once :meth:`CompiledSteps.interrupt`
sets a ``tf.Variable`` it reads between steps. The inbox's thread calls it when a command lands,
so a command still takes effect at the next step. Calls are cut into spans of about
:data:`SPAN_SECONDS`, so the loop's Python (signal handlers, a replay's steps) is never kept
waiting long. Everything a step accumulates stays on the device until the epoch ends.
"""

from __future__ import annotations

import time

import keras
import tensorflow as tf

from trainer.training.datasets import Dataset
from trainer.steering.core import BATCH_SAMPLES_PER_EPOCH

#: Validation batch size (evaluation runs between commands, a batch at a time).
EVAL_BATCH_SIZE = 1024
#: The running sums of an epoch, in the order of :attr:`CompiledSteps.sums`.
EPOCH_SUMS = ("loss_sum", "correct", "count", "gnorm_sum", "steps")
#: How long one graph call of training steps aims to take (the first is a few steps; later ones adapt).
SPAN_SECONDS = 0.25


def count_and_hits(logits, y):
    """A batch's number of examples and of correct predictions (argmax of the logits), as floats."""
    hits = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), y), tf.float32))
    return tf.cast(tf.shape(y)[0], tf.float32), hits


class CompiledSteps:
    """A model's step, traced once, and the variables the loop steers it through.

    ``order``, ``position`` and ``batch`` say which examples the next step takes; ``sums`` holds the
    epoch's running sums (:data:`EPOCH_SUMS`); ``sampled`` one loss per ``every`` steps;
    ``interrupt`` stops a running span. Exploration (:mod:`trainer.training.exploration`) snapshots them with
    the model.
    """

    def __init__(self, model: keras.Model, optimizer, data: Dataset, batch_size: int, jit: bool):
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        x_train, y_train = tf.constant(data.x_train), tf.constant(data.y_train.astype("int32"))
        x_val, y_val = tf.constant(data.x_val), tf.constant(data.y_val.astype("int32"))
        self.n_train, self.n_val = len(data.x_train), len(data.x_val)
        n = max(self.n_train, 1)
        self.order = order = tf.Variable(tf.range(n, dtype=tf.int32), trainable=False, name="epoch_order")
        self.position = position = tf.Variable(0, dtype=tf.int32, trainable=False, name="epoch_position")
        self.batch = batch = tf.Variable(batch_size, dtype=tf.int32, trainable=False, name="batch_size")
        # one variable for the sums: one update a step, one read an epoch
        self.sums = sums = tf.Variable(tf.zeros([len(EPOCH_SUMS)]), trainable=False, name="epoch_sums")
        self.interrupt_flag = interrupt = tf.Variable(False, trainable=False, name="interrupt")
        # every step writes slot i // every, so the last step of each run of ``every`` is kept
        # (fewer ops a step than choosing which step writes)
        self.sampled = sampled = tf.Variable(tf.zeros([BATCH_SAMPLES_PER_EPOCH]), trainable=False,
                                             name="sampled_losses")
        self.span = 8  # steps per graph call, adapted to take about SPAN_SECONDS

        @tf.function(jit_compile=jit)
        def step_on_batch(x, y):
            with tf.GradientTape() as tape:
                logits = model(x, training=True)
                loss = loss_fn(y, logits)
                loss_total = loss + tf.add_n(model.losses) if model.losses else loss
            grads = tape.gradient(loss_total, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            count, hits = count_and_hits(logits, y)
            sums.assign_add(tf.stack([loss * count, hits, count, tf.linalg.global_norm(grads), 1.0]))
            return loss

        def step_at(i, epoch_order, size):
            index = epoch_order[i * size:(i + 1) * size]
            return step_on_batch(tf.gather(x_train, index), tf.gather(y_train, index))

        @tf.function
        def train_step():
            """One step on the epoch's next batch (exploration's side tracks use it)."""
            i = position.read_value()
            position.assign_add(1)
            return step_at(i, order.read_value(), batch.read_value())

        @tf.function
        def train_steps(stop_at, every):
            """Steps from ``position`` until ``stop_at`` or ``interrupt``; returns the new position."""
            i = position.read_value()
            epoch_order, size = order.read_value(), batch.read_value()  # fixed for the epoch: read once
            while tf.logical_and(i < stop_at, tf.logical_not(interrupt.read_value())):
                # one iteration at a time: the next check of ``interrupt`` waits for this step, so a
                # command lands after the step in progress (the default lets checks run ahead)
                tf.autograph.experimental.set_loop_options(parallel_iterations=1)
                loss = step_at(i, epoch_order, size)
                sampled.scatter_nd_update(tf.reshape(i // every, [1, 1]), tf.reshape(tf.cast(loss, tf.float32), [1]))
                i += 1
                position.assign(i)  # read by another thread to stamp a command with its step
            return i

        @tf.function
        def eval_step(start):
            x, y = x_val[start:start + EVAL_BATCH_SIZE], y_val[start:start + EVAL_BATCH_SIZE]
            logits = model(x, training=False)  # batch norm uses its running statistics
            loss = loss_fn(y, logits)
            count, hits = count_and_hits(logits, y)
            return loss * count, hits

        self.step_on_batch, self.train_step, self.train_steps, self.eval_step = (
            step_on_batch, train_step, train_steps, eval_step)

    def start_epoch(self, permutation, batch_size: int) -> None:
        """A new epoch: its order of the examples, from its first step, with sums at zero."""
        self.order.assign(permutation)
        self.position.assign(0)
        self.batch.assign(batch_size)
        self.sums.assign(tf.zeros([len(EPOCH_SUMS)]))

    def interrupt(self) -> None:
        """Stop the running span after its step (called from the inbox's thread)."""
        self.interrupt_flag.assign(True)

    def clear_interrupt(self) -> None:
        self.interrupt_flag.assign(False)

    def run_span(self, done: int, stop_at: int, every: int) -> int:
        """Run steps ``done`` .. ``stop_at`` in one graph call; returns the position reached (less if interrupted)."""
        began = time.perf_counter()
        reached = int(self.train_steps(tf.constant(stop_at, tf.int32), tf.constant(every, tf.int32)))
        took = time.perf_counter() - began
        if reached == stop_at and reached > done and took > 0:
            self.span = max(1, min(1 << 30, int((reached - done) * SPAN_SECONDS / took)))
        return reached

    def eval_starts(self) -> range:
        """Where each of :meth:`eval_step`'s validation batches starts."""
        return range(0, self.n_val, EVAL_BATCH_SIZE)

    def read_sums(self) -> dict[str, float]:
        """The epoch's running sums by name (waits for the device once)."""
        return dict(zip(EPOCH_SUMS, self.sums.numpy().tolist()))

    def sampled_losses(self, count: int) -> list[float]:
        return [float(v) for v in self.sampled.numpy()[:count]]

    def variables(self) -> list[tf.Variable]:
        """What a step changes besides the model and optimizer (for exploration's snapshots)."""
        return [self.sums, self.order, self.position, self.batch]
