"""The run-directory contract: the files a trainer writes and its clients read, with no TensorFlow.

Everything both sides of a run directory agree on lives here, once: the file names, layout and
crash-safe writes (:mod:`~trainer.contract.rundir`, :mod:`~trainer.contract.atomic`), the typed
records read from them (:mod:`~trainer.contract.records`), the command vocabulary and its table
(:mod:`~trainer.contract.commands`), the hyperparameter and option tables
(:mod:`~trainer.contract.hparams`, :mod:`~trainer.contract.options`), what a run is asked to do and
how a trainer is launched (:mod:`~trainer.contract.config`, :mod:`~trainer.contract.launching`),
one writer per run (:mod:`~trainer.contract.runlock`), and reading the logs whatever they hold
(:mod:`~trainer.contract.jsonl`, :mod:`~trainer.contract.jsonsafe`, :mod:`~trainer.contract.watch`,
:mod:`~trainer.contract.inbox`, :mod:`~trainer.contract.journal`, :mod:`~trainer.contract.outcome`).
import-linter (``pyproject.toml``) keeps TensorFlow, Keras, Streamlit and Optuna out of it.
"""

from trainer.contract.records import Answer, BatchRecord, EpochRecord, Status
from trainer.contract.rundir import RunDir, RunDirError

__all__ = ["Answer", "BatchRecord", "EpochRecord", "RunDir", "RunDirError", "Status"]
