"""Whether a run is learning at all: a running run can sit at chance and look busy.

A softmax classifier that has learned nothing predicts about 1/C for each of C classes: its
cross-entropy is ln C and its accuracy is chance (1/C). A run stuck there (a learning rate far too
small or too large, dead units, labels that do not match the inputs) trains on without a word,
so the page says so.
"""

from __future__ import annotations

import math
from typing import Sequence

#: Epochs in a row the run must sit at chance before the page says so.
STUCK_EPOCHS = 5
#: A loss counts as "at ln C" within this fraction of ln C (2.303 ± 0.115 for 10 classes).
LOSS_TOLERANCE = 0.05
#: An accuracy counts as "chance" up to 1/C plus this many points (10 % + 5 points for 10 classes).
ACCURACY_MARGIN = 0.05


def not_learning(loss: Sequence[float], accuracy: Sequence[float], n_classes: int | None, *,
                 epochs: int = STUCK_EPOCHS, loss_tolerance: float = LOSS_TOLERANCE,
                 accuracy_margin: float = ACCURACY_MARGIN) -> str | None:
    """Why the run looks stuck, in words, or ``None``.

    Stuck: each of the last ``epochs`` epochs has a training loss within ``loss_tolerance`` × ln C
    of ln C and a training accuracy at most 1/C + ``accuracy_margin``. Fewer epochs, an unknown
    or single class count, or a missing value: not judged (``None``).

    >>> not_learning([2.30] * 5, [0.1] * 5, 10)
    'not learning: the loss has stayed at ln(10) = 2.30 and the accuracy at chance (10%) for 5 epochs'
    >>> not_learning([2.30] * 4 + [1.9], [0.1] * 4 + [0.3], 10) is None
    True
    """
    if not isinstance(n_classes, int) or n_classes < 2 or len(loss) < epochs or len(accuracy) < epochs:
        return None
    level, chance = math.log(n_classes), 1.0 / n_classes
    recent = list(zip(loss[-epochs:], accuracy[-epochs:]))
    for l, a in recent:
        if not (isinstance(l, (int, float)) and isinstance(a, (int, float)) and math.isfinite(l) and math.isfinite(a)):
            return None
        if abs(l - level) > loss_tolerance * level or a > chance + accuracy_margin:
            return None
    return (f"not learning: the loss has stayed at ln({n_classes}) = {level:.2f} and the accuracy at chance "
            f"({chance:.0%}) for {epochs} epochs")
