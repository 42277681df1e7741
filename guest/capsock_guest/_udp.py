"""UDP: `UdpNetwork` (the capability) and `UdpSocket`."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from wit_world.imports import socket as wsocket
from wit_world.imports import socket_udp

from ._address import Address, Family, family_from, family_of, from_wit, to_wit
from ._errors import NetError, call
from ._lane import Receiver, send_datagram
from ._poll import Pollable
from ._preopen import take_preopens

if TYPE_CHECKING:
    from ._loop import SocketState

__all__ = ["UdpNetwork", "UdpSocket", "udp_network", "preopened_udp_sockets"]

_U = TypeVar("_U", bound="UdpSocket")
Bytes = bytes | bytearray | memoryview


class UdpSocket:
    """A UDP socket; every failure raises `NetError`.

    ``recvfrom`` only ever returns datagrams from senders the host's policy
    lets this socket talk to (others are dropped by the host), and the
    sender is ``("192.0.0.8", 0)`` / ``("100::", 0, 0, 0)`` when the host
    hides peers (``--peer-address=hidden``).
    """

    name: str | None

    def __init__(self, raw: socket_udp.UdpSocket, name: str | None = None) -> None:
        self._raw: socket_udp.UdpSocket | None = raw
        self.name = name
        self._receiver = Receiver()
        #: `Loop`'s state for this socket (its pollables); the loop's alone.
        self.loop_state: SocketState | None = None

    @classmethod
    def from_preopened(cls: type[_U], raw: wsocket.Socket, name: str | None = None) -> _U:
        return cls(call(socket_udp.UdpSocket.from_socket, raw), name)

    @property
    def raw(self) -> socket_udp.UdpSocket:
        if self._raw is None:
            raise NetError("invalid-state", "socket is closed")
        return self._raw

    @property
    def closed(self) -> bool:
        return self._raw is None

    @property
    def family(self) -> wsocket.IpAddressFamily:
        return self.raw.address_family()

    def bind(self, address: Address | wsocket.IpSocketAddress) -> None:
        call(self.raw.bind, to_wit(address))

    def connect(self, address: Address) -> None:
        call(self.raw.connect, to_wit(address))

    def disconnect(self) -> None:
        call(self.raw.disconnect)

    def send(self, data: Bytes) -> int:
        """Send one datagram to the connected peer."""
        return call(send_datagram, self.raw, data, None)

    def sendto(self, data: Bytes, address: Address) -> int:
        return call(send_datagram, self.raw, data, to_wit(address))

    def recvfrom(self, bufsize: int) -> tuple[bytes, Address]:
        data, sender = call(self._receiver.receive_datagram, self.raw, bufsize)
        return data, from_wit(sender)

    def recv(self, bufsize: int) -> bytes:
        return call(self._receiver.receive_datagram, self.raw, bufsize)[0]

    def peekfrom(self, bufsize: int) -> tuple[bytes, Address]:
        """Like `recvfrom`, but the datagram stays queued (``MSG_PEEK``)."""
        d = call(self.raw.peek, bufsize)
        return d.data, from_wit(d.remote_address)

    @property
    def hop_limit(self) -> int:
        return call(self.raw.hop_limit)

    @hop_limit.setter
    def hop_limit(self, value: int) -> None:
        call(self.raw.set_hop_limit, value)

    def local_address(self) -> Address:
        return from_wit(call(self.raw.local_address))

    def remote_address(self) -> Address:
        return from_wit(call(self.raw.remote_address))

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
        call(self.raw.set_timeout, None if seconds is None else max(1, int(seconds * 1e9)))

    def subscribe(self, readiness: str = "readable") -> Pollable:
        return Pollable(self.raw.subscribe(wsocket.Readiness[readiness.upper()]))

    def close(self) -> None:
        raw, self._raw = self._raw, None
        if raw is not None:
            raw.__exit__(None, None, None)

    def __enter__(self: _U) -> _U:
        return self

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class UdpNetwork:
    """The capability to create UDP sockets (`udp-capable-network`)."""

    def __init__(self, raw: socket_udp.UdpCapableNetwork) -> None:
        self.raw = raw

    def socket(self, family: Family = "ipv4") -> UdpSocket:
        return UdpSocket(call(self.raw.create_udp_socket, family_from(family)))

    def bind(self, address: Address) -> UdpSocket:
        wit = to_wit(address)
        sock = UdpSocket(call(self.raw.create_udp_socket, family_of(wit)))
        try:
            sock.bind(wit)
        except BaseException:
            sock.close()
            raise
        return sock

    def restrict(self, rules: list[str]) -> UdpNetwork:
        return UdpNetwork(call(self.raw.restrict, rules))


_network: UdpNetwork | None = None


def udp_network() -> UdpNetwork:
    """The instance's UDP capability; ``NetError("access-denied")`` if none."""
    global _network
    if _network is None:
        raw = socket_udp.network()
        if raw is None:
            raise NetError("access-denied", "the host grants no UDP network")
        _network = UdpNetwork(raw)
    return _network


def preopened_udp_sockets() -> list[UdpSocket]:
    """The unclaimed pre-opened UDP sockets (``--udpbind``)."""
    return [UdpSocket.from_preopened(raw, name)
            for name, raw in take_preopens("udp")]
