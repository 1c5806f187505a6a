"""The trainer's inbox: new lines of ``commands.jsonl``, noticed by ``watchdog`` as they land.

The watcher thread only notes when the file changed (and at which step) and sets :attr:`ready`:
the least work possible on another thread, so it cannot lag behind the training thread. The
training loop checks ``ready.is_set()`` before each step, which costs nanoseconds, and reads the
new lines itself. A line is delivered once, in file order, stamped with when (and at which
step) its change was noticed.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from trainer.rundir import COMMANDS, JsonlTail, RunDir, now
from trainer.watch import FileWatcher


@dataclass
class Received:
    line: int
    record: dict | None  # None: the line was not a JSON object
    time: float
    step: int


class CommandInbox:
    """Queues commands appended by clients; skips ids (and malformed lines) answered before."""

    def __init__(self, run: RunDir, current_step: Callable[[], int],
                 answered_ids: set[str] = frozenset(), answered_lines: set[int] = frozenset()):
        self._tail = JsonlTail(run.commands_path)
        self._current_step = current_step
        self._skip_ids = set(answered_ids)
        self._skip_lines = set(answered_lines)
        self._queue: deque[Received] = deque()
        self._lock = threading.Lock()
        self._noticed: tuple[float, int] | None = None
        self.ready = threading.Event()
        self._watcher = FileWatcher(run.path, [COMMANDS], on_change=self._on_change)

    def start(self) -> "CommandInbox":
        self._watcher.start()
        self.poll()  # commands written before the watcher started
        return self

    def stop(self) -> None:
        self._watcher.stop()

    def _on_change(self) -> None:
        with self._lock:
            if self._noticed is None:
                self._noticed = (now(), self._current_step())
        self.ready.set()

    def poll(self) -> None:
        """Read what was appended since the last read. Safe to call from any thread."""
        with self._lock:
            stamp, step = self._noticed or (now(), self._current_step())
            self._noticed = None
            for line, record in self._tail.read_new_lines():
                if line in self._skip_lines:
                    continue
                if record is not None and record.get("id") in self._skip_ids:
                    continue
                self._queue.append(Received(line, record, stamp, step))
            if self._queue:
                self.ready.set()

    def drain(self) -> list[Received]:
        """Every command received so far, oldest first.

        The flag is cleared *before* the file is read: a line that lands after the read sets it
        again, so no command waits for the next heartbeat (a lost wake-up).
        """
        self.ready.clear()
        self.poll()
        with self._lock:
            items = list(self._queue)
            self._queue.clear()
        return items

    def wait(self, timeout: float) -> bool:
        """Block until a command arrives or ``timeout`` passes, using no CPU meanwhile."""
        return self.ready.wait(timeout)

    def wake(self) -> None:
        """Make the loop look at its inbox (used by signal handlers)."""
        self.ready.set()

    @staticmethod
    def describe(item: Received) -> dict[str, Any]:
        record = item.record or {}
        return {"command_id": record.get("id") if isinstance(record.get("id"), str) else None,
                "cmd": record.get("cmd"), "value": record.get("value"), "line": item.line}
