"""Native TLS peers on loopback for the TLS tests: Python's `ssl` with the
test PKI (`tests/tls_pki.py`), one thread per server.

Every server records the first bytes of each connection *before* any TLS
(`first_bytes`): a policy denial must leave a connection that never sent
a ClientHello (b"").
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable

Handler = Callable[[socket.socket], None]


class TlsPeer:
    """Accepts on 127.0.0.1:<free port>; runs `handler` on each connection."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self.first_bytes: list[bytes] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                conn.settimeout(30)
                try:
                    first = conn.recv(5, socket.MSG_PEEK)
                except OSError:
                    first = b""
                self.first_bytes.append(first)
                if not first:
                    continue
                try:
                    self.handler(conn)
                except Exception as error:  # noqa: BLE001 - the test reads them
                    self.errors.append(error)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()

    def __enter__(self) -> TlsPeer:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()


def _read_until(sock: socket.socket, end: bytes) -> bytes:
    data = b""
    while end not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def https_handler(context: ssl.SSLContext, body: bytes) -> Handler:
    """An HTTPS server that answers every request with `body` and closes
    the connection without close_notify, as many servers do."""
    def handle(conn: socket.socket) -> None:
        tls = context.wrap_socket(conn, server_side=True)
        request = _read_until(tls, b"\r\n\r\n")
        path = request.split(b" ", 2)[1] if b" " in request else b"?"
        answer = body + b" " + path
        tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                    % (len(answer), answer))
        tls.close()
    return handle


def echo_handler(context: ssl.SSLContext) -> Handler:
    """Echo one TLS read back, then wait for the client's end."""
    def handle(conn: socket.socket) -> None:
        tls = context.wrap_socket(conn, server_side=True)
        tls.sendall(tls.recv(100))
        try:
            tls.recv(100)
        except (ssl.SSLError, OSError):
            pass
        tls.close()
    return handle


def starttls_handler(context: ssl.SSLContext) -> Handler:
    """A line protocol that switches to TLS on ``STARTTLS`` and back to
    plaintext when the client unwraps."""
    def handle(conn: socket.socket) -> None:
        assert _read_until(conn, b"\n") == b"STARTTLS\n"
        conn.sendall(b"ready\n")
        tls = context.wrap_socket(conn, server_side=True)
        line = _read_until(tls, b"\n")
        tls.sendall(b"got " + line)
        assert tls.recv(100) == b""  # the client's close_notify
        plain = tls.unwrap()
        line = _read_until(plain, b"\n")
        plain.sendall(b"plain " + line)
        plain.recv(100)
    return handle
