"""Serving: the ``panda`` command, the Streamlit server it runs, and who may do what on it.

The command and its subcommands (:mod:`~app.serving.panda_cli`), the Streamlit child process
(:mod:`~app.serving.server`), the page's settings (:mod:`~app.serving.page_settings`), presenter
rights (:mod:`~app.serving.auth`), state one server process shares out of every client's reach
(:mod:`~app.serving.shared`), how a room reaches the page (:mod:`~app.serving.share`), viewers
following the presenter (:mod:`~app.serving.follow`), starting a trainer from the page
(:mod:`~app.serving.launch`) and ``panda demo``'s scenarios (:mod:`~app.serving.scenarios`).
"""

__all__: list[str] = []
