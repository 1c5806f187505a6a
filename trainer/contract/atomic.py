"""Crash-safe JSON files: whole-line appends, atomic snapshot replaces, and reads that never block.

Nothing here knows a run directory: :mod:`trainer.contract.rundir` (the contract) and a sweep's folder
use the same primitives. An append is one ``write`` of whole lines, then ``fsync``, so a crash
cannot tear an acknowledged record; a snapshot is written to a temporary file and
``os.replace``-d, so a reader sees the old or the new file, never half of one. A reader opens a
file through :func:`open_regular`, so a FIFO or device in a file's place is refused, not read.

>>> import tempfile, os
>>> folder = tempfile.mkdtemp()
>>> atomic_write_json(os.path.join(folder, "s.json"), {"a": 1}); read_json(os.path.join(folder, "s.json"))
{'a': 1}
>>> read_snapshot(os.path.join(folder, "missing.json"))
Snapshot(record=None, notice=None)
"""

from __future__ import annotations

import errno
import json
import os
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from trainer.contract.jsonsafe import clean


def fsync_dir(path: Path) -> None:
    """Make a folder's entries (a rename, a new file) durable; best effort where a folder cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy and TensorFlow scalars
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(record: dict) -> str:
    """One JSON line. Non-finite floats, at any depth, become ``null`` so every line is strict JSON."""
    return json.dumps(clean(record), default=_json_default, separators=(",", ":"), allow_nan=False)


def atomic_write_json(path: Path | str, obj: dict) -> None:
    """Replace ``path`` with ``obj`` so that readers see the old or the new file, never a mix."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(obj, default=_json_default, indent=2, sort_keys=True))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def append_jsonl(path: Path | str, *records: dict, sync: bool = True) -> None:
    """Append whole lines in one write; ``fsync`` so a crash cannot lose an acknowledged record."""
    if not records:
        return
    data = "".join(dumps(r) + "\n" for r in records).encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


class NotRegularFile(OSError):
    """A run-directory path that is a FIFO, socket, device or folder where a file belongs."""


def open_regular(path: Path | str):
    """Open ``path`` for reading in binary mode, refusing anything but a regular file.

    The file is opened non-blocking (so a FIFO or a device cannot stall ``open``), then
    ``fstat``-ed: a FIFO, socket, device or folder raises :class:`NotRegularFile` (an ``OSError``)
    and is never read. Every reader of a run-directory file opens it through here. A missing file
    raises ``FileNotFoundError`` as ``open`` would.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        if e.errno == errno.ENXIO:  # a Unix socket
            raise NotRegularFile(f"{Path(path).name} is not a regular file") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegularFile(f"{Path(path).name} is not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


#: A snapshot file (``config.json``, ``status.json``, ``meta.json``) over this size is not read: the
#: trainer writes a few kilobytes, so a bigger one is foreign and must not cost a reader its memory.
MAX_SNAPSHOT_BYTES = 4 * 1024 * 1024


def read_json(path: Path | str) -> dict | None:
    """A snapshot file's JSON object, or ``None`` when it does not exist (yet).

    Anything else raises: ``OSError`` when it cannot be opened (:class:`NotRegularFile` for a
    FIFO, socket, device or folder, which is never read), ``ValueError`` when it is over
    :data:`MAX_SNAPSHOT_BYTES`, not UTF-8, not JSON, too deep, or JSON but not an object.
    :func:`read_snapshot` turns those into a notice.
    """
    try:
        f = open_regular(path)
    except FileNotFoundError:
        return None
    with f:
        data = f.read(MAX_SNAPSHOT_BYTES + 1)
    name = Path(path).name
    if len(data) > MAX_SNAPSHOT_BYTES:
        raise ValueError(f"{name} is over {MAX_SNAPSHOT_BYTES // 2**20} MiB")
    try:
        value = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"{name} is not UTF-8 text") from None
    except (ValueError, RecursionError):
        raise ValueError(f"{name} is not valid JSON") from None
    if not isinstance(value, dict):
        raise ValueError(f"{name} holds a JSON {_json_type(value)}, not an object")
    return value


def _json_type(value: Any) -> str:
    return {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


@dataclass(frozen=True)
class Snapshot:
    """A snapshot file as a reader sees it: its typed record, and a one-line notice when it is unusable."""

    record: Any = None  # the typed record; None when the file is missing or unusable
    notice: str | None = None  # why a file that is there gave no record (for the page, one line)


def read_snapshot(path: Path | str, typed: Callable[[dict], Any] = lambda d: d) -> Snapshot:
    """``typed(read_json(path))`` or the reason it failed, never an exception and never blocking."""
    try:
        raw = read_json(path)
        return Snapshot(None if raw is None else typed(raw))
    except NotRegularFile:
        return Snapshot(None, f"{Path(path).name} is not a regular file")
    except (OSError, ValueError) as e:
        if isinstance(e, OSError):
            return Snapshot(None, f"{Path(path).name} cannot be read ({e.strerror or type(e).__name__})")
        return Snapshot(None, str(e))
