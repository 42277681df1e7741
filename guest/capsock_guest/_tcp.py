"""TCP: `TcpNetwork` (the capability), `TcpSocket`, `TcpListener`, `TcpStream`."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from componentize_py_types import Err
from wit_world.imports import socket as wsocket
from wit_world.imports import socket_tcp

from ._address import (
    Address,
    Family,
    family_from,
    family_of,
    format_address,
    from_wit,
    literal_to_wit,
    to_wit,
    with_port,
)
from ._errors import NetError, call
from ._lane import Receiver, send_bytes, splice
from ._poll import Pollable
from ._preopen import take_preopens
from ._resolve import resolver

if TYPE_CHECKING:
    from ._loop import SocketState

__all__ = [
    "TcpNetwork", "TcpSocket", "TcpListener", "TcpStream", "IncompleteRead",
    "tcp_network", "listen", "connect", "preopened_tcp_listeners",
]

ShutdownHow = str | int | socket_tcp.ShutdownType
_S = TypeVar("_S", bound="TcpSocket")

_SHUTDOWN = {
    "receive": socket_tcp.ShutdownType.RECEIVE, "read": socket_tcp.ShutdownType.RECEIVE,
    "send": socket_tcp.ShutdownType.SEND, "write": socket_tcp.ShutdownType.SEND,
    "both": socket_tcp.ShutdownType.BOTH,
    0: socket_tcp.ShutdownType.RECEIVE,  # socket.SHUT_RD
    1: socket_tcp.ShutdownType.SEND,  # socket.SHUT_WR
    2: socket_tcp.ShutdownType.BOTH,  # socket.SHUT_RDWR
}


class IncompleteRead(EOFError):
    """`recv_exact` hit end of stream; ``partial`` holds what arrived."""

    def __init__(self, partial: bytes, expected: int) -> None:
        super().__init__(f"{len(partial)} bytes read, {expected} expected")
        self.partial = partial
        self.expected = expected


class TcpSocket:
    """A TCP socket; every failure raises `NetError`.

    States (see wit/socket-tcp.wit): unbound -> bound -> listening, or
    unbound/bound -> connected. Closing drops the host handle; using a
    closed socket raises ``NetError("invalid-state")``.
    """

    #: The pre-open name (``--tcplisten`` value), or None.
    name: str | None

    def __init__(self, raw: socket_tcp.TcpSocket, name: str | None = None) -> None:
        self._raw: socket_tcp.TcpSocket | None = raw
        self._receiver = Receiver()
        self.name = name
        #: `Loop`'s state for this socket (its pollables); the loop's alone.
        self.loop_state: SocketState | None = None

    @classmethod
    def from_preopened(cls: type[_S], raw: wsocket.Socket, name: str | None = None) -> _S:
        """Adopt a pre-opened socket handle (see `preopened_sockets`)."""
        return cls(call(socket_tcp.TcpSocket.from_socket, raw), name)

    @property
    def raw(self) -> socket_tcp.TcpSocket:
        """The generated binding's handle (for what this class does not wrap)."""
        if self._raw is None:
            raise NetError("invalid-state", "socket is closed")
        return self._raw

    @property
    def closed(self) -> bool:
        return self._raw is None

    @property
    def family(self) -> wsocket.IpAddressFamily:
        return self.raw.address_family()

    # -- set-up --------------------------------------------------------

    def bind(self, address: Address | wsocket.IpSocketAddress) -> None:
        call(self.raw.bind, to_wit(address))

    def listen(self, backlog: int = 128) -> None:
        call(self.raw.listen, backlog)

    def accept(self) -> tuple[TcpStream, Address]:
        """Wait for a connection: ``(stream, peer address)``."""
        raw, peer = call(self.raw.accept)
        return TcpStream(raw), from_wit(peer)

    def connect(self, address: Address | wsocket.IpSocketAddress) -> None:
        call(self.raw.connect, to_wit(address))

    # -- data ------------------------------------------------------------

    # send and recv are the hot path: they call the binding inline rather
    # than through `raw` and `call` (each Python frame costs ~0.5 us in
    # wasm). Bytes cross on the latin-1 or the hex lane (see _lane.py).

    def send(self, data: bytes | bytearray | memoryview) -> int:
        """Send bytes; returns how many were sent (all of them when blocking)."""
        raw = self._raw
        if raw is None:
            raise NetError("invalid-state", "socket is closed")
        try:
            return send_bytes(raw, data)
        except Err as e:
            raise NetError.from_err(e) from None

    def sendall(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        raw = self.raw
        while view:
            sent = call(send_bytes, raw, view)
            view = view[sent:]

    def recv(self, bufsize: int) -> bytes:
        """Up to ``bufsize`` bytes; ``b""`` means the peer closed its side."""
        raw = self._raw
        if raw is None:
            raise NetError("invalid-state", "socket is closed")
        try:
            return self._receiver.receive(raw, bufsize)
        except Err as e:
            raise NetError.from_err(e) from None

    def peek(self, bufsize: int) -> bytes:
        return call(self.raw.peek, bufsize)

    def recv_exact(self, n: int) -> bytes:
        """Exactly ``n`` bytes, or `IncompleteRead` at end of stream."""
        parts: list[bytes] = []
        need = n
        raw = self.raw
        while need > 0:
            chunk = call(self._receiver.receive, raw, need)
            if not chunk:
                raise IncompleteRead(b"".join(parts), n)
            parts.append(chunk)
            need -= len(chunk)
        return b"".join(parts)

    def recv_all(self, chunk_size: int = 65536) -> bytes:
        """Everything until the peer closes its sending side."""
        parts: list[bytes] = []
        raw = self.raw
        while True:
            chunk = call(self._receiver.receive, raw, chunk_size)
            if not chunk:
                return b"".join(parts)
            parts.append(chunk)

    def splice(self, target: TcpSocket, max_len: int = 1 << 62) -> int:
        """Move up to ``max_len`` received bytes to ``target`` inside the host.

        The bytes never enter the guest (a proxy or echo at OS speed);
        ``target`` may be this socket. Returns the count, 0 at end of
        stream. Blocking: waits, then moves until ``max_len`` or end of
        stream; non-blocking: moves what can move now (see the WIT).
        """
        return call(splice, self.raw, target.raw, max_len)

    def shutdown(self, how: ShutdownHow = "send") -> None:
        """``"send"`` / ``"receive"`` / ``"both"`` (or ``socket.SHUT_*``)."""
        kind = how if isinstance(how, socket_tcp.ShutdownType) else _SHUTDOWN.get(how)
        if kind is None:
            raise NetError("invalid-argument", f"bad shutdown direction {how!r}")
        call(self.raw.shutdown, kind)

    # -- queries and options ------------------------------------------------

    def local_address(self) -> Address:
        return from_wit(call(self.raw.local_address))

    def remote_address(self) -> Address:
        return from_wit(call(self.raw.remote_address))

    getsockname = local_address
    getpeername = remote_address

    def is_listening(self) -> bool:
        return self.raw.is_listening()

    def option(self, name: str) -> Any:
        """Any option of the contract by its WIT name (``"no-delay"``,
        ``"keep-alive-idle-time"``, ...): a flag is a bool, a duration in
        nanoseconds. A name the contract lacks raises AttributeError."""
        return call(getattr(self.raw, name.replace("-", "_")))

    def set_option(self, name: str, value: Any) -> None:
        """Set an option by its WIT name (see `option`)."""
        call(getattr(self.raw, "set_" + name.replace("-", "_")), value)

    def set_blocking(self, flag: bool) -> None:
        call(self.raw.set_blocking, flag)

    def set_timeout(self, seconds: float | None) -> None:
        """Timeout for blocking calls; None waits forever."""
        call(self.raw.set_timeout, None if seconds is None else max(1, int(seconds * 1e9)))

    def set_no_delay(self, flag: bool) -> None:
        call(self.raw.set_no_delay, flag)

    def set_keep_alive(self, flag: bool) -> None:
        call(self.raw.set_keep_alive_enabled, flag)

    def set_reuse_address(self, flag: bool) -> None:
        call(self.raw.set_reuse_address, flag)

    def subscribe(self, readiness: str = "readable") -> Pollable:
        """A pollable for ``"readable"`` or ``"writable"`` (see `poll`)."""
        return Pollable(self.raw.subscribe(wsocket.Readiness[readiness.upper()]))

    # -- lifetime ------------------------------------------------------------

    def close(self) -> None:
        """Drop the host handle (idempotent)."""
        raw, self._raw = self._raw, None
        if raw is not None:
            raw.__exit__(None, None, None)

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        if self._raw is None:
            return f"<{type(self).__name__} closed>"
        try:
            where = format_address(self.local_address())
        except NetError:
            where = "unbound"
        extra = f" name={self.name!r}" if self.name else ""
        return f"<{type(self).__name__} {where}{extra}>"


class TcpListener(TcpSocket):
    """A listening TCP socket (from `listen` or a pre-open)."""

    def __iter__(self) -> TcpListener:
        return self

    def __next__(self) -> tuple[TcpStream, Address]:
        return self.accept()


class TcpStream(TcpSocket):
    """A connected TCP socket (from `connect` or `accept`)."""


class TcpNetwork:
    """The capability to create TCP sockets (`tcp-capable-network`)."""

    def __init__(self, raw: socket_tcp.TcpCapableNetwork) -> None:
        self.raw = raw

    def socket(self, family: Family = "ipv4") -> TcpSocket:
        """An unbound socket of ``"ipv4"`` or ``"ipv6"``."""
        return TcpSocket(call(self.raw.create_tcp_socket, family_from(family)))

    def listen(self, address: Address, backlog: int = 128) -> TcpListener:
        """Bind and listen on an IP address (port 0: any free port)."""
        wit = to_wit(address)
        sock = TcpListener(call(self.raw.create_tcp_socket, family_of(wit)))
        try:
            sock.bind(wit)
            sock.listen(backlog)
        except BaseException:
            sock.close()
            raise
        return sock

    def connect(self, address: Address) -> TcpStream:
        """Connect to ``(host, port)``; a host name is resolved first
        (through `resolve`) and each of its addresses tried in turn."""
        literal = literal_to_wit(address)
        if literal is not None:
            targets = [literal]
        else:
            port = address[1]
            targets = [with_port(ip, port) for ip in resolver().resolve_wit(address[0])]
        last: NetError | None = None
        for target in targets:
            sock = TcpStream(call(self.raw.create_tcp_socket, family_of(target)))
            try:
                sock.connect(target)
                return sock
            except NetError as e:
                sock.close()
                last = e
            except BaseException:
                sock.close()
                raise
        assert last is not None
        raise last

    def restrict(self, rules: list[str]) -> TcpNetwork:
        """A narrower capability, e.g. ``["allow-outbound=tcp://10.0.0.1:80"]``."""
        return TcpNetwork(call(self.raw.restrict, rules))


_network: TcpNetwork | None = None


def tcp_network() -> TcpNetwork:
    """The instance's TCP capability; ``NetError("access-denied")`` when the
    host grants no TCP network (pre-opened sockets still work)."""
    global _network
    if _network is None:
        raw = socket_tcp.network()
        if raw is None:
            raise NetError("access-denied", "the host grants no TCP network")
        _network = TcpNetwork(raw)
    return _network


def listen(address: Address, backlog: int = 128) -> TcpListener:
    """`tcp_network().listen(...)`."""
    return tcp_network().listen(address, backlog)


def connect(address: Address) -> TcpStream:
    """`tcp_network().connect(...)`."""
    return tcp_network().connect(address)


def preopened_tcp_listeners() -> list[TcpListener]:
    """The unclaimed pre-opened TCP sockets (``--tcplisten``), ready for
    `accept`; each has its pre-open ``name``."""
    return [TcpListener.from_preopened(raw, name)
            for name, raw in take_preopens("tcp")]
