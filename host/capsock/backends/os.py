"""The OS backend: sockets are Python `socket` objects on the host."""

from __future__ import annotations

import ctypes
import errno
import os
import select
import socket
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

from .._log import log
from ..addresses import MAX_DATAGRAM, SocketAddress
from ..errors import ErrorCode, NetError
from .base import DatagramSocket, StreamSocket, set_up_or_close
from .errno_map import net_error
from .options import REUSE_ADDRESS, SocketOption
from .resolvers import SystemResolver

T = TypeVar("T")
_MSG_PEEK = socket.MSG_PEEK
_MSG_NOSIGNAL = socket.MSG_NOSIGNAL



def _shut_down_error() -> NetError:
    """A UDP receive on a socket the host shut down."""
    return NetError(ErrorCode.CONNECTION_ABORTED, "the host shut this socket down")


def _os_call(operation: Callable[[], T]) -> T:
    try:
        return operation()
    except OSError as error:
        raise net_error(error) from error


class _OsSocket:
    """What TCP and UDP sockets of the host OS share."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    @property
    def raw(self) -> socket.socket:
        return self._sock

    def bind(self, address: SocketAddress) -> None:
        _os_call(lambda: self._sock.bind(address.to_os()))

    def connect(self, address: SocketAddress) -> None:
        _os_call(lambda: self._sock.connect(address.to_os()))

    def local_address(self) -> SocketAddress:
        return SocketAddress.from_os(_os_call(self._sock.getsockname))

    def remote_address(self) -> SocketAddress:
        return SocketAddress.from_os(_os_call(self._sock.getpeername))

    def set_blocking(self, blocking: bool) -> None:
        self._sock.setblocking(blocking)

    def set_timeout(self, seconds: float | None) -> None:
        self._sock.settimeout(seconds)

    def get_option(self, option: SocketOption) -> int:
        """`getsockopt` with the option's (level, optname) for this family;
        durations come back from seconds."""
        level, optname = option.os_name(self._sock.family == socket.AF_INET6)
        return int(_os_call(lambda: self._sock.getsockopt(level, optname))) * option.unit

    def set_option(self, option: SocketOption, value: int) -> None:
        level, optname = option.os_name(self._sock.family == socket.AF_INET6)
        os_value = -(-value // option.unit)  # durations in whole seconds, rounded up
        _os_call(lambda: self._sock.setsockopt(level, optname, os_value))

    def fileno(self) -> int:
        return self._sock.fileno()

    def close(self) -> None:
        self._sock.close()


class OsStreamSocket(_OsSocket):
    """A TCP socket of the host OS."""

    #: A listener's (family, type, proto), for the sockets it accepts.
    _numbers: tuple[int, int, int] | None = None

    def listen(self, backlog: int) -> None:
        _os_call(lambda: self._sock.listen(backlog))

    def accept(self) -> tuple[OsStreamSocket, SocketAddress]:
        """`socket.accept`, less its Python wrapper's per-call lookups of
        the family and type (each an enum conversion): the same `accept4`
        and the same socket object, made from the listener's numbers."""
        listener = self._sock
        try:
            fd, peer = listener._accept()  # type: ignore[attr-defined]
        except OSError as error:
            raise net_error(error) from error
        numbers = self._numbers
        if numbers is None:
            numbers = self._numbers = (int(listener.family), int(listener.type), listener.proto)
        conn = socket.socket(*numbers, fd)
        if socket.getdefaulttimeout() is None and listener.gettimeout():
            conn.setblocking(True)  # as socket.accept: never inherit a timeout
        return OsStreamSocket(conn), SocketAddress.from_os(peer)

    # receive and send are every byte's path (a host call each): the
    # OSError mapping of `_os_call` is written out, which spares a closure
    # and two frames per call.

    def receive(self, max_len: int, peek: bool) -> bytes:
        try:
            return self._sock.recv(max_len, _MSG_PEEK if peek else 0)
        except OSError as error:
            raise net_error(error) from error

    def send(self, data: bytes) -> int:
        sock = self._sock
        try:
            if sock.gettimeout() == 0.0:
                return sock.send(data, _MSG_NOSIGNAL)
            sock.sendall(data, _MSG_NOSIGNAL)
        except OSError as error:
            raise net_error(error) from error
        return len(data)

    def shutdown(self, receive: bool, send: bool) -> None:
        if receive and send:
            how = socket.SHUT_RDWR
        else:
            how = socket.SHUT_RD if receive else socket.SHUT_WR
        _os_call(lambda: self._sock.shutdown(how))


#: The largest UDP payload; a receive never needs a bigger buffer.


class _SockaddrUnspec(ctypes.Structure):
    _fields_ = [("family", ctypes.c_ushort), ("data", ctypes.c_char * 26)]


_libc: ctypes.CDLL | None = None


def _connect_unspec(fd: int) -> None:
    """`connect(fd, {AF_UNSPEC})`, which Python's socket module cannot
    express: it dissolves a UDP socket's association with its peer."""
    global _libc
    if _libc is None:
        # The process's own symbols include libc's; ctypes.util.find_library
        # would run ldconfig and cost every start ~15 ms of imports.
        _libc = ctypes.CDLL(None, use_errno=True)
    address = _SockaddrUnspec(socket.AF_UNSPEC)
    if _libc.connect(fd, ctypes.byref(address), ctypes.sizeof(address)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


class OsDatagramSocket(_OsSocket):
    """A UDP socket of the host OS."""

    def disconnect(self) -> None:
        try:
            _connect_unspec(self._sock.fileno())
        except OSError as error:
            # Linux reports EAFNOSUPPORT on some kernels after a successful
            # disconnect of an IPv6 socket; the association is gone anyway.
            if error.errno != errno.EAFNOSUPPORT:
                raise net_error(error) from error

    def send(self, data: bytes, address: SocketAddress | None) -> int:
        if address is None:
            return _os_call(lambda: self._sock.send(data))
        return _os_call(lambda: self._sock.sendto(data, address.to_os()))

    def receive(self, max_len: int, peek: bool) -> tuple[bytes, SocketAddress]:
        flags = socket.MSG_PEEK if peek else 0
        try:
            data, sender = self._sock.recvfrom(min(max_len, MAX_DATAGRAM), flags)
        except OSError as error:
            if isinstance(error, (BlockingIOError, TimeoutError)) and self._shut_down():
                raise _shut_down_error() from error
            raise net_error(error) from error
        if sender is None:  # a blocking receive on a shut-down socket returns at once
            raise _shut_down_error()
        return data, SocketAddress.from_os(sender)

    def _shut_down(self) -> bool:
        """Whether the socket was `shutdown(2)` (by `capsock serve` at a
        graceful stop). Linux then reports it readable, yet every receive
        would block: without this check a guest waiting for datagrams would
        spin forever instead of learning that the socket is gone."""
        poller = select.poll()
        poller.register(self._sock.fileno(), select.POLLIN)
        hangup = select.POLLHUP | getattr(select, "POLLRDHUP", 0)
        return any(events & hangup for _fd, events in poller.poll(0))


class OsBackend:
    """Real sockets of the host OS."""

    def tcp_socket(self, ipv6: bool) -> OsStreamSocket:
        family = socket.AF_INET6 if ipv6 else socket.AF_INET
        sock = _os_call(lambda: socket.socket(family, socket.SOCK_STREAM))
        if ipv6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        return OsStreamSocket(sock)

    def interrupt(self, sock: StreamSocket | DatagramSocket,
                  shared: bool) -> Callable[[], None] | None:
        """`shutdown(2)` the socket: a blocked `accept`, `recv`, `poll`,
        `connect` or `send` returns an error at once.

        A dup shares its socket, so a shared TCP listener stops listening
        for the embedder too: the returned restore makes it listen again
        (bound again to the same address if the kernel released an
        ephemeral port). Connections queued at the kill are reset.
        """
        if not isinstance(sock, _OsSocket):
            raise NetError(ErrorCode.INVALID_ARGUMENT, "not a socket of this backend")
        raw = sock.raw
        restore: Callable[[], None] | None = None
        if shared:
            address = _listening_address(raw)
            if address is not None:
                restore = partial(_relisten, raw, address)
        try:
            raw.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # never connected, or already closed: nothing blocks on it
        return restore

    def adopt_tcp(self, sock: socket.socket) -> OsStreamSocket:
        """Wrap a socket the operator pre-opened."""
        return OsStreamSocket(sock)

    def udp_socket(self, ipv6: bool) -> OsDatagramSocket:
        family = socket.AF_INET6 if ipv6 else socket.AF_INET
        sock = _os_call(lambda: socket.socket(family, socket.SOCK_DGRAM))
        if ipv6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        return OsDatagramSocket(sock)

    def adopt_udp(self, sock: socket.socket) -> OsDatagramSocket:
        """Wrap a bound UDP socket the operator pre-opened."""
        return OsDatagramSocket(sock)

    def open_listener(self, address: SocketAddress, backlog: int) -> OsStreamSocket:
        """Bind and listen with SO_REUSEADDR (a restarted host gets its port
        back at once) and IPV6_V6ONLY (`[::]` never captures IPv4)."""
        sock = self.tcp_socket(address.is_ipv6)
        return set_up_or_close(
            sock, lambda: sock.set_option(REUSE_ADDRESS, 1),
            lambda: sock.bind(address), lambda: sock.listen(backlog))

    def open_udp(self, address: SocketAddress) -> OsDatagramSocket:
        sock = self.udp_socket(address.is_ipv6)
        return set_up_or_close(sock, lambda: sock.bind(address))

    def poll(self, waits: Sequence[tuple[StreamSocket | DatagramSocket, bool]],
             timeout: float | None) -> list[int]:
        """poll(2) over the sockets' descriptors: no busy loop. A closed
        socket (no descriptor) is ready at once; POLLERR/POLLHUP/POLLNVAL
        count as ready for either direction."""
        poller = select.poll()
        ready: list[int] = []
        by_fd: dict[int, list[int]] = {}
        for index, (sock, _) in enumerate(waits):
            fd = _fileno(sock)
            if fd < 0:
                ready.append(index)
                continue
            by_fd.setdefault(fd, []).append(index)
        if ready:
            timeout = 0.0
        if by_fd:
            # One registration per descriptor: a socket polled for both
            # directions registers the union of its events.
            for fd, indexes in by_fd.items():
                events = 0
                for index in indexes:
                    events |= select.POLLIN if waits[index][1] else select.POLLOUT
                poller.register(fd, events)
            millis = None if timeout is None else max(0, int(timeout * 1000))
            failed = select.POLLERR | select.POLLHUP | select.POLLNVAL
            for fd, events in poller.poll(millis):
                for index in by_fd.get(fd, []):
                    wanted = select.POLLIN if waits[index][1] else select.POLLOUT
                    if events & (wanted | failed):
                        ready.append(index)
        return sorted(set(ready))

    def default_resolver(self) -> SystemResolver:
        return SystemResolver()


def _fileno(sock: StreamSocket | DatagramSocket) -> int:
    """The descriptor, or -1 once the socket is closed."""
    try:
        return int(sock.fileno())
    except (OSError, ValueError):
        return -1


#: The backlog a restored shared listener gets (the kernel cannot tell what
#: the embedder chose; this is `TcpListenSpec`'s default).
RESTORED_BACKLOG = 128


def _listening_address(raw: socket.socket) -> tuple[Any, ...] | None:
    """The bound address of a listening TCP socket, else None."""
    try:
        listening = raw.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        address: tuple[Any, ...] = raw.getsockname()
    except OSError:
        return None
    return address if listening and raw.type == socket.SOCK_STREAM else None


def _relisten(raw: socket.socket, address: tuple[Any, ...]) -> None:
    """Make a shared listener listen again after `interrupt`'s `shutdown(2)`.

    Linux keeps a fixed port through the shutdown but releases an
    ephemeral one (bound with port 0); binding to the same address again
    takes it back (EINVAL: still bound, fine).
    """
    if raw.fileno() < 0:
        return
    try:
        raw.bind(address)
    except OSError:
        pass
    try:
        raw.listen(RESTORED_BACKLOG)
        now = raw.getsockname()
    except OSError as error:
        log.warning("capsock: cannot listen again on %s after a kill: %s", address, error)
        return
    if now != address:  # someone took the released port meanwhile
        log.warning("capsock: the listener on %s listens on %s after a kill", address, now)
