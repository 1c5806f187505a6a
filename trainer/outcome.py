"""How a run ended, in one word: the CLI and the dashboard both say it with :func:`outcome`.

``status.json`` says ``finished`` for every clean end; the ``finished`` event's ``reason`` (and the
``message`` the trainer writes from it, :data:`FINISH_MESSAGES`) says which. A run whose state is
still live but whose process is gone was killed (``kill -9``, a crash, a reboot): it is not
*finished*, and ``--resume`` continues it from its last checkpoint.

>>> outcome("finished", message="stopped by the user"), outcome("finished")
('stopped', 'completed')
>>> outcome("not answering", pid_gone=True), outcome("running")
('killed', 'running')
"""

from __future__ import annotations

#: ``status.json``'s ``message`` for a run that ended early, by the ``finished`` event's reason.
FINISH_MESSAGES = {"stopped": "stopped by the user", "interrupted": "interrupted by Ctrl-C or SIGTERM"}
#: The words for the ways a run ends (``failed`` and ``diverged`` keep their state's name).
ENDINGS = ("completed", "stopped", "interrupted", "killed")


def outcome(state: str, *, message: str | None = None, reason: str | None = None, pid_gone: bool = False) -> str:
    """The word for a run in ``state`` (a liveness: ``finished``, ``not answering``, ``running`` …).

    ``reason`` is the ``finished`` event's, when the caller has the journal; otherwise ``message``
    from ``status.json`` tells. ``pid_gone``: the process of a ``not answering`` run no longer exists.
    """
    if state == "finished":
        if reason in FINISH_MESSAGES:
            return reason
        for why, text in FINISH_MESSAGES.items():
            if message == text:
                return why
        return "completed"
    if state == "not answering" and pid_gone:
        return "killed"
    return state
