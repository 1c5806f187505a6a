"""How many runs a client may make the server open: bounded per session and for the whole server.

A run no tab has open costs a full read of its files (0.5–0.7 s for a long run), and ``?run=``
lets any viewer name any of hundreds of runs, so one hostile client cycling through them kept the
server's core busy. Each open of an uncached run is paid from two token buckets: the session's
(a few at once, then one every :attr:`OpenBudget.session_every` seconds) and the server's (shared
by every viewer). The presenter pays nothing: the presenter's opens are the lecture. A request the
buckets cannot pay is refused with :class:`Refused`, whose text the page shows; opening a run some
tab already has open is free.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field


class Refused(Exception):
    """An open the budget cannot pay now; its text is what the page shows."""


@dataclass
class _Bucket:
    tokens: float
    at: float

    def take(self, now: float, burst: float, every: float) -> bool:
        self.tokens = min(burst, self.tokens + (now - self.at) / every)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass
class OpenBudget:
    """Token buckets for opens of uncached runs: per client (session) and overall."""

    session_burst: int = 3
    session_every: float = 10.0  # seconds per further open, per session
    overall_burst: int = 8
    overall_every: float = 2.0  # seconds per further open, for all viewers together
    clients: int = 4096  # sessions remembered (least recently seen forgotten: they start again at the burst)
    clock: object = time.monotonic
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _sessions: OrderedDict = field(default_factory=OrderedDict, repr=False)
    _overall: _Bucket | None = field(default=None, repr=False)

    def take(self, client: str) -> None:
        """Pay one open for ``client``, or raise :class:`Refused` (and charge nothing)."""
        now = self.clock()
        with self._lock:
            if self._overall is None:
                self._overall = _Bucket(self.overall_burst, now)
            mine = self._sessions.pop(client, None) or _Bucket(self.session_burst, now)
            self._sessions[client] = mine
            while len(self._sessions) > self.clients:
                self._sessions.popitem(last=False)
            spare = _Bucket(mine.tokens, mine.at)
            if not mine.take(now, self.session_burst, self.session_every):
                raise Refused(f"You opened several runs in a short time: this one opens in about "
                              f"{self.session_every:.0f} s (reload then), or pick one that others are watching.")
            if not self._overall.take(now, self.overall_burst, self.overall_every):
                self._sessions[client] = spare  # not charged: the server, not this session, was out
                raise Refused("The server is busy opening runs for other viewers: try again in a few seconds.")


def client_id() -> str | None:
    """This script run's session id (None outside a Streamlit session)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else None


def open_for(store, path, trusted: bool):
    """``store.run(path)`` for this session, or None after showing why it was refused."""
    import streamlit as st

    try:
        return store.run(path, client=None if trusted else client_id())
    except Refused as e:
        st.info(str(e), icon=":material/hourglass_top:")
        return None
