"""Capture a real memcached under load (skips when memcached is not installed)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import numpy as np
import pytest

from migcodec.datasets.capture import ProcessCapture

pytestmark = pytest.mark.skipif(
    shutil.which("memcached") is None or os.geteuid() != 0,
    reason="needs memcached (apt-get install memcached libmemcached-tools) and root",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(port: int, timeout: float = 10.0) -> socket.socket:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)  # polling a port that is not open yet: nothing to wait on


def _set(conn: socket.socket, key: bytes, value: bytes) -> None:
    conn.sendall(b"set %s 0 0 %d\r\n%s\r\n" % (key, len(value), value))
    assert conn.recv(64) == b"STORED\r\n"


def test_a_value_stored_in_memcached_under_load_is_captured() -> None:
    port = _free_port()
    server = subprocess.Popen(
        ["memcached", "-u", "nobody", "-l", "127.0.0.1", "-p", str(port), "-m", "64", "-t", "2"]
    )
    load = None
    try:
        conn = _wait_for(port)
        if shutil.which("memcaslap"):
            load = subprocess.Popen(
                ["memcaslap", "-s", f"127.0.0.1:{port}", "-T", "1", "-c", "4", "-t", "3s"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        cap = ProcessCapture(server.pid)
        cap.start()
        value = b"".join(b"MIGCODEC-TRUTH-%06d|" % i for i in range(150))
        _set(conn, b"migcodec-truth", value)
        windows = [cap.next_window() for _ in range(3)]
        cap.close()
        assert all(w is not None for w in windows)
        data = b"".join(w.pages.tobytes() for w in windows)
        assert value[:1000] in data  # the stored value is in the captured dirty pages
        first = windows[0]
        assert first.n_pages > 0 and first.previous.shape == first.pages.shape
        if cap.method == "snapshot-diff":  # it reports only pages whose bytes changed
            changed = first.pages.view("<u8") != first.previous.view("<u8")
            assert changed.any(axis=1).all()
        assert np.all(np.diff(first.page_indices) > 0)
    finally:
        if load is not None:
            load.kill()
            load.wait()
        server.kill()
        server.wait()
