"""The advisor's rules on synthetic curves: each fires on its pattern, at its documented threshold, and not on a healthy run."""

from __future__ import annotations

import math

import pytest

from trainer.steering import advice_rules as advisor
from trainer.steering.advice_rules import Context, advise

CTX = Context(n_classes=10, optimizer="adam")


def records(loss, val_loss=None, *, accuracy=None, val_accuracy=None, grad_norm=None, lr=0.003):
    n = len(loss)
    val_loss = val_loss or [l * 1.1 for l in loss]
    accuracy = accuracy or [0.9] * n
    val_accuracy = val_accuracy or [0.88] * n
    grad_norm = grad_norm or [1.0] * n
    return [{"epoch": i + 1, "step": 10 * (i + 1), "lr": lr, "loss": loss[i], "val_loss": val_loss[i],
             "accuracy": accuracy[i], "val_accuracy": val_accuracy[i], "grad_norm": grad_norm[i]} for i in range(n)]


def batches(spreads, mean=0.5):
    """Sampled batch losses with a given standard deviation per epoch (alternating mean ± spread)."""
    out = []
    for epoch, s in enumerate(spreads, start=1):
        out += [{"epoch": epoch, "step": 10 * epoch + k, "loss": mean + (s if k % 2 else -s)} for k in range(10)]
    return out


def kinds(epochs, batch_records=(), ctx=CTX):
    return [a.kind for a in advise(epochs, list(batch_records), ctx)]


HEALTHY = records([2.0, 1.2, 0.8, 0.55, 0.4, 0.3, 0.22, 0.17], [2.1, 1.3, 0.9, 0.65, 0.5, 0.42, 0.36, 0.32])


def test_a_healthy_run_gets_no_advice():
    assert kinds(HEALTHY, batches([0.3, 0.25, 0.2, 0.15, 0.12, 0.1, 0.08, 0.07])) == []


def test_bouncing_epoch_loss_oscillating_halves_alpha():
    epochs = records([1.0, 0.6, 0.5, 0.56, 0.45, 0.52])  # two rises of more than 3 %
    [advice] = advise(epochs, [], CTX)
    assert (advice.kind, advice.cmd, advice.value) == ("bouncing", "scale_lr", 0.5)
    assert "went up 2 times" in advice.reason
    small = records([1.0, 0.6, 0.5, 0.51, 0.45, 0.46], [1.0, 0.7, 0.6, 0.5, 0.45, 0.4])  # rises of 2 %: tolerated
    assert kinds(small) == []
    val = records([1.0, 0.6, 0.5, 0.45, 0.4, 0.38], [3.6, 2.9, 3.7, 1.4, 0.5, 0.55])  # the validation loss bounces
    assert kinds(val) == ["bouncing"] and "validation loss went up 2 times" in advise(val, [], CTX)[0].reason
    climbing = records([0.5, 0.4, 0.3, 0.2, 0.1, 0.05], [0.5, 0.52, 0.56, 0.6, 0.65, 0.7])  # only rises: no bounce
    assert "bouncing" not in kinds(climbing)


def test_bouncing_batch_spread_rising_while_the_loss_stalls():
    stalled = records([1.0, 0.5, 0.45, 0.47], [1.1, 0.6, 0.55, 0.57])
    assert kinds(stalled, batches([0.2, 0.1, 0.1, 0.16])) == ["bouncing"]  # 1.6x its smallest
    assert kinds(stalled, batches([0.2, 0.1, 0.1, 0.14])) == []  # 1.4x: below SPREAD_FACTOR
    improving = records([1.0, 0.5, 0.45, 0.40], [1.1, 0.6, 0.55, 0.50])
    assert kinds(improving, batches([0.2, 0.1, 0.1, 0.3])) == []  # still making progress


def test_plateau_flat_validation_loss_for_p_epochs():
    flat = [0.30, 0.301, 0.299, 0.302, 0.300, 0.296]  # no new best by 2 % for 5 epochs
    epochs = records([0.5, 0.4, 0.35, 0.33, 0.32, 0.315], flat)
    [advice] = advise(epochs, [], CTX)
    assert (advice.kind, advice.cmd, advice.value) == ("plateau", "scale_lr", 0.1)
    assert kinds(epochs[1:]) == []  # one epoch short of P
    moving = records([0.5, 0.4, 0.35, 0.33, 0.32, 0.315], [0.30, 0.301, 0.299, 0.302, 0.300, 0.293])
    assert kinds(moving) == []  # the last beat the best by 2.3 %


def test_not_learning_at_chance_suggests_a_bigger_change():
    stuck = records([2.6, 2.5, 2.45], accuracy=[0.1, 0.12, 0.11], val_accuracy=[0.1] * 3, lr=1e-5)
    [advice] = advise(stuck, [], CTX)
    assert (advice.kind, advice.cmd, advice.value) == ("not learning", "scale_lr", 10.0)
    assert "find_lr" not in advice.reason  # no find_lr command on this branch
    high = records([2.6, 2.5, 2.45], accuracy=[0.1, 0.12, 0.11], lr=0.5)
    assert advise(high, [], CTX)[0].value == 0.1  # α already high for adam: go down
    with_find = Context(n_classes=10, optimizer="adam", commands=frozenset({"find_lr"}))
    assert "find_lr" in advise(stuck, [], with_find)[0].reason
    assert kinds(stuck[:2]) == []  # fewer than K epochs
    assert kinds(stuck, ctx=Context()) == []  # unknown class count: not judged


def test_overfitting_gap_widening_for_k_epochs_stops():
    loss = [0.5, 0.3, 0.2, 0.12, 0.07, 0.04]
    val = [0.55, 0.40, 0.38, 0.40, 0.43, 0.47]  # the gap widens every epoch from epoch 2
    [advice] = advise(records(loss, val), [], CTX)
    assert (advice.kind, advice.cmd, advice.value) == ("overfitting", "stop", None)
    assert "epoch 3" in advice.reason  # where the best validation loss was
    narrowing = [0.55, 0.40, 0.38, 0.40, 0.43, 0.39]  # the last epoch's gap shrinks
    assert "overfitting" not in kinds(records(loss, narrowing))
    under = records([2.6, 2.55, 2.5, 2.45, 2.4, 2.35], [2.2, 2.2, 2.21, 2.22, 2.23, 2.24])  # gap < 0: not overfitting
    assert "overfitting" not in kinds(under)


def test_exploding_gradients_by_a_large_factor():
    epochs = records([1.0, 0.7, 0.5, 0.45], grad_norm=[1.0, 1.2, 1.1, 6.0])  # 5.5x the median before
    [advice] = advise(epochs, [], CTX)
    assert (advice.kind, advice.cmd, advice.value) == ("exploding", "scale_lr", 0.1)
    assert kinds(records([1.0, 0.7, 0.5, 0.45], grad_norm=[1.0, 1.2, 1.1, 5.0])) == []  # 4.5x


def test_rules_are_ordered_most_urgent_first_and_ignore_missing_values():
    assert list(advisor.RULES) == ["exploding", "not learning", "bouncing", "overfitting", "plateau"]
    epochs = records([1.0, 0.6, 0.5, 0.56, 0.45, 0.52], grad_norm=[1, 1, 1, 1, 1, 9.0])
    assert kinds(epochs) == ["exploding", "bouncing"]
    broken = records([1.0, 0.6, 0.5, 0.56, 0.45, float("nan")], grad_norm=[1, 1, 1, 1, 1, None])
    assert kinds(broken) == []


@pytest.mark.parametrize("rule", list(advisor.RULES.values()))
def test_every_rule_says_nothing_on_no_records(rule):
    assert rule([], [], CTX) is None
    assert math.isfinite(advisor.EXPLODE_FACTOR)


def test_a_converged_run_wobbling_at_98_percent_gets_no_advice():
    """The issue's healthy Adam run: training loss near zero, validation loss wobbling around 0.075."""
    train = [2.0, 0.5, 0.2, 0.1] + [0.012, 0.009, 0.013, 0.008, 0.014, 0.007, 0.012, 0.006, 0.011, 0.009]
    val = [2.1, 0.6, 0.3, 0.15] + [0.078, 0.072, 0.081, 0.07, 0.079, 0.071, 0.08, 0.073, 0.082, 0.074]
    run = records(train, val, accuracy=[0.99] * 14, val_accuracy=[0.978] * 14)
    spread = batches([0.3, 0.2, 0.1, 0.05] + [0.004, 0.002, 0.006, 0.002, 0.007, 0.002, 0.006, 0.002, 0.006, 0.003])
    for end in range(3, len(run) + 1):  # at every epoch's end, as the trainer asks
        assert kinds(run[:end], [b for b in spread if b["epoch"] <= end]) == [], end
    assert advisor.converged(run, CTX) and not advisor.converged(records([0.5, 0.4]), CTX)
    # the same wobble on a loss far from converged is still bouncing, and a flat one a plateau
    assert kinds(records([1.0, 0.6, 0.5, 0.56, 0.45, 0.52])) == ["bouncing"]
    assert "plateau" in kinds(records([0.6] * 4 + [0.59] * 4, [0.7] * 8))
    assert advisor.converged(run, Context(n_classes=None)) is False  # C unknown: judged as before
