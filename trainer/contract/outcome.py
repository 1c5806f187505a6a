"""How a run ended, in one word: the CLI and the dashboard both say it with :func:`outcome`.

``status.json`` says ``finished`` for every clean end; its ``ending`` (the ``finished`` event's
``reason``) says which, and its ``message`` says it in words (:data:`FINISH_MESSAGES`). A run whose state is
still live but whose process is gone was killed (``kill -9``, a crash, a reboot): it is not
*finished*, and ``--resume`` continues it from its last checkpoint.

>>> outcome("finished", reason="stopped"), outcome("finished")
('stopped', 'completed')
>>> outcome("not answering", pid_gone=True), outcome("running")
('killed', 'running')
"""

from __future__ import annotations

#: ``status.json``'s ``message`` for a run that ended early, by the ``finished`` event's reason.
FINISH_MESSAGES = {"stopped": "stopped by the user", "interrupted": "interrupted by Ctrl-C or SIGTERM"}


def outcome(state: str, *, reason: str | None = None, pid_gone: bool = False) -> str:
    """The word for a run in ``state`` (a liveness: ``finished``, ``not answering``, ``running`` …).

    ``reason``: how a finished run ended (``status.json``'s ``ending``, or the ``finished``
    event's ``reason``). ``pid_gone``: the process of a ``not answering`` run no longer exists.
    """
    if state == "finished":
        return reason if reason in FINISH_MESSAGES else "completed"
    if state == "not answering" and pid_gone:
        return "killed"
    return state
