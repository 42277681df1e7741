"""The OS backend: sockets are Python `socket` objects on the host."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import TypeVar

from ..addresses import SocketAddress
from ..errors import ErrorCode, NetError
from .errno_map import net_error

T = TypeVar("T")

#: Option names of the contract -> (level, optname) of `setsockopt`.
OPTIONS: dict[str, tuple[int, int]] = {
    "keep-alive": (socket.SOL_SOCKET, socket.SO_KEEPALIVE),
    "no-delay": (socket.IPPROTO_TCP, socket.TCP_NODELAY),
    "receive-buffer-size": (socket.SOL_SOCKET, socket.SO_RCVBUF),
    "send-buffer-size": (socket.SOL_SOCKET, socket.SO_SNDBUF),
    "reuse-address": (socket.SOL_SOCKET, socket.SO_REUSEADDR),
}


def _os_call(operation: Callable[[], T]) -> T:
    try:
        return operation()
    except OSError as error:
        raise net_error(error) from error


class OsStreamSocket:
    """A TCP socket of the host OS."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    @property
    def raw(self) -> socket.socket:
        return self._sock

    def bind(self, address: SocketAddress) -> None:
        _os_call(lambda: self._sock.bind(address.to_os()))

    def listen(self, backlog: int) -> None:
        _os_call(lambda: self._sock.listen(backlog))

    def accept(self) -> tuple[OsStreamSocket, SocketAddress]:
        conn, peer = _os_call(self._sock.accept)
        return OsStreamSocket(conn), SocketAddress.from_os(peer)

    def connect(self, address: SocketAddress) -> None:
        _os_call(lambda: self._sock.connect(address.to_os()))

    def receive(self, max_len: int, peek: bool) -> bytes:
        flags = socket.MSG_PEEK if peek else 0
        return _os_call(lambda: self._sock.recv(max_len, flags))

    def send(self, data: bytes) -> int:
        if self._sock.gettimeout() == 0.0:
            return _os_call(lambda: self._sock.send(data, socket.MSG_NOSIGNAL))
        _os_call(lambda: self._sock.sendall(data, socket.MSG_NOSIGNAL))
        return len(data)

    def shutdown(self, receive: bool, send: bool) -> None:
        if receive and send:
            how = socket.SHUT_RDWR
        else:
            how = socket.SHUT_RD if receive else socket.SHUT_WR
        _os_call(lambda: self._sock.shutdown(how))

    def local_address(self) -> SocketAddress:
        return SocketAddress.from_os(_os_call(self._sock.getsockname))

    def remote_address(self) -> SocketAddress:
        return SocketAddress.from_os(_os_call(self._sock.getpeername))

    def set_blocking(self, blocking: bool) -> None:
        self._sock.setblocking(blocking)

    def set_timeout(self, seconds: float | None) -> None:
        self._sock.settimeout(seconds)

    def get_option(self, name: str) -> int:
        level, optname = _option(name)
        if name == "hop-limit":
            level, optname = self._hop_limit_option()
        return int(_os_call(lambda: self._sock.getsockopt(level, optname)))

    def set_option(self, name: str, value: int) -> None:
        level, optname = _option(name)
        if name == "hop-limit":
            level, optname = self._hop_limit_option()
        _os_call(lambda: self._sock.setsockopt(level, optname, value))

    def _hop_limit_option(self) -> tuple[int, int]:
        if self._sock.family == socket.AF_INET6:
            return socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS
        return socket.IPPROTO_IP, socket.IP_TTL

    def fileno(self) -> int:
        return self._sock.fileno()

    def close(self) -> None:
        self._sock.close()


def _option(name: str) -> tuple[int, int]:
    if name == "hop-limit":
        return (0, 0)
    try:
        return OPTIONS[name]
    except KeyError:
        raise NetError(ErrorCode.NOT_SUPPORTED, f"option {name}") from None


class OsBackend:
    """Real sockets of the host OS."""

    def tcp_socket(self, ipv6: bool) -> OsStreamSocket:
        family = socket.AF_INET6 if ipv6 else socket.AF_INET
        sock = _os_call(lambda: socket.socket(family, socket.SOCK_STREAM))
        if ipv6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        return OsStreamSocket(sock)

    def adopt_tcp(self, sock: socket.socket) -> OsStreamSocket:
        """Wrap a socket the operator pre-opened."""
        return OsStreamSocket(sock)
