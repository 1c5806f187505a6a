"""The dashboard's data layer: each run's incremental reader and the store of all runs.

:mod:`app.rundata` holds one run in memory, grown from appended bytes (:class:`RunData`, the
:class:`RunView` snapshots pages render); :mod:`app.runstore` holds every run of a run directory
for the whole server (:class:`RunStore`). This module keeps the one import path the pages use.
"""

from app.rundata import (  # noqa: F401
    BATCH_COLUMNS,
    EPOCH_COLUMNS,
    POLL_SECONDS,
    SMOOTHING,
    Columns,
    RunData,
    RunView,
    _number,
)
from app.runstore import RunStore, RunSummary, inside  # noqa: F401
