"""TensorBoard event files beside the run directory's own logs (``--tensorboard``).

Writes ``RUN/tensorboard/train`` and ``RUN/tensorboard/validation`` with the tags Keras's own
TensorBoard callback uses, so ``tensorboard --logdir runs`` shows a Panda run like any Keras run:

* ``epoch_loss``, ``epoch_accuracy`` (train and validation), ``epoch_learning_rate``,
  ``epoch_grad_norm``, ``epoch_samples_per_second`` — step: the epoch number;
* ``batch_loss`` — step: the global optimizer step (the sampled mini-batch losses);
* ``interventions`` (text) — one line per answered command, rewind or divergence from
  events.jsonl — step: the global step it happened at.

The run directory stays the source of truth; these files are a one-way copy for TensorBoard.
Only TensorFlow is needed to write them (``tf.summary.write`` with the scalar and text plugins'
metadata); reading them needs the ``tensorboard`` package.
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from trainer.contract.rundir import EVENTS, JsonlTail

FOLDER = "tensorboard"
#: Journal events that become ``interventions`` text.
JOURNALED = ("applied", "rejected", "paused", "resumed", "rewound", "diverged")


def _metadata(plugin: str) -> summary_pb2.SummaryMetadata:
    return summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=plugin))


_SCALAR = _metadata("scalars")
_TEXT = _metadata("text")


def describe_event(event: dict) -> str:
    """One readable line for an ``interventions`` entry.

    >>> describe_event({"event": "applied", "cmd": "set_lr", "value": 0.01, "epoch": 3, "step": 120})
    'applied set_lr 0.01 (epoch 3, step 120)'
    """
    kind = event.get("event")
    parts = [str(kind)]
    if event.get("cmd"):
        parts.append(str(event["cmd"]))
    if event.get("value") is not None:
        parts.append(str(event["value"]))
    if kind == "rejected" and event.get("reason"):
        parts.append(f"— {event['reason']}")
    if kind in ("rewound", "diverged") and event.get("checkpoint"):
        parts.append(f"to {event['checkpoint']}")
    if kind == "diverged" and event.get("reason"):
        parts.append(f"— {event['reason']}")
    return " ".join(parts) + f" (epoch {event.get('epoch')}, step {event.get('step')})"


class TensorBoardLog:
    """Copies each epoch record (and new journal entries) into TensorBoard event files."""

    def __init__(self, run_path: Path | str):
        self.folder = Path(run_path) / FOLDER
        self._train = tf.summary.create_file_writer(str(self.folder / "train"))
        self._validation = tf.summary.create_file_writer(str(self.folder / "validation"))
        self._events = JsonlTail(Path(run_path) / EVENTS)

    @staticmethod
    def _scalar(tag: str, value, step: int) -> None:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            tf.summary.write(tag, tf.constant(float(value), tf.float32), step=int(step), metadata=_SCALAR)

    def epoch(self, record: dict, batches: list[dict] = ()) -> None:
        """Write one metrics.jsonl record, its sampled batch losses and the journal so far."""
        epoch = int(record["epoch"])
        with self._train.as_default():
            for key, tag in (("loss", "epoch_loss"), ("accuracy", "epoch_accuracy"), ("lr", "epoch_learning_rate"),
                             ("grad_norm", "epoch_grad_norm"), ("samples_per_second", "epoch_samples_per_second"),
                             ("wall_samples_per_second", "epoch_wall_samples_per_second")):
                self._scalar(tag, record.get(key), epoch)
            for batch in batches:
                self._scalar("batch_loss", batch.get("loss"), batch["step"])
            for event in self._events.read_new():
                if event.get("event") in JOURNALED:
                    tf.summary.write("interventions", tf.constant(describe_event(event)),
                                     step=int(event.get("step") or 0), metadata=_TEXT)
        with self._validation.as_default():
            self._scalar("epoch_loss", record.get("val_loss"), epoch)
            self._scalar("epoch_accuracy", record.get("val_accuracy"), epoch)
        self.flush()

    def flush(self) -> None:
        self._train.flush()
        self._validation.flush()

    def close(self) -> None:
        self._train.close()
        self._validation.close()
