"""`capsock serve`: several instances share one listener; graceful stop."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ..conftest import capsock_command, capsock_env


def _start(*args: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(capsock_command("serve", *args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=capsock_env())
    assert proc.stderr is not None
    line = proc.stderr.readline()
    match = re.search(r"127\.0\.0\.1:(\d+)", line)
    assert match, line
    return proc, int(match.group(1))


def _get(port: int, path: str) -> dict[str, object]:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b"".join(iter(lambda: conn.recv(65536), b""))
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return json.loads(body)  # type: ignore[no-any-return]


def _seen_instances(port: int, limit: int = 600) -> set[str]:
    seen: set[str] = set()
    deadline = time.monotonic() + 60
    with ThreadPoolExecutor(max_workers=16) as pool:
        for batch in range(limit // 16):
            paths = [f"/api/instance?r={batch}-{i}" for i in range(16)]
            replies = pool.map(lambda path: _get(port, path), paths)
            seen.update(str(reply["instance"]) for reply in replies)
            if len(seen) == 2 or time.monotonic() > deadline:
                break
    return seen


@pytest.mark.parametrize("mode", ["process", "thread"])
def test_two_instances_answer_and_stop_cleanly(guests: dict[str, Path], mode: str) -> None:
    proc, port = _start("--instances", "2", "--mode", mode, "--grace", "10",
                        "--tcplisten", "127.0.0.1:0", str(guests["http"]))
    try:
        time.sleep(0.5)
        assert _seen_instances(port) == {"0", "1"}
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "0 socket(s) still open" in err
    assert "instance 0 served" in out and "instance 1 served" in out
    with pytest.raises(OSError):  # the listener is really closed
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_in_flight_request_finishes_after_sigterm(guests: dict[str, Path]) -> None:
    proc, port = _start("--instances", "1", "--grace", "20", "--tcplisten", "127.0.0.1:0",
                        str(guests["http"]))
    try:
        time.sleep(0.5)
        conn = socket.create_connection(("127.0.0.1", port), timeout=30)
        conn.sendall(b"GET /api/instance?slow HTTP/1.1\r\nHost: x\r\n")  # half a request
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        conn.sendall(b"Connection: close\r\n\r\n")  # ...and the rest, after the signal
        data = b"".join(iter(lambda: conn.recv(65536), b""))
        conn.close()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert data.startswith(b"HTTP/1.1 200"), data
    assert b'"/api/instance?slow"' in data
    assert proc.returncode == 0, err


def test_serve_needs_a_listener(guests: dict[str, Path]) -> None:
    done = subprocess.run(capsock_command("serve", str(guests["http"])), capture_output=True,
                          text=True, env=capsock_env(), timeout=60)
    assert done.returncode == 2
    assert "--tcplisten" in done.stderr
