"""Notice appends to run-directory files as they happen, with ``watchdog``.

The trainer uses it to hear commands within a step; clients use it to wait for the trainer's
answer without polling. Watchers wake a :class:`threading.Event`; callers still re-read the file
(:class:`~trainer.contract.rundir.JsonlTail`), so a missed or merged notification costs latency, never data.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> with FileWatcher(folder, ["events.jsonl"]) as watcher:
...     _ = (folder / "events.jsonl").write_text("{}\\n")
...     watcher.wait(timeout=5)
True
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Callable, Iterable

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer


class _Handler(FileSystemEventHandler):
    def __init__(self, names: set[str] | None, on_change: Callable[[], None]):
        self.names = names
        self.on_change = on_change

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        if self.names is None:
            self.on_change()
            return
        for path in (event.src_path, getattr(event, "dest_path", "")):
            if path and os.path.basename(os.fsdecode(path)) in self.names:
                self.on_change()
                return


class FileWatcher:
    """Sets :attr:`changed` (and calls ``on_change``) whenever one of ``names`` in ``folder`` changes.

    ``names=None`` watches every file in the folder; ``recursive=True`` also those in subfolders,
    including subfolders made later.
    """

    def __init__(self, folder: Path | str, names: Iterable[str] | None, on_change: Callable[[], None] | None = None,
                 recursive: bool = False):
        self.folder = Path(folder)
        self.changed = threading.Event()
        self._callback = on_change
        self._observer = Observer()
        self._observer.daemon = True
        self._observer.schedule(_Handler(None if names is None else set(names), self._notify), str(self.folder), recursive=recursive)

    def _notify(self) -> None:
        self.changed.set()
        if self._callback is not None:
            self._callback()

    def start(self) -> "FileWatcher":
        self._observer.start()
        return self

    def stop(self) -> None:
        self._observer.stop()
        if self._observer.is_alive() and threading.current_thread() is not self._observer:
            self._observer.join(timeout=5)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a change (or ``timeout``); clears the flag so the next wait waits again."""
        fired = self.changed.wait(timeout)
        self.changed.clear()
        return fired

    def __enter__(self) -> "FileWatcher":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
