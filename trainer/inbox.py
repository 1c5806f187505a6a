"""The trainer's inbox: new lines of ``commands.jsonl``, noticed by ``watchdog`` as they land.

The watcher thread only notes when the file changed (and at which step), sets :attr:`ready` and
calls ``on_ready``: the least work possible on another thread, so it cannot lag behind the
training thread. A loop that steps from Python (``PandaCallback``) checks ``ready.is_set()``
between batches, which costs nanoseconds; ``panda train`` runs its steps inside a graph, and its
``on_ready`` sets the ``tf.Variable`` that graph checks between steps. Either way the loop reads
the new lines itself. A line is delivered once, in file order, stamped with when (and at which
step) its change was noticed.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from trainer.commands import valid_id
from trainer.jsonsafe import preview
from trainer.rundir import COMMANDS, JsonlTail, RunDir, now
from trainer.watch import FileWatcher


@dataclass
class Received:
    line: int
    record: dict | None  # None: the line was not a JSON object
    time: float
    step: int

    @property
    def id(self) -> str | None:
        """The line's command id when it is a valid one (:data:`trainer.commands.ID_PATTERN`)."""
        return valid_id(self.record.get("id")) if self.record is not None else None

    @property
    def key(self) -> tuple[int, str | None]:
        """What identifies the line's answer in the journal: its line number and its valid id."""
        return self.line, self.id


class CommandInbox:
    """Queues commands appended by clients; skips the lines answered before (``answered``).

    ``answered`` holds ``(line, command_id)`` pairs (:attr:`Received.key`), as
    :func:`trainer.journal.answered_in` reads them from the journal: a line is answered once,
    whatever it holds, and a new line that repeats an old id is still delivered (to be rejected
    as a duplicate).
    """

    def __init__(self, run: RunDir, current_step: Callable[[], int],
                 answered: set[tuple[int, str | None]] = frozenset(), on_ready: Callable[[], None] = lambda: None):
        self._tail = JsonlTail(run.commands_path)
        self._current_step = current_step
        self._skip = set(answered)
        self._queue: deque[Received] = deque()
        self._lock = threading.Lock()
        self._noticed: tuple[float, int] | None = None
        self.ready = threading.Event()
        self._on_ready = on_ready
        self._watcher = FileWatcher(run.path, [COMMANDS], on_change=self._on_change)

    def start(self) -> "CommandInbox":
        self._watcher.start()
        self.poll()  # commands written before the watcher started
        return self

    def stop(self) -> None:
        self._watcher.stop()

    def _on_change(self) -> None:
        # The loop is told first and the step read after: a loop running steps in a graph stops
        # after the step in progress, so "received at step N" means "applied by step N + 1". (If
        # the loop reads the lines in between, the stamp goes to the next line, whose latency then
        # looks longer, never shorter.)
        self._set_ready()
        with self._lock:
            if self._noticed is None:
                self._noticed = (now(), self._current_step())

    def poll(self) -> None:
        """Read what was appended since the last read. Safe to call from any thread."""
        with self._lock:
            stamp, step = self._noticed or (now(), self._current_step())
            self._noticed = None
            for line, record in self._tail.read_new_lines():
                item = Received(line, record, stamp, step)
                if item.key not in self._skip:
                    self._queue.append(item)
            if self._queue:
                self._set_ready()

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
        self._set_ready()

    def _set_ready(self) -> None:
        self.ready.set()  # first: the loop clears its interrupt, then looks at this flag
        self._on_ready()

    @staticmethod
    def describe(item: Received) -> dict[str, Any]:
        """The fields an answer echoes; ``cmd`` and ``value`` bounded (:func:`~trainer.jsonsafe.preview`)."""
        record = item.record or {}
        return {"command_id": item.id, "cmd": preview(record.get("cmd")), "value": preview(record.get("value")),
                "line": item.line}
