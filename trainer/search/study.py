"""The sweep's Optuna study, stored in a journal file inside the sweep folder.

``runs/SWEEP/optuna.journal`` is an Optuna ``JournalStorage`` over a ``JournalFileBackend``: an
append-only log of every trial's parameters, intermediate values and state, written under a
file lock, so a crash loses at most the line being written. It is the sweep's state:
``panda sweep --resume runs/SWEEP`` reopens it and carries on. optuna-dashboard opens it too::

    pip install optuna-dashboard
    optuna-dashboard runs/SWEEP/optuna.journal

Each Optuna trial carries user attributes that tie it to its run directory: ``panda_trial``
(``trial-0007``), ``round``, ``params`` (the configuration as the trainer ran it, e.g. β rather
than the ``1-beta`` Optuna sampled) and, once it ended, ``state`` (Panda's: finished, stopped,
diverged, failed). The objective is the best validation accuracy (maximized).
"""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

__all__ = ["JOURNAL", "TRIAL_ATTR", "ROUND_ATTR", "PARAMS_ATTR", "STATE_ATTR", "journal_storage", "open_study"]

JOURNAL = "optuna.journal"
TRIAL_ATTR, ROUND_ATTR, PARAMS_ATTR, STATE_ATTR = "panda_trial", "round", "params", "state"


def journal_storage(sweep_path: Path | str) -> JournalStorage:
    """The sweep's Optuna storage (the journal file is made if missing)."""
    return JournalStorage(JournalFileBackend(str(Path(sweep_path) / JOURNAL)))


def open_study(sweep_path: Path | str, name: str, *, create: bool, sampler=None, pruner=None) -> optuna.Study:
    """Create the sweep's study, or load it (``create=False``: ``KeyError`` when there is none)."""
    storage = journal_storage(sweep_path)
    if create:
        return optuna.create_study(study_name=name, storage=storage, direction="maximize", sampler=sampler, pruner=pruner)
    return optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
