"""Caviar mode: random search over hyperparameters, many trainers side by side, coarse to fine.

The panda way babysits one run; the caviar way trains many and keeps the best. Both use the same
trainer and the same run directories: a sweep is a folder of ordinary runs plus two files of its
own (``sweep.json`` and ``trials.jsonl``, see :mod:`trainer.search.sweepdir`).

Modules, one idea each:

* :mod:`~trainer.search.params` — the parameter scales (log, log1m, int, float, choice) and the
  Optuna distribution each maps onto.
* :mod:`~trainer.search.space` — parsing a space from TOML / JSON / the command line, with the
  checks that catch bad input early; re-exports the scales.
* :mod:`~trainer.search.samplers` — Optuna's samplers: random (the default), a grid, TPE.
* :mod:`~trainer.search.stopping` — Optuna's pruners: median rule, successive halving, Hyperband.
* :mod:`~trainer.search.refine` — coarse to fine: narrow every range around the best trials.
* :mod:`~trainer.search.study` — the sweep's Optuna study, a journal file in the sweep folder.
* :mod:`~trainer.search.settings` — ``panda sweep``'s options and the trials' plans.
* :mod:`~trainer.search.backends` — where trials run: local processes, or Ray tasks.
* :mod:`~trainer.search.runner` — ask, train, report, tell: rounds, pruning, resume.
* :mod:`~trainer.search.progress` — the progress line and the final summary.
* :mod:`~trainer.search.sweepdir` — the sweep folder's files, for writers and readers.
* :mod:`~trainer.search.cli` — ``panda sweep``.

Nothing here imports TensorFlow: trials are separate ``python -m trainer train`` processes.
"""
