"""Who may steer: the presenter token.

Served on localhost, the dashboard trusts its user. Served to a room (``panda app --present``, or
any non-local address), everyone can watch but only a browser session that proved it is the
presenter may send commands or start runs. Tokens and codes are compared in constant time.

A session proves it with the token typed into the sidebar, or with the *one-time code* in the
presenter's URL (``?code=...``) that ``panda app`` prints. The token itself never goes into a URL:
removing a query parameter pushes a new browser-history entry, it does not rewrite the old one,
so a token in the address would come back with the Back button. A code is worth one session,
and only for :data:`CODE_TTL` seconds after the first page load: the history entry it leaves
behind is dead.

The token reaches the server through the environment (``$PANDA_TOKEN``, or ``--token-file``), never
the command line, where ``ps`` shows it to every user; trainers the dashboard starts get neither.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import threading
import time
from pathlib import Path

from app.serving.shared import shared

#: Environment variables through which ``panda app`` hands its settings to the Streamlit script.
ENV_TOKEN = "PANDA_TOKEN"
ENV_PRESENT = "PANDA_PRESENT"
ENV_RUN_DIR = "PANDA_RUN_DIR"
#: The presenter URL's one-time code, from ``panda app`` to the Streamlit script.
ENV_CODE = "PANDA_PRESENTER_CODE"
#: What a process the dashboard starts must not inherit.
SECRET_ENV = (ENV_TOKEN, ENV_CODE)
#: Seconds after the server started during which the presenter URL's code works.
CODE_TTL = 15 * 60

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


def new_token() -> str:
    return secrets.token_urlsafe(12)


def read_token_file(path: str | Path) -> str:
    """The token in ``path`` (its first line, stripped); ``ValueError`` when there is none."""
    text = Path(path).expanduser().read_text(encoding="utf-8")
    token = (text.splitlines() or [""])[0].strip()
    if not token:
        raise ValueError(f"no token in {path}")
    return token


def is_local(host: str) -> bool:
    """Whether binding to ``host`` exposes the app to this machine only."""
    if host in LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_matches(expected: str | None, given: str | None) -> bool:
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.strip().encode())


class Access:
    """What this browser session may do."""

    def __init__(self, token: str | None, present: bool = False):
        self.token = token or None
        self.present = present

    @property
    def needs_token(self) -> bool:
        return self.token is not None

    def can_steer(self, given: str | None) -> bool:
        return not self.needs_token or token_matches(self.token, given)


class OneTimeCode:
    """The presenter URL's code: accepted once, and only until ``expires`` (a ``time.time()``).

    One instance serves the whole server (:func:`presenter_secrets`), so a second browser that
    shows the same code — someone who read it off the screen, or the Back button — gets nothing.
    """

    def __init__(self, code: str | None, expires: float):
        self._code = code or None
        self.expires = expires
        self._lock = threading.Lock()

    @property
    def spent(self) -> bool:
        return self._code is None

    def redeem(self, given: str | None, now: float | None = None) -> bool:
        with self._lock:
            if self._code is None or not given or (now or time.time()) > self.expires:
                return False
            if not token_matches(self._code, given):
                return False
            self._code = None
            return True


#: The cookie that keeps a presenter's browser the presenter across reloads.
PRESENTER_COOKIE = "panda_presenter"
#: How long it lasts (seconds): a lecture's length, with room to spare.
PRESENTER_COOKIE_AGE = 12 * 3600


class PresenterKeys:
    """Keys handed to presenters' browsers as a cookie, so a reload keeps the right to steer.

    A key is random and known only to this server's memory (never the token itself, never in a URL
    or on screen); a server restart forgets them all. One instance serves the whole server.

    >>> keys = PresenterKeys()
    >>> key = keys.issue()
    >>> keys.valid(key), keys.valid("guess"), keys.valid(None)
    (True, False, False)
    """

    def __init__(self):
        self._keys: set[str] = set()
        self._lock = threading.Lock()

    def issue(self) -> str:
        key = secrets.token_urlsafe(24)
        with self._lock:
            self._keys.add(key)
        return key

    def valid(self, given: str | None) -> bool:
        if not isinstance(given, str) or not given:  # a missing cookie, or whatever a client sent
            return False
        with self._lock:
            return any(hmac.compare_digest(key.encode(), given.encode()) for key in self._keys)

    @staticmethod
    def cookie_script(key: str) -> str:
        """The script that stores ``key`` in the browser: this site only, sent back with each new session."""
        return (f"<script>document.cookie = '{PRESENTER_COOKIE}={key}; path=/; SameSite=Strict; "
                f"max-age={PRESENTER_COOKIE_AGE}';</script>")


def presenter_secrets(run_dir: str | Path, code: str | None) -> tuple[OneTimeCode, PresenterKeys]:
    """This server's one-time code and presenter keys: one pair per process, never in a Streamlit cache.

    A client can clear Streamlit's resource cache for every session; kept there, a spent code would come
    back fresh and every presenter's key would stop working. Here (:mod:`app.serving.shared`) a spent code
    stays spent and a key stays valid for its life. The code's window opens at the first page load.
    """
    return shared("presenter secrets", (str(run_dir), code),
                  lambda: (OneTimeCode(code, expires=time.time() + CODE_TTL), PresenterKeys()))
