"""What a room needs to reach the dashboard: this machine's LAN addresses, the URLs, a QR code;
and how the presenter's link reaches the presenter alone.

Addresses come from the machine's own interfaces (``psutil.net_if_addrs``): nothing is sent, no
outside address is contacted. The viewers' URL reaches the Streamlit script through the
environment, so the presenter's page can show its QR code. The steer link (and a generated
token) is written to a file only this user can read, not to the terminal a lecturer may be
projecting (:func:`write_private`).
"""

from __future__ import annotations

import io
import ipaddress
import os
import socket
from pathlib import Path

#: The viewers' URL, from ``panda app`` to the Streamlit script (the presenter's page shows its QR code).
ENV_VIEW_URL = "PANDA_VIEW_URL"
#: Where ``panda app`` writes the presenter's link: ``steer-PORT.txt`` in this user's folder.
STEER_FOLDER = Path("~/.panda")
#: Interfaces a room cannot reach (containers, virtual machines, tunnels): listed last.
VIRTUAL = ("docker", "br-", "veth", "virbr", "vmnet", "vboxnet", "cni", "flannel", "tun", "tap", "tailscale", "zt")


def lan_addresses(interfaces: dict | None = None) -> list[str]:
    """This machine's IPv4 addresses that others may reach: physical interfaces first, then virtual ones.

    Loopback and link-local (169.254/16) addresses are left out; the hostname stands in when
    nothing is left. ``interfaces`` is ``psutil.net_if_addrs()``'s answer (tests pass their own).
    """
    if interfaces is None:
        import psutil

        interfaces = psutil.net_if_addrs()
    physical, virtual = [], []
    for name, addresses in interfaces.items():
        for address in addresses:
            if address.family != socket.AF_INET:
                continue
            try:
                ip = ipaddress.IPv4Address(address.address)
            except ValueError:
                continue
            if ip.is_loopback or ip.is_link_local or ip.is_unspecified:
                continue
            group = virtual if name.lower().startswith(VIRTUAL) else physical
            if str(ip) not in physical + virtual:
                group.append(str(ip))
    return physical + virtual or [socket.gethostname()]


def reachable_hosts(host: str) -> list[str]:
    """Where a browser finds a server bound to ``host``: every LAN address for all interfaces."""
    return lan_addresses() if host in ("0.0.0.0", "", "::") else [host]


def url(host: str, port: int) -> str:
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"


def qr_code(text: str):
    """The QR code of ``text`` (medium error correction: a projector's glare still reads)."""
    import segno

    return segno.make(text, error="m", micro=False)


def qr_terminal(text: str) -> str:
    """The QR code as text for a terminal: two modules a character, dark on the terminal's light."""
    out = io.StringIO()
    qr_code(text).terminal(out=out, compact=True)
    return out.getvalue()


def qr_png(text: str, scale: int = 8) -> bytes:
    """The QR code as a PNG image (segno writes PNG itself)."""
    out = io.BytesIO()
    qr_code(text).save(out, kind="png", scale=scale, border=2)
    return out.getvalue()


def steer_file(port: int, folder: Path = STEER_FOLDER) -> Path:
    return folder.expanduser() / f"steer-{port}.txt"


def write_private(path: Path, text: str) -> Path:
    """Write ``text`` to a new file at ``path`` that only this user can read (0600; a new folder 0700).

    Whatever was at ``path`` is replaced, never written through: a symlink planted there is
    removed, not followed, and the new file is created exclusively.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    return path
