"""The dashboard's data layer: each run's incremental reader and the store of all runs.

:mod:`app.rundata` holds one run in memory, grown from appended bytes (:class:`RunData`, the
:class:`RunView` snapshots pages render), its columns in :mod:`app.history`; :mod:`app.runstore` holds every run of a run directory
for the whole server (:class:`RunStore`). This module keeps the one import path the pages use.
"""

from app.history import BATCH_COLUMNS, EPOCH_COLUMNS, SMOOTHING, Columns, _number  # noqa: F401
from app.rundata import POLL_SECONDS, RunData, RunView  # noqa: F401
from app.runstore import RunStore, RunSummary, inside  # noqa: F401
