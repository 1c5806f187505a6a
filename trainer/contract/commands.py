"""The command vocabulary: what a client may ask a running trainer to do, and what is valid.

Clients append commands to ``commands.jsonl``; the trainer checks each with :func:`validate`
before acting and answers every one in ``events.jsonl``. Clients may call :func:`validate` too, to
refuse bad input before it reaches the file, but the trainer never trusts that they did: any JSON
value at all gives a :class:`Command` or a :class:`CommandError`, never another exception.

The hyperparameter commands (``set_lr``, ``set_beta``, ``set_batch_size``) check their value with
the hyperparameter's own entry in :data:`trainer.contract.hparams.HYPERPARAMETERS`.

:data:`TABLE` holds every command once — its value check, whether it changes a hyperparameter, is
undoable, is replayed, which trainers obey it (:data:`TRAINER_KINDS`) and its words in the
journal; the steering's handler table, undo, replay and a page's gating (:func:`supported`) derive
from it.

It holds together as one table: each command's entry and the check of its value are read side by side.

>>> validate({"id": "c-1", "cmd": "set_lr", "value": "0.01"})
Command(id='c-1', cmd='set_lr', value=0.01)
>>> validate({"id": "c-2", "cmd": "set_lr", "value": -1})
Traceback (most recent call last):
...
trainer.contract.commands.CommandError: learning rate must be > 0, got -1.0
>>> validate({"id": "c-3", "cmd": "rewind", "value": "²"})
Traceback (most recent call last):
...
trainer.contract.commands.CommandError: rewind needs a checkpoint name (ckpt-00007) or an epoch number, got '²'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from trainer.contract.jsonsafe import find_surrogate, text_of
from trainer.contract.hparams import MAX_BATCH_SIZE, MAX_LR, STEERABLE  # noqa: F401  (MAX_*: re-exported limits)
from trainer.contract.options import Option, OptionError, short_repr

#: A command id: 1 to 128 ASCII letters, digits and ``_ . : @ + = -`` (``c-3f2a9b``), unique within a run.
#: Matched whole (``fullmatch``): ``"h\n"``, spaces, quotes, slashes and non-ASCII are not ids.
ID_PATTERN = re.compile(r"[A-Za-z0-9_.:@+=-]{1,128}")
ID_RULE = "a string of 1 to 128 ASCII letters, digits or _ . : @ + = -"
#: A rewind target: a checkpoint's name or an epoch number (ASCII digits).
CHECKPOINT_PATTERN = re.compile(r"^(ckpt-[0-9]{1,9}|[0-9]{1,9})$")
#: The largest factor ``scale_lr`` takes (the result must still be a valid learning rate).
MAX_SCALE = 1e6


class CommandError(ValueError):
    """A command that cannot be applied, with the reason a user should read."""


@dataclass(frozen=True)
class Command:
    """One checked line of ``commands.jsonl``."""

    id: str
    cmd: str
    value: Any = None


def _checked(opt: Option) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        try:
            return opt.check(value)
        except OptionError as e:
            raise CommandError(str(e)) from None

    check.__name__ = f"check_{opt.name}"
    return check


check_lr = _checked(STEERABLE["set_lr"])
check_beta = _checked(STEERABLE["set_beta"])
check_batch_size = _checked(STEERABLE["set_batch_size"])
check_scale = _checked(Option("float", "", label="scale factor", name="scale", low=0, low_open=True, high=MAX_SCALE))


def check_checkpoint_name(value: Any) -> str:
    """A checkpoint name (``ckpt-00007``) or an epoch number (``7``), as text."""
    text = str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    if text is None or not CHECKPOINT_PATTERN.match(text):
        raise CommandError(f"rewind needs a checkpoint name (ckpt-00007) or an epoch number, got {short_repr(value)}")
    return text


def check_switch(value: Any) -> bool:
    """An on/off value: JSON true/false, or the text true/false/on/off (``panda ctl RUN set-autopilot on``)."""
    words = {"true": True, "on": True, "false": False, "off": False}
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in words:
        return words[value.strip().lower()]
    raise CommandError(f"expected true or false, got {short_repr(value)}")


#: find_lr and fork train at most this many exploratory steps.
MAX_EXPLORE_STEPS = 5000
#: A fork tries at most this many candidates.
MAX_FORK_CANDIDATES = 8
#: find_lr's defaults: ``{"steps": 100, "min": 1e-6, "max": 1}``.
FIND_LR_DEFAULTS = {"steps": 100, "min": 1e-6, "max": 1.0}
#: What a fork candidate may set, and the check of each (the hyperparameters' own table).
FORK_KEYS = {"lr": "set_lr", "beta": "set_beta", "batch_size": "set_batch_size"}
FORK_PICKS = ("ask", "best")


def _steps(value: Any, low: int, what: str) -> int:
    opt = Option("int", "", label=f"{what} steps", name="steps", low=low, high=MAX_EXPLORE_STEPS)
    try:
        return opt.check(value)
    except OptionError as e:
        raise CommandError(str(e)) from None


def _object(value: Any, what: str, keys: tuple[str, ...]) -> dict:
    if not isinstance(value, dict):
        raise CommandError(f"{what} needs an object like {{{', '.join(f'{k!r}: ...' for k in keys)}}}, "
                           f"got {short_repr(value)}")
    unknown = [k for k in value if k not in keys]
    if unknown:
        raise CommandError(f"{what}: unknown field {short_repr(unknown[0])} (known: {', '.join(keys)})")
    return value


def check_find_lr(value: Any) -> dict:
    """``{"steps": N, "min": a, "max": b}`` (each optional): 2 <= N, 0 < a < b <= the largest α."""
    value = _object(value, "find_lr", tuple(FIND_LR_DEFAULTS))
    spec = {**FIND_LR_DEFAULTS, **{k: v for k, v in value.items() if v is not None}}
    steps = _steps(spec["steps"], 2, "find_lr")
    try:
        low, high = check_lr(spec["min"]), check_lr(spec["max"])
    except CommandError as e:
        raise CommandError(f"find_lr range: {e}") from None
    if low >= high:
        raise CommandError(f"find_lr range: min must be below max, got min {low:g} >= max {high:g}")
    return {"steps": steps, "min": low, "max": high}


def check_candidate(value: Any, index: int) -> dict:
    what = f"fork candidate {index + 1}"
    value = _object(value, what, tuple(FORK_KEYS))
    out = {}
    for key, command in FORK_KEYS.items():
        if value.get(key) is not None:
            try:
                out[key] = COMMANDS[command](value[key])
            except CommandError as e:
                raise CommandError(f"{what}: {e}") from None
    if not out:
        raise CommandError(f"{what} sets nothing: give it lr, beta or batch_size")
    return out


def check_fork(value: Any) -> dict:
    """``{"candidates": [{"lr": ...}, ...], "steps": N, "pick": "ask"|"best"}``: 1 to 8 candidates, N >= 1."""
    value = _object(value, "fork", ("candidates", "steps", "pick"))
    candidates = value.get("candidates")
    if not isinstance(candidates, list) or not candidates:
        raise CommandError("fork needs at least one candidate: {\"candidates\": [{\"lr\": 0.01}, ...]}")
    if len(candidates) > MAX_FORK_CANDIDATES:
        raise CommandError(f"fork takes at most {MAX_FORK_CANDIDATES} candidates, got {len(candidates)}")
    checked = [check_candidate(c, i) for i, c in enumerate(candidates)]
    if value.get("steps") is None:
        raise CommandError("fork needs steps (training steps per candidate, at least 1)")
    pick = value.get("pick", "ask") if value.get("pick") is not None else "ask"
    if pick not in FORK_PICKS:
        raise CommandError(f"fork pick must be 'ask' or 'best', got {short_repr(pick)}")
    return {"candidates": checked, "steps": _steps(value["steps"], 1, "fork"), "pick": pick}


#: What ``adopt`` takes: another run's folder, one of its checkpoints (default: its newest), α and β to set.
ADOPT_KEYS = ("run", "checkpoint", "lr", "beta")


def check_adopt(value: Any) -> dict:
    """``{"run": PATH, "checkpoint": NAME, "lr": a, "beta": b}`` (all but run optional).

    Only the value's form is checked here; whether ``run`` is a Panda run of the same shape is the
    trainer's to check (:mod:`trainer.training.adopt`).
    """
    if isinstance(value, str):
        value = {"run": value}  # just the other run's folder
    value = _object(value, "adopt", ADOPT_KEYS)
    run = value.get("run")
    if not isinstance(run, str) or not run.strip() or len(run) > 4096 or "\x00" in run:
        raise CommandError(f"adopt needs the path of another run's folder in 'run', got {short_repr(run)}")
    out: dict[str, Any] = {"run": run, "checkpoint": None, "lr": None, "beta": None}
    if value.get("checkpoint") is not None:
        out["checkpoint"] = check_checkpoint_name(value["checkpoint"])
    for key, check in (("lr", check_lr), ("beta", check_beta)):
        if value.get(key) is not None:
            try:
                out[key] = check(value[key])
            except CommandError as e:
                raise CommandError(f"adopt {key}: {e}") from None
    return out


#: What a ``note`` may carry: text, and a few short tags a client files it under.
NOTE_KEYS = ("text", "kind", "proposal", "source", "target", "checkpoint")


def check_note(value: Any) -> dict:
    """``{"text": "...", "kind": "pbt_source", ...}``: a line for the journal, strings of at most 500 characters."""
    if isinstance(value, str):
        value = {"text": value}
    value = _object(value, "note", NOTE_KEYS)
    out = {}
    for key in NOTE_KEYS:
        field = value.get(key)
        if field is None:
            continue
        if not isinstance(field, str) or len(field) > 500 or any(ord(c) < 32 for c in field):
            raise CommandError(f"note {key}: a line of at most 500 characters, got {short_repr(field)}")
        out[key] = field
    if not out.get("text", "").strip():
        raise CommandError("note needs a text")
    return out


def check_stage(value: Any) -> int:
    """An autopilot stage's number, 1 or more (``veto``'s value; the text ``"3"`` too, as ``panda ctl`` sends it).

    >>> check_stage("3")
    3
    """
    opt = Option("int", "", label="autopilot stage", name="stage", low=1, high=2**31 - 1)
    try:
        return opt.check(value)
    except OptionError as e:
        raise CommandError(f"veto needs the number of an autopilot stage: {e}") from None


def _no_value(value: Any) -> None:
    if value is not None:
        raise CommandError("this command takes no value")
    return None


#: The trainers that write run directories, by the name ``config.json``'s ``trainer`` gives them.
PANDA_TRAIN = "panda-train"
KERAS_CALLBACK = "keras-callback"
TRAINER_KINDS = (PANDA_TRAIN, KERAS_CALLBACK)
_TRAIN_ONLY = (PANDA_TRAIN,)


@dataclass(frozen=True)
class Spec:
    """One command: how its value is checked, what it is, and who obeys it.

    ``words``: what the journal and the page call it, ``{value}`` standing for its value.
    ``refusal``: why a trainer not in ``trainers`` refuses it (the answer a client reads).
    """

    name: str
    check: Callable[[Any], Any]
    words: str
    changes: str = ""  # the hyperparameter it changes (its name in the table), read by the step from a tf.Variable
    undoable: bool = False
    replayed: bool = False
    trainers: tuple[str, ...] = TRAINER_KINDS
    refusal: str = ""

    @property
    def hparam(self) -> bool:
        """Whether it changes a hyperparameter."""
        return bool(self.changes)

    @property
    def valued(self) -> bool:
        return self.check is not _no_value


_KERAS = "is not supported in a Keras model.fit (PandaCallback)"

#: Every command, once: the one table the handlers, undo, replay, the journal's words and a page's gating derive from.
TABLE = (
    Spec("set_lr", check_lr, "learning rate → {value}", changes="lr", undoable=True, replayed=True),
    Spec("scale_lr", check_scale, "learning rate ×{value}", changes="lr", undoable=True, replayed=True),
    Spec("set_beta", check_beta, "β → {value}", changes="beta", undoable=True, replayed=True, trainers=_TRAIN_ONLY,
         refusal=f"set_beta {_KERAS}: the optimizer's beta is a constant in its compiled step"),
    Spec("set_batch_size", check_batch_size, "batch size → {value}", changes="batch_size", undoable=True, replayed=True,
         trainers=_TRAIN_ONLY, refusal=f"set_batch_size {_KERAS}: the batch size belongs to the data given to fit"),
    Spec("pause", _no_value, "pause"),
    Spec("resume", _no_value, "resume"),
    Spec("stop", _no_value, "stop"),
    Spec("checkpoint", _no_value, "checkpoint", replayed=True),
    Spec("rewind", check_checkpoint_name, "rewind to {value}", undoable=True, replayed=True),
    Spec("set_autopilot", check_switch, "autopilot {value}", trainers=_TRAIN_ONLY,
         refusal="this trainer has no advisor (panda train has one)"),
    Spec("find_lr", check_find_lr, "find α"),
    Spec("fork", check_fork, "fork", undoable=True, trainers=_TRAIN_ONLY,
         refusal=f"fork {_KERAS}: the callback never holds the training or validation data to train and "
                 f"measure candidates on"),
    Spec("undo", _no_value, "undo the last change"),
    Spec("adopt", check_adopt, "adopt another run's checkpoint", trainers=_TRAIN_ONLY,
         refusal=f"adopt {_KERAS}: the model is the caller's, and another run's weights may not fit it; "
                 f"run it with panda train"),
    Spec("note", check_note, "note"),
    Spec("veto", check_stage, "veto autopilot stage {value}", changes="lr", undoable=True, replayed=True,
         trainers=_TRAIN_ONLY,
         refusal="veto: only panda train's lookahead autopilot makes stages (PandaCallback cannot fork)"),
)
#: Each command's entry, by name.
SPECS: dict[str, Spec] = {spec.name: spec for spec in TABLE}
#: Every command: its name -> the check of its value (``_no_value``: it takes none).
COMMANDS: dict[str, Callable[[Any], Any]] = {spec.name: spec.check for spec in TABLE}
#: Commands that carry a value.
VALUED = tuple(spec.name for spec in TABLE if spec.valued)
#: Commands that change a hyperparameter the compiled step reads from a tf.Variable.
HPARAM_COMMANDS = tuple(spec.name for spec in TABLE if spec.hparam)
#: The commands that change each steerable hyperparameter, by its name: ``{"lr": ("set_lr", "scale_lr"), ...}``.
CHANGERS: dict[str, tuple[str, ...]] = {
    name: tuple(spec.name for spec in TABLE if spec.changes == name)
    for name in dict.fromkeys(spec.changes for spec in TABLE if spec.changes)
}
#: Commands that can be undone (a fork only when it continued with its best: :mod:`trainer.steering.undo`).
UNDOABLE = tuple(spec.name for spec in TABLE if spec.undoable)
#: Commands whose effect a replay reproduces (:mod:`trainer.steering.replay`).
REPLAYED = tuple(spec.name for spec in TABLE if spec.replayed)


def supported(cmd: str, trainer_kind: str) -> bool:
    """Whether a trainer of ``trainer_kind`` (one of :data:`TRAINER_KINDS`) obeys ``cmd``.

    >>> supported("set_lr", KERAS_CALLBACK), supported("set_beta", KERAS_CALLBACK), supported("set_beta", PANDA_TRAIN)
    (True, False, True)
    """
    spec = SPECS.get(cmd)
    return spec is not None and trainer_kind in spec.trainers


def unsupported(cmd: str) -> CommandError:
    """The refusal a trainer that does not support ``cmd`` answers with."""
    return CommandError(SPECS[cmd].refusal)


def describe(cmd: str, value: Any = None, fmt: Callable[[Any], str] = str, *, before: Any = None) -> str:
    """A command in the journal's words (``fmt`` writes its value); ``before``: the value it replaced.

    >>> describe("set_beta", 0.95), describe("undo"), describe("nope", 1)
    ('β → 0.95', 'undo the last change', 'nope 1')
    >>> describe("set_lr", 0.001, before=0.01)
    'learning rate 0.01 → 0.001'
    """
    spec = SPECS.get(cmd)
    if spec is None:
        return f"{cmd} {fmt(value)}" if value is not None else str(cmd)
    words = spec.words if before is None else spec.words.replace(" → ", f" {fmt(before)} → ", 1)
    return words.replace("{value}", fmt(value))


def handler_table(handlers: dict[str, Callable]) -> dict[str, Callable]:
    """``handlers``, checked to name every command of :data:`TABLE` and nothing else."""
    if set(handlers) != set(SPECS):
        raise TypeError(f"handlers do not match the command table: missing {sorted(set(SPECS) - set(handlers))}, "
                        f"unknown {sorted(set(handlers) - set(SPECS))}")
    return handlers


def valid_id(value: Any) -> str | None:
    """``value`` if it is a valid command id, else ``None``."""
    return value if isinstance(value, str) and ID_PATTERN.fullmatch(value) else None


def validate(record: Any) -> Command:
    """Check one line of ``commands.jsonl``; raise :class:`CommandError` with the reason."""
    if not isinstance(record, dict):
        raise CommandError("a command must be a JSON object")
    where = find_surrogate(record)
    if where is not None:
        raise CommandError(f"{where} holds a lone UTF-16 surrogate (like \\udfff), which is not valid Unicode text")
    command_id = valid_id(record.get("id"))
    if command_id is None:
        raise CommandError(f"a command needs an 'id': {ID_RULE}, got {text_of(record.get('id'))[:40]}")
    name = record.get("cmd")
    if not isinstance(name, str) or name not in COMMANDS:
        raise CommandError(f"unknown command {short_repr(name)} (known: {', '.join(COMMANDS)})")
    if name in VALUED and record.get("value") is None:
        raise CommandError(f"{name} needs a value")
    return Command(command_id, name, COMMANDS[name](record.get("value")))
