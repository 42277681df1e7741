"""Small loopback peers for the limits, teardown and hostile-network tests.

Every peer runs one daemon thread with bounded waits and records what it
saw; `close` stops it within a second.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable


class Peer:
    """A TCP server on 127.0.0.1 that runs `handler(conn)` per connection,
    one at a time (the tests need no concurrency), each with `timeout` s
    per socket operation. An `OSError` in the handler is the guest going
    away, which most of these tests do on purpose, unless
    `os_errors_count`: then it goes to `errors` like any other."""

    def __init__(self, handler: Callable[[socket.socket], None], timeout: float = 5,
                 os_errors_count: bool = False) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.accepted = 0
        self.errors: list[BaseException] = []
        self._handler = handler
        self._timeout = timeout
        self._os_errors_count = os_errors_count
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            with conn:
                conn.settimeout(self._timeout)
                try:
                    self._handler(conn)
                except OSError as error:
                    if self._os_errors_count:
                        self.errors.append(error)
                    # else: the guest went away, as these tests make it do
                except BaseException as error:  # noqa: BLE001 - reported by the test
                    self.errors.append(error)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()

    def __enter__(self) -> Peer:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()


def drain(conn: socket.socket) -> None:
    """Read until the guest closes (or 5 s pass)."""
    while conn.recv(65536):
        pass


def blast(size: int) -> Callable[[socket.socket], None]:
    """Send `size` bytes at once, then read until the guest closes."""
    def handler(conn: socket.socket) -> None:
        conn.sendall(b"z" * size)
        drain(conn)
    return handler


def echo(conn: socket.socket) -> None:
    while data := conn.recv(65536):
        conn.sendall(data)
