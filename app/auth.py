"""Who may steer: the presenter token.

Served on localhost, the dashboard trusts its user. Served to a room (``panda app --present``, or
any non-local address), everyone can watch but only a browser that shows the presenter token —
printed by ``panda app`` as part of the presenter's URL, or typed into the sidebar — may send
commands or start runs. Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets

#: Environment variables through which ``panda app`` hands its settings to the Streamlit script.
ENV_TOKEN = "PANDA_TOKEN"
ENV_PRESENT = "PANDA_PRESENT"
ENV_RUN_DIR = "PANDA_RUN_DIR"

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


def new_token() -> str:
    return secrets.token_urlsafe(12)


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
