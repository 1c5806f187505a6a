"""``PandaCallback(..., show=True)``: the live page above ``fit``'s output, in a notebook.

A subclass of :class:`trainer.keras_callback.callback.PandaCallback`, here in the app: the trainer never
depends on the app, so the page is not a keyword of the trainer's own callback.
"""

from __future__ import annotations

from trainer.keras_callback.callback import PandaCallback as TrainerCallback
from app.notebook.display import DEFAULT_HEIGHT, in_notebook, show as show_page


class PandaCallback(TrainerCallback):
    """The trainer's callback; with ``show=True`` it shows the run's page when ``fit`` begins in a
    notebook's kernel (elsewhere it does nothing more than the trainer's)."""

    def __init__(self, run_path, *, show: bool = False, height: int = DEFAULT_HEIGHT, **options):
        super().__init__(run_path, **options)
        self.show = show
        self.height = height
        self._shown = False

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)  # the run exists from here on
        if self.show and not self._shown and in_notebook():
            show_page(self.rundir.path, height=self.height)
            self._shown = True
