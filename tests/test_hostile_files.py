"""Issue 18, files in a run directory: every reader survives any content and never blocks."""

from __future__ import annotations

import os
import socket

import pytest

from trainer.rundir import NotRegularFile, open_regular


def test_open_regular_refuses_a_fifo_a_socket_and_a_folder_without_blocking(tmp_path):
    fifo, sock, plain = tmp_path / "fifo", tmp_path / "sock", tmp_path / "plain"
    os.mkfifo(fifo)  # no writer: a plain open() would block here forever
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock))
    plain.write_bytes(b"{}")
    try:
        for special in (fifo, sock, tmp_path, "/dev/zero"):
            with pytest.raises(NotRegularFile):
                open_regular(special)
        with pytest.raises(FileNotFoundError):
            open_regular(tmp_path / "missing")
        with open_regular(plain) as f:
            assert f.read() == b"{}"
    finally:
        server.close()
