"""The trainer's inbox: new lines of ``commands.jsonl``, noticed by ``watchdog`` as they land.

The watcher thread only notes when the file changed (and at which step), sets :attr:`ready` and
calls ``on_ready``: the least work possible on another thread, so it cannot lag behind the
training thread. A loop that steps from Python (``PandaCallback``) checks ``ready.is_set()``
between batches, which costs nanoseconds; ``panda train`` runs its steps inside a graph, and its
``on_ready`` sets the ``tf.Variable`` that graph checks between steps. Either way the loop reads
the new lines itself. A line is delivered once, in file order, stamped with when (and at which
step) its change was noticed.

Client text is read raw (not scrubbed) so that a command holding a lone surrogate is rejected
with its reason (:func:`trainer.contract.commands.validate`); what an answer echoes is scrubbed
(:meth:`CommandInbox.describe`).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from trainer.contract.commands import valid_id
from trainer.contract.jsonsafe import preview
from trainer.contract.rundir import COMMANDS, MAX_LINE_BYTES, JsonlTail, RunDir, now
from trainer.contract.watch import FileWatcher


#: Why a line over the reader's limit is rejected (it was skipped unread, so nothing else is known).
TOO_LONG = f"a line of commands.jsonl over {MAX_LINE_BYTES} bytes (skipped unread)"


@dataclass
class Received:
    line: int
    record: dict | None  # None: the line was not a JSON object
    time: float
    step: int
    problem: str | None = None  # why the line is rejected whatever it holds (:data:`TOO_LONG`)

    @property
    def id(self) -> str | None:
        """The line's command id when it is a valid one (:data:`trainer.contract.commands.ID_PATTERN`)."""
        return line_key(self.line, self.record)[1]

    @property
    def key(self) -> tuple[int, str | None]:
        """What identifies the line's answer in the journal: its line number and its valid id."""
        return line_key(self.line, self.record)


def line_key(line: int, record: dict | None) -> tuple[int, str | None]:
    """A line's number and its valid command id (:data:`trainer.contract.commands.ID_PATTERN`), if any."""
    return line, valid_id(record.get("id")) if record is not None else None


class CommandInbox:
    """Queues commands appended by clients; skips the lines answered before (``answered``).

    ``answered`` holds ``(line, command_id)`` pairs (:attr:`Received.key`), as
    :func:`trainer.contract.journal.answered_in` reads them from the journal: a line is answered once,
    whatever it holds, and a new line that repeats an old id is still delivered (to be rejected
    as a duplicate). Once ``commands.jsonl`` was replaced (an editor's save: a new inode) or cut,
    it is read again from the start and every line whose key or valid id was delivered before is
    skipped: old lines are never answered again (a repeated id then gets no second answer either).
    """

    def __init__(self, run: RunDir, current_step: Callable[[], int],
                 answered: set[tuple[int, str | None]] = frozenset(), on_ready: Callable[[], None] = lambda: None):
        self._tail = JsonlTail(run.commands_path, scrub_text=False)
        self._current_step = current_step
        self._skip = set(answered)
        self._ids = {command_id for _, command_id in answered if command_id is not None}
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
        # looks longer, never shorter.) Only a change that left bytes unread is stamped: a late
        # event of a line already read (its close after its write) must not stamp the next line.
        self._set_ready()
        with self._lock:
            if self._noticed is None and self._tail.has_unread():
                self._noticed = (now(), self._current_step())

    def poll(self) -> None:
        """Read what was appended since the last read. Safe to call from any thread.

        Lines read without a watcher's notice (the heartbeat's read, or the loop's own) are
        stamped *after* the loop was told, as ``_on_change`` does: a stamp taken before the read
        would count the steps the read took against the command.
        """
        with self._lock:
            noticed, self._noticed = self._noticed, None
            entries = self._tail.read_entries()
            rewritten = self._tail.restarts > 0  # after the read: it may be the read that found the file replaced
            fresh = []
            for line, record, too_long in entries:
                key = line_key(line, record)
                if key in self._skip or (rewritten and key[1] in self._ids):
                    continue
                self._skip.add(key)
                if key[1] is not None:
                    self._ids.add(key[1])
                fresh.append((line, record, TOO_LONG if too_long else None))
            if fresh or self._tail.behind:  # behind: more to read, the loop comes back for it
                self._set_ready()
            if fresh:
                stamp, step = noticed or (now(), self._current_step())
                self._queue.extend(Received(line, record, stamp, step, problem) for line, record, problem in fresh)

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
        """The fields an answer echoes; ``cmd`` and ``value`` bounded (:func:`~trainer.contract.jsonsafe.preview`)."""
        record = item.record or {}
        return {"command_id": item.id, "cmd": preview(record.get("cmd")), "value": preview(record.get("value")),
                "line": item.line}
