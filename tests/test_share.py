"""What a room needs to reach the dashboard: LAN addresses without traffic, and the QR code."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import segno

from app.serving import panda_cli as cli
from app.serving import share


def _addr(address: str, family=socket.AF_INET):
    return SimpleNamespace(family=family, address=address)


def test_lan_addresses_list_physical_interfaces_first_and_skip_loopback_and_link_local():
    interfaces = {
        "lo": [_addr("127.0.0.1"), _addr("::1", socket.AF_INET6)],
        "docker0": [_addr("172.17.0.1")],
        "wlp2s0": [_addr("192.168.1.23"), _addr("fe80::1", socket.AF_INET6), _addr("169.254.3.4")],
        "eth0": [_addr("10.0.0.5"), _addr("192.168.1.23")],
    }
    assert share.lan_addresses(interfaces) == ["192.168.1.23", "10.0.0.5", "172.17.0.1"]
    assert share.lan_addresses({"lo": [_addr("127.0.0.1")]}) == [socket.gethostname()]
    assert share.lan_addresses()  # this machine's own interfaces


def test_the_qr_code_carries_the_viewers_url_and_the_terminal_shows_it(monkeypatch, capsys):
    url = "http://192.168.1.23:8501/"
    code = share.qr_code(url)
    assert code.matrix == segno.make(url, error="m", micro=False).matrix
    assert code.matrix != segno.make("http://192.168.1.24:8501/", error="m", micro=False).matrix
    text = share.qr_terminal(url)
    rows = text.splitlines()
    assert len(rows) >= (code.symbol_size()[1]) // 2 and set("█▀▄") & set(text)
    assert share.qr_png(url).startswith(b"\x89PNG")
    # panda app --present prints every LAN address and the QR block of the viewers' URL
    monkeypatch.setattr(share, "lan_addresses", lambda: ["192.168.1.23", "10.0.0.5"])
    assert cli._urls("0.0.0.0", 8501, "tok") == ["  watch:  http://192.168.1.23:8501/", "  watch:  http://10.0.0.5:8501/"]
    steer = cli._steer_lines("0.0.0.0", 8501, "c0de")
    assert [line.split()[1] for line in steer] == ["http://192.168.1.23:8501/?code=c0de", "http://10.0.0.5:8501/?code=c0de"]


def test_the_steer_file_is_this_users_alone_and_a_planted_symlink_is_replaced_not_followed(tmp_path):
    import stat

    target = tmp_path / "victim.txt"
    target.write_text("keep me\n")
    path = share.steer_file(8501, tmp_path / "home" / ".panda")
    path.parent.mkdir(parents=True)
    path.symlink_to(target)
    assert share.write_private(path, "steer: http://x/?code=c\n") == path
    assert target.read_text() == "keep me\n" and not path.is_symlink()
    assert path.read_text() == "steer: http://x/?code=c\n" and stat.S_IMODE(path.stat().st_mode) == 0o600
    fresh = share.write_private(share.steer_file(9000, tmp_path / "new"), "x")
    assert stat.S_IMODE(fresh.parent.stat().st_mode) == 0o700
