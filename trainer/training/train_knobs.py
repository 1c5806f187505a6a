"""``panda train``'s :class:`~trainer.steering.steerable.Steerable` side: what each command touches, and when a run diverged.

A hyperparameter command assigns a ``tf.Variable`` the compiled step reads (``knobs``), so the
step is traced once for the whole run; ``find_lr`` and ``fork`` train on a side track
(:mod:`trainer.training.exploration`); ``adopt`` loads another run's checkpoint. The divergence policy —
a loss that is not finite, or over ``divergence_factor`` × the best loss so far (never below a
tenth of chance) — decides when :meth:`~trainer.steering.core.Steering.diverge` rolls back. A part of
:class:`~trainer.training.loop.Trainer`, whose epoch loop is :mod:`trainer.training.loop`.
"""

from __future__ import annotations

import math

import tensorflow as tf

from trainer.contract import commands as cmds
from trainer.training.exploration import Explorer
from trainer.contract.hparams import Hyperparameters
from trainer.contract.rundir import CheckpointError


class TrainKnobs:
    """The Steerable methods of :class:`~trainer.training.loop.Trainer` and its divergence policy."""

    def hparams(self) -> dict:
        return {**self.hp.to_dict(), "lr0": self.lr0, "lr0_epoch": self.lr0_epoch}

    def restore(self, meta: dict) -> None:
        self.steering.store.restore(meta)
        self._apply_knobs()  # the checkpoint holds old hyperparameters; the user's current ones win

    def restore_hparams(self, latest: dict) -> None:
        self.hp = Hyperparameters.from_dict({**self.hp.to_dict(), **latest})
        self.lr0 = latest.get("lr0", self.hp.lr)
        self.lr0_epoch = latest.get("lr0_epoch", self.steering.epoch)
        self._apply_knobs()

    def after_rewind(self, meta: dict) -> None:
        pass  # the loop sees steering.abort_epoch and drops the epoch in progress

    def refuse_checkpoint(self) -> str | None:
        sums = self.steps.read_sums()
        if not sums["count"]:
            return None
        return self._divergence(sums["loss_sum"] / sums["count"])

    def set_lr(self, value: float) -> None:
        self.hp.lr = self.lr0 = value
        self.lr0_epoch = self.steering.epoch
        self.knobs.lr.assign(value)
        self.steering.say(f"learning rate -> {value:g} at step {self.steering.step}")

    def scale_lr(self, factor: float) -> None:
        self.set_lr(cmds.check_lr(self.hp.lr * factor))

    def set_beta(self, value: float) -> None:
        if self.knobs.beta is None:
            raise cmds.CommandError(f"optimizer {self.hp.optimizer} has no beta")
        self.hp.beta = value
        self.knobs.beta.assign(value)

    def set_batch_size(self, value: int) -> None:
        self.hp.batch_size = value  # the next epoch builds its pipeline with it

    def find_lr(self, spec: dict) -> dict:
        return Explorer(self).find_lr(spec)  # trains on a side track, then restores the exact state

    def fork(self, spec: dict) -> dict:
        return Explorer(self).fork(spec)

    def adopt(self, source: dict, spec: dict) -> None:
        from trainer.training.adopt import check_compatible

        if spec.get("beta") is not None and self.knobs.beta is None:
            raise cmds.CommandError(f"adopt beta: optimizer {self.hp.optimizer} has no beta")
        own = self.steering.store.latest()
        check_compatible(source, own)
        try:
            self.steering.store.restore(source)
        except CheckpointError as e:  # gone before the read began: nothing was loaded
            raise cmds.CommandError(f"adopt: {e}") from None
        except (AssertionError, ValueError, tf.errors.OpError) as e:  # pruned mid-read: part may have loaded
            self.steering.rewind_to(own)
            self.steering.event("rewound", checkpoint=own["name"], to_epoch=own["epoch"], branch=self.steering.branch,
                                reason="adopt failed mid-read")
            raise cmds.CommandError(f"adopt: reading {source['name']} failed ({str(e).splitlines()[0][:200]}); "
                                    f"rolled back to this run's {own['name']}") from None
        if spec.get("lr") is not None:
            self.set_lr(spec["lr"])
        if spec.get("beta") is not None:
            self.hp.beta = spec["beta"]
        self._apply_knobs()  # the checkpoint holds the source's knobs; this run's (as just set) win

    # ------------------------------------------------------------------ knobs and divergence

    def _apply_knobs(self) -> None:
        self.knobs.lr.assign(self.hp.lr)
        if self.knobs.beta is not None and self.hp.beta is not None:
            self.knobs.beta.assign(self.hp.beta)

    def _divergence(self, loss: float, val_loss: float | None = None) -> str | None:
        """Why the current state must not be kept, or ``None`` when it is fine."""
        if not math.isfinite(loss):
            return f"the training loss became {loss}"
        if val_loss is not None and not math.isfinite(val_loss):
            return f"the validation loss became {val_loss}"
        # Near-zero best losses make ordinary noise look like a 10x jump, so the reference never
        # drops below a tenth of a uniform guess's loss, ln(classes): with the default factor of
        # 10, a run is diverged once it does worse than guessing.
        chance = math.log(self.data.n_classes)
        reference = max(self.best_loss if self.best_loss is not None else chance, chance / 10)
        limit = self.config.divergence_factor * reference
        if loss > limit:
            return f"the training loss {loss:.4g} is over {self.config.divergence_factor:g}x the reference ({reference:.4g}, the best so far or chance/10)"
        return None
