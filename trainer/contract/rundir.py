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
    .lock             the trainer's exclusive lock while it lives (trainer.contract.runlock); clients never touch it

Crash safety (:mod:`trainer.contract.atomic`): appends are single ``write`` calls of whole lines followed by
``fsync``; readers (:class:`JsonlTail`) only consume up to the last newline, so a torn last line is
never parsed as a record. Snapshots are written to a temporary file and ``os.replace``-d, so a
reader sees the old or the new file, never half of one.

Example::

    run = RunDir("runs/demo")
    command_id = run.send_command("set_lr", 0.01)
    run.answer_to(command_id)      # -> {"event": "applied", ...} once the trainer applied it
    run.read_status()["state"]     # -> "running"

It is the one interface between a trainer and its clients, so :class:`RunDir`'s file names and methods
stay in one place (the generic crash-safe I/O lives in :mod:`~trainer.contract.atomic` and
:mod:`~trainer.contract.jsonl`).
"""

from __future__ import annotations

import bisect
import os
import socket
import stat
import time
import uuid
from pathlib import Path
from typing import Any, Iterator, Sequence

from trainer.contract.records import Status, checkpoint_meta, config_record, string

# The crash-safe writes and non-blocking reads every file of the contract goes through, and the
# logs' readers (their own modules, part of this contract):
from trainer.contract.atomic import (  # noqa: F401
    MAX_SNAPSHOT_BYTES, NotRegularFile, Snapshot, append_jsonl, atomic_write_json, dumps, fsync_dir, open_regular,
    read_json, read_snapshot,
)
from trainer.contract.jsonl import MAX_LINE_BYTES, JsonlTail, read_jsonl, repair_jsonl_tail  # noqa: F401

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

#: States in which a trainer waits for the user's ``resume``: paused, or rolled back after a divergence.
WAITING_STATES = ("paused", "diverged")
#: States in which a trainer process is alive and reads commands (``finished`` and ``failed`` are the others).
LIVE_STATES = ("starting", "running", "stopping", *WAITING_STATES)
#: ``panda train``'s (and ``panda replay``'s) exit status by the state its run ended in; any other: 1.
EXIT_CODES = {"finished": 0, "diverged": 3}
#: The exit status of a trainer whose run ended diverged (a sweep counts the trial diverged).
DIVERGED_EXIT = EXIT_CODES["diverged"]


def exit_code(state: str) -> int:
    """The exit status of a trainer process whose run ended in ``state``.

    >>> exit_code("finished"), exit_code("diverged"), exit_code("failed")
    (0, 3, 1)
    """
    return EXIT_CODES.get(state, 1)


class RunDirError(Exception):
    """A run directory is missing, unreadable or not a Panda run."""


class CheckpointError(Exception):
    """A checkpoint that does not exist or cannot be restored."""


# --------------------------------------------------------------------------- the run's history


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


def check_checkpoint_files(folder: Path | str) -> None:
    """Refuse a checkpoint folder TensorFlow must not read: no index, or a file that is not a regular file.

    TensorFlow opens the files blocking, so a FIFO in their place would hang the trainer; this looks
    first (``stat``, which follows a symlink to what it names) and raises :class:`CheckpointError`.
    """
    folder = Path(folder)
    try:
        entries = list(os.scandir(folder))
    except OSError as e:
        raise CheckpointError(f"checkpoint {folder.name} cannot be read ({e.strerror or type(e).__name__})") from None
    names = set()
    for entry in entries:
        try:
            regular = stat.S_ISREG(os.stat(entry.path).st_mode)
        except OSError:
            regular = False
        if not regular:
            raise CheckpointError(f"checkpoint {folder.name} holds {ascii(entry.name)}, which is not a regular file")
        names.add(entry.name)
    if not any(name.endswith(".index") for name in names):
        raise CheckpointError(f"checkpoint {folder.name} has no data (was it deleted?)")


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
        fsync_dir(self.path.parent)
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
    def config_snapshot(self) -> Snapshot:
        """``config.json`` checked (:func:`~trainer.contract.records.config_record`), or why it is unusable."""
        return read_snapshot(self.config_path, config_record)

    def read_config(self) -> dict:
        """``config.json`` checked; ``RunDirError`` when it is missing, unusable or of another schema."""
        snapshot = self.config_snapshot()
        config = snapshot.record
        if config is None:
            raise RunDirError(f"{self.path} is not a Panda run ({snapshot.notice or 'no ' + CONFIG})")
        version = config.get("schema_version")
        if version != SCHEMA_VERSION:
            raise RunDirError(
                f"{self.path} uses run-directory schema {version}; this Panda reads {SCHEMA_VERSION}"
            )
        return config

    def write_config(self, config: dict) -> None:
        atomic_write_json(self.config_path, {"schema_version": SCHEMA_VERSION, **config})

    def read_status(self) -> dict | None:
        """``status.json`` as written (a JSON object), or ``None``; :meth:`status` is the typed, checked view."""
        try:
            return read_json(self.status_path)
        except (OSError, ValueError):  # replaced atomically, so only a foreign writer leaves it unusable
            return None

    def status_snapshot(self) -> Snapshot:
        """``status.json`` as a :class:`~trainer.contract.records.Status`, or why it is unusable."""
        return read_snapshot(self.status_path, Status.from_json)

    def status(self) -> "Status | None":
        """``status.json`` as a :class:`~trainer.contract.records.Status`, or ``None`` before the first (or when unusable)."""
        return self.status_snapshot().record

    def write_status(self, status: "Status | dict") -> None:
        """Replace ``status.json`` (a dict is read as a :class:`~trainer.contract.records.Status` first)."""
        status = Status.from_json(status) if isinstance(status, dict) else status
        atomic_write_json(self.status_path, {"schema_version": SCHEMA_VERSION, **status.to_json()})

    # logs
    def read_metrics(self) -> list[dict]:
        return read_jsonl(self.metrics_path)

    def read_events(self) -> list[dict]:
        return read_jsonl(self.events_path)

    def read_internals(self) -> list[dict]:
        """``internals.jsonl`` (see trainer/training/internals.py); empty for a run that has none."""
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
        """Usable complete checkpoints, oldest first, each its checked ``meta.json`` plus ``name`` and ``path``."""
        return self.checkpoint_listing()[0]

    def checkpoint_listing(self) -> tuple[list[dict], list[tuple[str, str]]]:
        """Usable checkpoints (as :meth:`list_checkpoints`), and ``(name, reason)`` for each unusable one.

        A checkpoint is unusable when its ``meta.json`` is missing, not a regular file, not JSON or
        fails :func:`~trainer.contract.records.checkpoint_meta`: the trainer skips it with a journaled reason.
        """
        good, bad = [], []
        try:
            children = list(self.checkpoints_path.iterdir())
        except OSError:
            return good, bad
        for child in children:
            if child.name.startswith("."):
                continue  # a checkpoint still being written
            if string(child.name) is None:  # undecodable bytes in the folder's name
                bad.append((ascii(child.name), "its folder name is not UTF-8"))
                continue
            try:
                raw = read_json(child / CHECKPOINT_META)
                if raw is None:
                    raise ValueError(f"{CHECKPOINT_META} is missing")
                good.append({**checkpoint_meta(raw), "name": child.name, "path": str(child)})
            except NotRegularFile:
                bad.append((child.name, f"{CHECKPOINT_META} is not a regular file"))
            except (OSError, ValueError) as e:
                bad.append((child.name, str(e) if isinstance(e, ValueError) else f"{CHECKPOINT_META} cannot be read"))
        good.sort(key=lambda m: (m["seq"], m["name"]))
        bad.sort()
        return good, bad

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
