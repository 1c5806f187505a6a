"""``PandaCallback``: Panda for any compiled Keras 3 model's ``fit``.

The callback (:mod:`~trainer.keras_callback.callback`) is made of small parts: which run
directory it opens or continues (:mod:`~trainer.keras_callback.opening`), what it does between
batches (:mod:`~trainer.keras_callback.batches`), the learning rate it sees and steers
(:mod:`~trainer.keras_callback.lr`), the learning-rate finder on fit's own batches
(:mod:`~trainer.keras_callback.explore`) and what it makes of fit's logs
(:mod:`~trainer.keras_callback.logs`).
"""

from trainer.keras_callback.callback import PandaCallback

__all__ = ["PandaCallback"]
