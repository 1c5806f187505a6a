"""Reading the run directory's append-only logs (``*.jsonl``): incrementally, boundedly, whatever they hold.

Clients, a crash or an editor can leave anything in a log: torn lines, a line of 100 MB, a FIFO
in place of the file, a file replaced by a copy. :class:`JsonlTail` reads each byte once, holds at
most one bounded line, never blocks and never raises; :func:`repair_jsonl_tail` is the writer's
side of a torn tail. Part of the run-directory contract (:mod:`trainer.contract.rundir`, which exports
these names; docs/run-directory.md, *Crash safety*).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from trainer.contract.jsonsafe import parse_line


def repair_jsonl_tail(path: Path | str) -> int:
    """Cut a torn last line (one without its newline) left by a crash. Returns bytes removed.

    Only the single writer of a file may call this, before it appends again. Reads back from the
    end in blocks, so a huge torn line is never held whole.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    except FileNotFoundError:
        return 0
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return 0
        size = end = st.st_size
        while end > 0:
            start = max(0, end - READ_BLOCK)
            newline = os.pread(fd, end - start, start).rfind(b"\n")
            if newline >= 0:
                end = start + newline + 1
                break
            end = start
        if end == size:
            return 0
        os.ftruncate(fd, end)
        os.fsync(fd)
        return size - end
    finally:
        os.close(fd)


def file_key(path: Path | str) -> tuple[int, int, int] | None:
    """``(inode, mtime, size)`` of a file, ``None`` when it cannot be seen: a change of it means the file changed.

    How every reader notices a rewritten ``status.json`` or ``config.json`` without reading it.

    >>> file_key("/no/such/file") is None
    True
    """
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


#: The longest line a reader takes (bytes, newline excluded): a longer one is one malformed line,
#: skipped as it streams past, never held whole (the trainer's own lines stay far below it).
MAX_LINE_BYTES = 4 * 2**20
#: Bytes read per ``read`` call; and at most this much per :meth:`JsonlTail.read_entries` (the rest
#: waits for the next call, :attr:`JsonlTail.behind`), so a reader's one call stays short.
READ_BLOCK = 2**20
MAX_READ_PER_CALL = 64 * 2**20
#: Of a line over the limit, this many last bytes are kept: a client's line glued onto it survives.
RECOVERY_WINDOW = 64 * 2**10


@dataclass
class JsonlTail:
    """Reads an append-only JSONL file incrementally: each call returns only the new records.

    A torn last line (a writer mid-append, or a crash) stays unparsed until its newline arrives;
    its bytes are read once and kept (at most :data:`MAX_LINE_BYTES`). A line that is not a JSON
    object, or is longer than ``max_line``, is skipped and counted in :attr:`malformed`; nothing
    in a line can make the reader raise. When a torn line was glued to the next writer's line, the
    complete object that ends it is still read (:func:`trainer.contract.jsonsafe.parse_line`), under the
    same line number as the malformed prefix. A file that shrank or was replaced is read again
    from the start; anything but a regular file (a FIFO) reads as empty, without blocking.
    Strings are made valid UTF-8 (:func:`trainer.contract.jsonsafe.scrub`) unless ``scrub_text`` is off
    (the trainer's inbox, which rejects such a command instead).

    >>> import tempfile, pathlib
    >>> from trainer.contract.rundir import append_jsonl
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.jsonl"
    >>> tail = JsonlTail(p)
    >>> append_jsonl(p, {"epoch": 1})
    >>> tail.read_new()
    [{'epoch': 1}]
    >>> tail.read_new()
    []
    """

    path: Path
    #: Bytes consumed, through the last whole line.
    offset: int = 0
    malformed: int = 0
    lines_read: int = 0
    #: How often the file was found replaced or cut and read again from the start.
    restarts: int = 0
    #: Lines skipped for being longer than ``max_line`` (counted in :attr:`malformed` too).
    too_long: int = 0
    #: Whether the last call stopped before the end of the file (:data:`MAX_READ_PER_CALL`).
    behind: bool = False
    max_line: int = MAX_LINE_BYTES
    scrub_text: bool = True
    _inode: int | None = field(default=None, repr=False)
    _pos: int = field(default=0, repr=False)  # bytes read (past :attr:`offset`: a torn line's)
    _partial: bytearray = field(default_factory=bytearray, repr=False)
    _skipping: bool = field(default=False, repr=False)  # the torn line is already over max_line

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    def read_new(self) -> list[dict]:
        return [record for _, record in self.read_new_lines() if record is not None]

    def read_new_lines(self) -> list[tuple[int, dict | None]]:
        """New ``(line_number, record)`` pairs; ``record`` is ``None`` for a malformed line."""
        return [(line, record) for line, record, _ in self.read_entries()]

    def has_unread(self) -> bool:
        """Whether the file holds bytes this tail has not read (grown, replaced or cut); one ``stat``."""
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        return stat.S_ISREG(st.st_mode) and (st.st_ino != self._inode or st.st_size != self._pos)

    def read_entries(self) -> list[tuple[int, dict | None, bool]]:
        """New ``(line_number, record, too_long)``: ``too_long`` for a line skipped over ``max_line``."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:  # missing (yet), or unreadable: nothing to read
            return []
        out: list[tuple[int, dict | None, bool]] = []
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return []
            if st.st_ino != self._inode or st.st_size < self._pos:
                self.restarts += self._inode is not None
                self._inode, self.offset, self._pos, self.lines_read = st.st_ino, 0, 0, 0
                self._partial, self._skipping = bytearray(), False
            budget = MAX_READ_PER_CALL
            while self._pos < st.st_size and budget > 0:
                block = os.pread(fd, min(READ_BLOCK, st.st_size - self._pos), self._pos)
                if not block:
                    break
                self._pos += len(block)
                budget -= len(block)
                self._take(block, out)
            self.behind = self._pos < st.st_size
        except OSError:
            pass
        finally:
            os.close(fd)
        return out

    def _take(self, block: bytes, out: list) -> None:
        """Split a block read at the end of what was read before into lines; keep the torn rest.

        Past ``max_line`` only the line's last :data:`RECOVERY_WINDOW` bytes are kept: the object
        a client glued onto an over-long torn line is still recovered from them.
        """
        begin = self._pos - len(block)
        start = 0
        while True:
            newline = block.find(b"\n", start)
            end = len(block) if newline < 0 else newline
            if not self._skipping and len(self._partial) + end - start > self.max_line:
                self._skipping = True
            if newline >= 0 and not self._partial and not self._skipping:
                line, too_long = block[start:end], False  # a whole line in this block: no copy kept
            else:
                self._partial += block[start:end]
                if self._skipping:
                    del self._partial[:-RECOVERY_WINDOW]
                if newline < 0:
                    return
                line, too_long = bytes(self._partial), self._skipping
                self._partial, self._skipping = bytearray(), False
            self.offset = begin + newline + 1
            start = newline + 1
            if too_long:
                self._too_long(line, out)
                continue
            for raw in line.splitlines() or [b""]:  # a lone \r ends a line too
                self.lines_read += 1
                if not raw.strip():
                    continue
                for record in parse_line(raw, scrub_text=self.scrub_text):
                    self.malformed += record is None
                    out.append((self.lines_read, record, False))

    def _too_long(self, window: bytes, out: list) -> None:
        """A line over ``max_line``: one malformed line, and the whole object ending it (``window``) if any."""
        self.lines_read += 1
        self.malformed += 1
        self.too_long += 1
        out.append((self.lines_read, None, True))
        ending = parse_line(window, scrub_text=self.scrub_text)[-1]
        if ending is not None:
            out.append((self.lines_read, ending, False))


def read_jsonl(path: Path | str) -> list[dict]:
    """Every well-formed record of a JSONL file (a torn last line is ignored)."""
    tail = JsonlTail(Path(path))
    records = tail.read_new()
    while tail.behind:
        records += tail.read_new()
    return records
