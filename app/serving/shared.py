"""What one server process shares between all its browser sessions, out of every client's reach.

Streamlit's ``st.cache_resource`` and ``st.cache_data`` are cleared for every session by one
back-message that any client may send (``clear_cache``: the "Clear cache" menu item, or a forged
websocket message). So what must last — the presenter's one-time code and keys (:mod:`app.serving.auth`),
the run store with the launches it remembers, the charts every viewer shares — lives here instead:
made once per process and key, let go only when the process ends (or a test calls
:func:`release_all`). Streamlit re-executes the page scripts, never this module (``panda app``
runs without a file watcher), so its state lasts as long as the server.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable

_lock = threading.RLock()
_groups: dict[str, OrderedDict] = {}
_closers: dict[str, Callable[[Any], None] | None] = {}


def shared(group: str, key, factory: Callable[[], Any], *, limit: int | None = None,
           close: Callable[[Any], None] | None = None):
    """The one value of ``group`` for ``key`` in this process, made by ``factory()`` the first time.

    ``limit`` bounds the group (the least recently used value goes, through ``close``).
    """
    with _lock:
        items = _groups.setdefault(group, OrderedDict())
        _closers[group] = close
        if key in items:
            items.move_to_end(key)
            return items[key]
        value = items[key] = factory()
        while limit is not None and len(items) > limit:
            _, old = items.popitem(last=False)
            if close is not None:
                close(old)
        return value


def release_all() -> None:
    """Forget (and close) everything: what the end of the server process does; for tests."""
    with _lock:
        groups = list(_groups.items())
        _groups.clear()
    for group, items in groups:
        close = _closers.get(group)
        for value in items.values():
            if close is not None:
                close(value)
