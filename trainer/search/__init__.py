"""Caviar mode: random search over hyperparameters, many trainers side by side, coarse to fine.

The panda way babysits one run; the caviar way trains many and keeps the best. Both use the same
trainer and the same run directories: a sweep is a folder of ordinary runs plus two files of its
own (``sweep.json`` and ``trials.jsonl``, see :mod:`trainer.search.sweepdir`).

Modules, one idea each:

* :mod:`~trainer.search.space` — the parameters, their ranges and the scale each is sampled on;
  parsing from TOML / JSON / the command line, with the checks that catch bad input early.
* :mod:`~trainer.search.samplers` — random search (the default) and a grid, both seeded.
* :mod:`~trainer.search.refine` — coarse to fine: narrow every range around the best trials.
* :mod:`~trainer.search.stopping` — early stopping of hopeless trials (median rule, halving).
* :mod:`~trainer.search.sweepdir` — the sweep folder's files, for writers and readers.
* :mod:`~trainer.search.runner` — the pool of trainer processes and the progress display.
* :mod:`~trainer.search.cli` — ``panda sweep``.

Nothing here imports TensorFlow: trials are separate ``python -m trainer train`` processes.
"""
