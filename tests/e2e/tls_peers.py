"""Native TLS peers on loopback for the TLS tests: Python's `ssl` with the
test PKI (`tests/tls_pki.py`), one thread per server.

Every server records the first bytes of each connection *before* any TLS
(`first_bytes`): a policy denial must leave a connection that never sent
a ClientHello (b"").
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable

from .peers import Peer

Handler = Callable[[socket.socket], None]


class TlsPeer(Peer):
    """A `Peer` (30 s per operation; every handler error is recorded) that
    first records the connection's first bytes, peeked, and runs `handler`
    only when there are any."""

    def __init__(self, handler: Handler) -> None:
        self.first_bytes: list[bytes] = []

        def peek_first(conn: socket.socket) -> None:
            try:
                first = conn.recv(5, socket.MSG_PEEK)
            except OSError:
                first = b""
            self.first_bytes.append(first)
            if first:
                handler(conn)
        super().__init__(peek_first, timeout=30, os_errors_count=True)


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
