"""The run directory: the one contract between a trainer and its clients.

A run directory holds everything about one training run. The trainer writes it; clients (the
``panda`` CLI, the dashboard, a sweep) read it and append commands to it. Nothing else passes
between them, so this module is the whole interface, and docs/run-directory.md describes it for
readers in other languages.

Files (schema version :data:`SCHEMA_VERSION`)::

    config.json       snapshot, written once at creation (atomic replace)
    status.json       snapshot, replaced atomically on every change and heartbeat
    metrics.jsonl     append-only, one record per epoch
    batches.jsonl     append-only, sampled mini-batch losses
    commands.jsonl    append-only, written by clients, one command per line
    events.jsonl      append-only, the trainer's journal (and its answers to commands)
    checkpoints/      one folder per checkpoint, renamed into place when complete
    .lock             the trainer's exclusive lock while it lives (trainer.runlock); clients never touch it

Crash safety: appends are single ``write`` calls of whole lines followed by ``fsync``; readers
(:class:`JsonlTail`) only consume up to the last newline, so a torn last line is never parsed as a
record. Snapshots are written to a temporary file and ``os.replace``-d, so a reader sees the old or
the new file, never half of one.

Example::

    run = RunDir("runs/demo")
    command_id = run.send_command("set_lr", 0.01)
    run.answer_to(command_id)      # -> {"event": "applied", ...} once the trainer applied it
    run.read_status()["state"]     # -> "running"
"""

from __future__ import annotations

import bisect
import json
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from trainer.records import Status

from trainer.jsonsafe import clean, parse_line

SCHEMA_VERSION = 1

CONFIG = "config.json"
STATUS = "status.json"
METRICS = "metrics.jsonl"
BATCHES = "batches.jsonl"
COMMANDS = "commands.jsonl"
EVENTS = "events.jsonl"
INTERNALS = "internals.jsonl"
CHECKPOINTS = "checkpoints"
CHECKPOINT_META = "meta.json"

#: How often a live trainer refreshes ``status.json`` (seconds).
HEARTBEAT_SECONDS = 1.0
#: A heartbeat older than this means the trainer is no longer answering.
STALE_AFTER_SECONDS = 10.0

#: Every state a run can be in (``status.json``'s ``state``).
STATES = ("starting", "running", "paused", "stopping", "finished", "failed", "diverged")
#: States in which a trainer process is alive and reads commands.
LIVE_STATES = ("starting", "running", "paused", "stopping", "diverged")


class RunDirError(Exception):
    """A run directory is missing, unreadable or not a Panda run."""


class CheckpointError(Exception):
    """A checkpoint that does not exist or cannot be restored."""


# --------------------------------------------------------------------------- low-level writes


def _fsync_dir(path: Path) -> None:
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


def read_json(path: Path | str) -> dict | None:
    """A snapshot file, or ``None`` when it does not exist (yet)."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def repair_jsonl_tail(path: Path | str) -> int:
    """Cut a torn last line (one without its newline) left by a crash. Returns bytes removed.

    Only the single writer of a file may call this, before it appends again.
    """
    path = Path(path)
    if not path.exists():
        return 0
    with open(path, "rb+") as f:
        data = f.read()
        keep = data.rfind(b"\n") + 1
        if keep == len(data):
            return 0
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
        return len(data) - keep


# --------------------------------------------------------------------------- incremental reading


@dataclass
class JsonlTail:
    """Reads an append-only JSONL file incrementally: each call returns only the new records.

    A torn last line (a writer mid-append, or a crash) stays unread until its newline arrives.
    A line that is not a JSON object is skipped and counted in :attr:`malformed`; nothing in a
    line can make the reader raise. When a torn line was glued to the next writer's line, the
    complete object that ends it is still read (:func:`trainer.jsonsafe.parse_line`), under the
    same line number as the malformed prefix. A file that shrank or was replaced is read again
    from the start.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.jsonl"
    >>> tail = JsonlTail(p)
    >>> append_jsonl(p, {"epoch": 1})
    >>> tail.read_new()
    [{'epoch': 1}]
    >>> tail.read_new()
    []
    """

    path: Path
    offset: int = 0
    malformed: int = 0
    lines_read: int = 0
    #: How often the file was found replaced or cut and read again from the start.
    restarts: int = 0
    _inode: int | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    def read_new(self) -> list[dict]:
        return [record for _, record in self.read_new_lines() if record is not None]

    def read_new_lines(self) -> list[tuple[int, dict | None]]:
        """New ``(line_number, record)`` pairs; ``record`` is ``None`` for a malformed line."""
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                if st.st_ino != self._inode or st.st_size < self.offset:
                    self.restarts += self._inode is not None
                    self._inode, self.offset, self.lines_read = st.st_ino, 0, 0
                if st.st_size == self.offset:
                    return []
                f.seek(self.offset)
                chunk = f.read(st.st_size - self.offset)
        except FileNotFoundError:
            return []
        end = chunk.rfind(b"\n") + 1
        if end == 0:
            return []
        self.offset += end
        out: list[tuple[int, dict | None]] = []
        for raw in chunk[:end].splitlines():
            self.lines_read += 1
            if not raw.strip():
                continue
            for record in parse_line(raw):
                self.malformed += record is None
                out.append((self.lines_read, record))
        return out


def read_jsonl(path: Path | str) -> list[dict]:
    """Every well-formed record of a JSONL file (a torn last line is ignored)."""
    return JsonlTail(Path(path)).read_new()


def current_line(metrics: list[dict]) -> list[dict]:
    """The epochs of the run's current history, after rewinds and rollbacks.

    ``metrics.jsonl`` keeps every epoch ever trained. After a rewind to epoch k, the next record
    has epoch k+1 again (and a higher ``branch``); it replaces the old epochs k+1 onward.

    >>> [r["epoch"] for r in current_line([{"epoch": 1}, {"epoch": 2}, {"epoch": 3}, {"epoch": 2}])]
    [1, 2]
    """
    line: list[dict] = []
    epochs: list[int] = []
    for record in metrics:
        epoch = record.get("epoch")
        if not isinstance(epoch, int) or isinstance(epoch, bool):
            continue
        kept = kept_before(epochs, epoch)
        del line[kept:], epochs[kept:]
        line.append(record)
        epochs.append(epoch)
    return line


def kept_for_good(meta: dict, keep_every: int) -> bool:
    """Whether checkpoint ``meta`` outlives the pruning of rolling ones (the rule of ``CheckpointStore.prune``).

    Only end-of-epoch checkpoints are pruned: every ``keep_every``-th epoch's stays, the others only
    while they are among the newest few. A page offers the kept ones while the run trains.

    >>> kept_for_good({"reason": "epoch", "epoch": 10}, 5), kept_for_good({"reason": "epoch", "epoch": 12}, 5)
    (True, False)
    >>> kept_for_good({"reason": "command", "epoch": 12}, 5)
    True
    """
    epoch = meta.get("epoch")
    return meta.get("reason") != "epoch" or (isinstance(epoch, int) and epoch % max(int(keep_every), 1) == 0)


def kept_before(keys: Sequence[float], key: float) -> int:
    """The rewind rule: a record replaces every earlier record of the same or a later key.

    ``keys`` is the current history's (increasing) epochs or steps; the result is how many of
    them a new record with ``key`` keeps. The dashboard's incremental columns cut with it too.

    >>> kept_before([1, 2, 3, 4], 3), kept_before([1, 2], 3)
    (2, 2)
    """
    return bisect.bisect_left(keys, key)


# --------------------------------------------------------------------------- the run directory


def new_command_id() -> str:
    return f"c-{uuid.uuid4().hex[:12]}"


def now() -> float:
    return time.time()


def pid_alive(pid: Any, host: Any = None) -> bool:
    """Whether process ``pid`` runs on this host (``False`` when it cannot be known)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    if host is not None and host != socket.gethostname():
        return True  # another machine: only the heartbeat can tell
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunDir:
    """Paths and typed access to one run directory.

    Creating a :class:`RunDir` touches nothing on disk; :meth:`create` makes a new run and
    refuses to reuse an existing one.
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def name(self) -> str:
        return self.path.name

    # paths
    config_path = property(lambda self: self.path / CONFIG)
    status_path = property(lambda self: self.path / STATUS)
    metrics_path = property(lambda self: self.path / METRICS)
    batches_path = property(lambda self: self.path / BATCHES)
    commands_path = property(lambda self: self.path / COMMANDS)
    events_path = property(lambda self: self.path / EVENTS)
    internals_path = property(lambda self: self.path / INTERNALS)
    checkpoints_path = property(lambda self: self.path / CHECKPOINTS)

    def create(self) -> "RunDir":
        """Make a fresh run directory; an existing path is never reused or overwritten."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.path.mkdir()
        except FileExistsError:
            raise RunDirError(f"{self.path} already exists; choose another --name") from None
        self.checkpoints_path.mkdir()
        for name in (METRICS, BATCHES, COMMANDS, EVENTS):
            (self.path / name).touch()
        _fsync_dir(self.path.parent)
        return self

    def exists(self) -> bool:
        return self.config_path.exists()

    def require(self) -> "RunDir":
        if not self.path.is_dir():
            raise RunDirError(f"no run directory at {self.path}")
        if not self.exists():
            raise RunDirError(f"{self.path} is not a Panda run (no {CONFIG})")
        return self

    # snapshots
    def read_config(self) -> dict:
        config = read_json(self.config_path)
        if config is None:
            raise RunDirError(f"{self.path} is not a Panda run (no {CONFIG})")
        version = config.get("schema_version")
        if version != SCHEMA_VERSION:
            raise RunDirError(
                f"{self.path} uses run-directory schema {version}; this Panda reads {SCHEMA_VERSION}"
            )
        return config

    def write_config(self, config: dict) -> None:
        atomic_write_json(self.config_path, {"schema_version": SCHEMA_VERSION, **config})

    def read_status(self) -> dict | None:
        """``status.json`` as written (raw JSON); :meth:`status` is the typed, checked view."""
        try:
            return read_json(self.status_path)
        except ValueError:  # replaced atomically, so only a foreign writer leaves it unparseable
            return None

    def status(self) -> "Status | None":
        """``status.json`` as a :class:`~trainer.records.Status`, or ``None`` before the first one."""
        raw = self.read_status()
        return None if raw is None else Status.from_json(raw)

    def write_status(self, status: "Status | dict") -> None:
        """Replace ``status.json`` (a dict is read as a :class:`~trainer.records.Status` first)."""
        status = Status.from_json(status) if isinstance(status, dict) else status
        atomic_write_json(self.status_path, {"schema_version": SCHEMA_VERSION, **status.to_json()})

    # logs
    def read_metrics(self) -> list[dict]:
        return read_jsonl(self.metrics_path)

    def read_events(self) -> list[dict]:
        return read_jsonl(self.events_path)

    def read_internals(self) -> list[dict]:
        """``internals.jsonl`` (see trainer/internals.py); empty for a run that has none."""
        return read_jsonl(self.internals_path)

    def read_commands(self) -> list[dict]:
        return read_jsonl(self.commands_path)

    def append_event(self, event: str, **fields: Any) -> dict:
        record = {"time": now(), "event": event, **fields}
        append_jsonl(self.events_path, record)
        return record

    def send_command(self, cmd: str, value: Any = None, *, source: str = "api", command_id: str | None = None) -> str:
        """Append a command for the trainer; returns its id. The answer arrives in events.jsonl."""
        command_id = command_id or new_command_id()
        record = {"id": command_id, "cmd": cmd, "time": now(), "source": source}
        if value is not None:
            record["value"] = value
        append_jsonl(self.commands_path, record)
        return command_id

    def answer_to(self, command_id: str) -> dict | None:
        """The trainer's ``applied`` or ``rejected`` event for a command, if it answered yet."""
        for event in self.read_events():
            if event.get("command_id") == command_id and event.get("event") in ("applied", "rejected"):
                return event
        return None

    # checkpoints
    def list_checkpoints(self) -> list[dict]:
        """Complete checkpoints, oldest first, each its ``meta.json`` plus ``name`` and ``path``."""
        out = []
        if not self.checkpoints_path.is_dir():
            return out
        for child in self.checkpoints_path.iterdir():
            if child.name.startswith("."):
                continue  # a checkpoint still being written
            meta = read_json(child / CHECKPOINT_META)
            if meta is None:
                continue
            out.append({**meta, "name": child.name, "path": str(child)})
        out.sort(key=lambda m: m.get("seq", 0))
        return out

    # liveness
    def liveness(self, status: "Status | dict | None" = None, at: float | None = None) -> str:
        """``state`` from status.json, or ``"not answering"`` when a live state has gone stale."""
        status = self.status() if status is None else status
        if isinstance(status, dict):
            status = Status.from_json(status) if status else None
        if status is None:
            return "starting" if self.exists() else "missing"
        if status.state not in LIVE_STATES:
            return status.state
        age = (at or now()) - status.heartbeat
        if age > STALE_AFTER_SECONDS or not pid_alive(status.pid, status.host):
            return "not answering"
        return status.state


def iter_runs(root: Path | str) -> Iterator[RunDir]:
    """Every run directly under ``root`` or one level deeper (a sweep's trials), sorted by path."""
    root = Path(root)
    if not root.is_dir():
        return
    found = []
    for config in list(root.glob(f"*/{CONFIG}")) + list(root.glob(f"*/*/{CONFIG}")):
        found.append(RunDir(config.parent))
    yield from sorted(found, key=lambda r: str(r.path))
