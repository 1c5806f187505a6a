"""``adopt``: take another run's weights and optimizer state (population-based training's exploit).

A run told ``{"cmd": "adopt", "value": {"run": "runs/s/trial-0003", "checkpoint": "ckpt-00004",
"lr": 0.02}}`` loads that run's checkpoint into its own model and optimizer, on a new branch of its
history (as a rewind does: the epoch in progress is dropped, the epoch count goes on from where
this run was), sets the given α and β, saves an ``adopted`` checkpoint (so a later rollback or
``--resume`` starts from the adopted state) and journals ``adopted`` with the source run and
checkpoint. It refuses, with the reason, a folder that is not a Panda run (or whose config.json is
unusable), this run itself, a missing or unusable checkpoint (a bad meta.json, a FIFO where a file
belongs: never opened), or a checkpoint whose variables (names and shapes) differ from this run's:
another architecture or optimizer. Nothing is changed by a refused adopt.

:func:`find_source` is pure Python; :func:`check_compatible` reads checkpoint indexes with
TensorFlow (no variable is touched).
"""

from __future__ import annotations

from pathlib import Path

from trainer.contract.commands import CommandError
from trainer.contract.rundir import CheckpointError, RunDir, RunDirError, check_checkpoint_files

PREFIX = "ckpt"  # as trainer.training.checkpoints.PREFIX (imported there with TensorFlow)


def find_source(spec: dict, own: RunDir) -> dict:
    """The source checkpoint's meta (``name``, ``path``, ``epoch``, ...) named by an adopt ``spec``."""
    try:
        return _find_source(spec, own)
    except (RunDirError, OSError, ValueError, RuntimeError) as e:  # an unreadable folder (or a symlink loop)
        # is a refusal, never the run's end
        if isinstance(e, CommandError):
            raise
        raise CommandError(f"adopt: {spec['run']!r} is not a Panda run ({str(e)[:200]})") from None


def _find_source(spec: dict, own: RunDir) -> dict:
    path = Path(spec["run"])
    source = RunDir(path)
    if not path.is_dir():
        raise CommandError(f"adopt: no run folder at {spec['run']!r}")
    if not source.config_path.is_file():
        raise CommandError(f"adopt: {spec['run']!r} is not a Panda run (no config.json)")
    source.read_config()  # RunDirError (a refusal) when it is not a usable config.json
    if path.resolve() == own.path.resolve():
        raise CommandError("adopt: that is this run; use rewind to go back to one of its own checkpoints")
    checkpoints, unusable = source.checkpoint_listing()
    wanted = spec.get("checkpoint")
    skipped = [f"{name}: {why}" for name, why in unusable if wanted is None or name == wanted]
    if skipped:  # unnamed: "the newest" may be the unusable one, so none is guessed
        raise CommandError(f"adopt: {spec['run']!r} has an unusable checkpoint ({skipped[-1][:200]})"
                           + ("; name a usable one with \"checkpoint\"" if wanted is None and checkpoints else ""))
    if not checkpoints:
        raise CommandError(f"adopt: {spec['run']!r} has no checkpoint yet")
    if wanted is None:
        return checkpoints[-1]
    found = [m for m in checkpoints if m["name"] == wanted]
    if not found and wanted.isdigit():
        found = [m for m in checkpoints if m.get("epoch") == int(wanted)][-1:]
    if not found:
        names = ", ".join(m["name"] for m in checkpoints[-5:])
        raise CommandError(f"adopt: {spec['run']!r} has no checkpoint {wanted!r} (newest: {names})")
    return found[0]


def variables_of(checkpoint_path: str | Path) -> dict[str, tuple]:
    """A checkpoint folder's variables: name -> shape (the optimizer's and the model's)."""
    import tensorflow as tf

    prefix = str(Path(checkpoint_path) / PREFIX)
    try:
        check_checkpoint_files(checkpoint_path)  # TensorFlow would block on a FIFO
    except CheckpointError as e:
        raise CommandError(f"adopt: {e}") from None
    try:
        return {name: tuple(shape) for name, shape in tf.train.list_variables(prefix)
                if not name.startswith("_CHECKPOINTABLE_OBJECT_GRAPH")}
    except (tf.errors.OpError, ValueError) as e:
        raise CommandError(f"adopt: cannot read checkpoint {checkpoint_path}: {str(e).splitlines()[0][:200]}") from None


def check_compatible(source: dict, own: dict) -> None:
    """Refuse a source checkpoint whose variables are not this run's (another shape, model or optimizer)."""
    theirs, ours = variables_of(source["path"]), variables_of(own["path"])
    missing = sorted(set(ours) - set(theirs))
    extra = sorted(set(theirs) - set(ours))
    if missing or extra:
        name = (missing or extra)[0]
        raise CommandError(f"adopt: {source['name']} of that run is another model or optimizer: variable "
                           f"{name.split('/.ATTRIBUTES')[0]} is {'missing there' if missing else 'not in this run'}")
    for name, shape in ours.items():
        if theirs[name] != shape:
            raise CommandError(f"adopt: incompatible shapes: {name.split('/.ATTRIBUTES')[0]} is {list(theirs[name])} "
                               f"there, {list(shape)} here")
