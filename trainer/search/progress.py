"""The sweep's progress on the terminal: one updating line, and the best trials at the end."""

from __future__ import annotations

import shutil
import sys
from typing import IO, Any

from trainer.search.refine import top_trials

__all__ = ["Progress", "summarize"]



class Progress:
    """One updating line on a terminal (``\\r``), plain lines when the output is a file or pipe."""

    def __init__(self, stream: IO[str] | None = None, tty: bool | None = None, enabled: bool = True):
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self.enabled = enabled
        self._last = ""
        self._drawn = 0

    def update(self, line: str) -> None:
        if not self.enabled or line == self._last:
            return
        self._last = line
        if self.tty:
            width = max(20, shutil.get_terminal_size((100, 20)).columns - 1)
            line = line[:width]
            self.stream.write("\r" + line + " " * max(0, self._drawn - len(line)))
            self._drawn = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        """A line of its own (a trial failed, a round began), above the progress line."""
        if not self.enabled:
            return
        if self.tty and self._drawn:
            self.stream.write("\r" + " " * self._drawn + "\r" + text + "\n" + self._last[: self._drawn])
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
        self._drawn = 0


def summarize(results: dict[str, dict[str, Any]], top: int = 5) -> list[str]:
    """The sweep's outcome as text lines: the best trials and their hyperparameters."""
    lines = []
    for t in top_trials(results.values(), top):
        params = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in (t.get("params") or {}).items())
        lines.append(f"  {t['trial']}  val_accuracy {t['best_val_accuracy']:.4f} (epoch {t.get('best_epoch')})  {t.get('state')}  {params}")
    return lines
