"""The dashboard's data layer: each run's incremental reader and the store of all runs.

:mod:`app.data.rundata` holds one run in memory, grown from appended bytes (:class:`RunData`, the
:class:`RunView` snapshots pages render), its columns in :mod:`app.data.history`; :mod:`app.data.runstore` holds every run of a run directory
for the whole server (:class:`RunStore`). This module keeps the one import path the pages use.
"""

from app.data.history import BATCH_COLUMNS, EPOCH_COLUMNS, SMOOTHING, Columns, _number  # noqa: F401
from app.data.rundata import POLL_SECONDS, RunData, RunView  # noqa: F401
from app.data.runstore import RunStore, RunSummary, inside  # noqa: F401
