"""Real loopback peers and a handle on a running `capsock` process."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import IO

from ..conftest import capsock_command, capsock_env

TIMEOUT = 60.0


def run_capsock(*args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run `capsock ARGS` to completion (bounded in time)."""
    return subprocess.run(capsock_command(*args), capture_output=True, text=True,
                          timeout=timeout, env=capsock_env())


class Running:
    """A `capsock` process in the background, read line by line."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(capsock_command(*args), stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, env=capsock_env())
        self.lines: list[str] = []
        # stderr is drained by a thread so the guest never blocks on a full
        # pipe; stdout is only ever read through one buffered file object
        # (mixing it with communicate() loses lines already buffered).
        self._stderr: list[str] = []
        self._drain = threading.Thread(target=self._read_stderr, daemon=True)
        self._drain.start()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._stderr.append(line)

    def wait_for(self, prefix: str, timeout: float = TIMEOUT) -> str:
        """The first stdout line starting with `prefix`."""
        deadline = time.monotonic() + timeout
        stdout: IO[str] = self.process.stdout  # type: ignore[assignment]
        while time.monotonic() < deadline:
            line = stdout.readline()
            if not line:
                self._drain.join(timeout=5)
                raise AssertionError(f"capsock exited before {prefix!r}: "
                                     f"{self.lines} {''.join(self._stderr)}")
            self.lines.append(line.rstrip("\n"))
            if line.startswith(prefix):
                return line.rstrip("\n")
        raise AssertionError(f"no {prefix!r} within {timeout}s: {self.lines}")

    def finish(self, timeout: float = TIMEOUT) -> tuple[int, str, str]:
        """Wait for exit; the rest of stdout, and all of stderr."""
        code = self.process.wait(timeout=timeout)
        assert self.process.stdout is not None
        out = self.process.stdout.read()
        self._drain.join(timeout=10)
        return code, out, "".join(self._stderr)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@dataclass
class NativeServer:
    """A native TCP server on loopback that records every connection.

    It answers each connection with the upper-cased bytes it received.
    """

    host: str = "127.0.0.1"
    connections: list[tuple[str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind((self.host, 0))
        self.sock.listen(16)
        self.port: int = self.sock.getsockname()[1]
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections.append(peer[:2])
            with conn:
                conn.settimeout(10)
                data = b""
                while chunk := conn.recv(65536):
                    data += chunk
                conn.sendall(data.upper())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def echo_roundtrip(port: int, payload: bytes, host: str = "127.0.0.1") -> bytes:
    """Send `payload` while reading the echo back concurrently."""
    with socket.create_connection((host, port), timeout=TIMEOUT) as conn:
        return echo_over(conn, payload, TIMEOUT)


def echo_over(conn: socket.socket, payload: bytes, timeout: float) -> bytes:
    """On a connected `conn`: send `payload` then half-close, from a thread,
    while reading everything the peer sends back until it closes."""
    def send() -> None:
        conn.sendall(payload)
        conn.shutdown(socket.SHUT_WR)
    sender = threading.Thread(target=send)
    sender.start()
    received = bytearray()
    while chunk := conn.recv(1 << 16):
        received += chunk
    sender.join(timeout=timeout)
    return bytes(received)
