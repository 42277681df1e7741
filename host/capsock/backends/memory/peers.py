"""In-process peers: Python code on the same virtual network as a guest.

Made by :meth:`VirtualNetwork.listen`, :meth:`~VirtualNetwork.connect`
and :meth:`~VirtualNetwork.udp_bind`: that is how tests drive guests
without sockets, and how an embedder routes a guest's TCP to an
in-process service.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Self

from ...addresses import MAX_DATAGRAM, SocketAddress, parse_host_port
from ...errors import NetError
from ..base import Closable
from .datagram import MemoryDatagramSocket
from .stream import MemoryStreamSocket

AddressLike = SocketAddress | str | tuple[str, int]


def to_address(address: AddressLike) -> SocketAddress:
    """`"127.0.0.1:80"`, `"[::1]:80"`, `("10.0.0.5", 80)` or a SocketAddress."""
    if isinstance(address, SocketAddress):
        return address
    if isinstance(address, str):
        return parse_host_port(address)
    host, port = address
    return SocketAddress(ipaddress.ip_address(host), int(port))


class _Peer:
    """An in-process peer's socket: closed by `close` or a `with` block."""

    sock: Closable

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class VirtualConnection(_Peer):
    """An in-process peer's end of a virtual TCP connection.

    Blocking calls wait at most `timeout` seconds (None: forever) and
    raise :class:`NetError` (`timeout`, `connection-reset`...).
    """

    def __init__(self, sock: MemoryStreamSocket, timeout: float | None) -> None:
        self.sock: MemoryStreamSocket = sock
        sock.set_timeout(timeout)

    @property
    def local_address(self) -> SocketAddress:
        return self.sock.local_address()

    @property
    def remote_address(self) -> SocketAddress:
        return self.sock.remote_address()

    def send(self, data: bytes) -> int:
        return self.sock.send(data)

    def sendall(self, data: bytes) -> None:
        self.sock.send(data)  # a blocking send sends everything

    def recv(self, max_len: int = 65536) -> bytes:
        """Up to `max_len` bytes; b"" at end of stream."""
        return self.sock.receive(max_len, False)

    def recv_all(self) -> bytes:
        """Everything until the peer shuts its side down."""
        chunks = []
        while chunk := self.recv(1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)

    def shutdown_write(self) -> None:
        """Send end of stream (FIN); the other direction stays open."""
        self.sock.shutdown(False, True)


class VirtualListener(_Peer):
    """An in-process service's listening socket on a virtual network."""

    def __init__(self, sock: MemoryStreamSocket, timeout: float | None) -> None:
        self.sock: MemoryStreamSocket = sock
        self.timeout = timeout

    @property
    def address(self) -> SocketAddress:
        return self.sock.local_address()

    def accept(self) -> tuple[VirtualConnection, SocketAddress]:
        """The next connection and its peer, within the listener's timeout."""
        self.sock.set_timeout(self.timeout)
        conn, peer = self.sock.accept()
        return VirtualConnection(conn, self.timeout), peer

    def serve(self, handler: Callable[[VirtualConnection], None],
              name: str = "virtual-service") -> threading.Thread:
        """Accept forever in a daemon thread, calling `handler` for each
        connection (one at a time; start threads inside for more). Ends
        when the listener is closed."""

        def loop() -> None:
            while True:
                try:
                    self.sock.set_timeout(None)
                    conn, _ = self.sock.accept()
                except NetError:
                    return
                with VirtualConnection(conn, self.timeout) as peer:
                    try:
                        handler(peer)
                    except NetError:
                        pass

        thread = threading.Thread(target=loop, name=name, daemon=True)
        thread.start()
        return thread


class VirtualDatagram(_Peer):
    """An in-process peer's UDP socket on a virtual network."""

    def __init__(self, sock: MemoryDatagramSocket) -> None:
        self.sock: MemoryDatagramSocket = sock

    @property
    def address(self) -> SocketAddress:
        return self.sock.local_address()

    def sendto(self, data: bytes, address: AddressLike) -> int:
        return self.sock.send(data, to_address(address))

    def recvfrom(self, max_len: int = MAX_DATAGRAM) -> tuple[bytes, SocketAddress]:
        return self.sock.receive(max_len, False)
