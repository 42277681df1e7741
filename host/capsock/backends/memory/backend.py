"""The :class:`~capsock.backends.base.Backend` adapter over a virtual network."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from ...addresses import SocketAddress
from ...errors import ErrorCode, NetError
from ..base import DatagramSocket, StreamSocket, set_up_or_close
from .datagram import MemoryDatagramSocket
from .network import MemoryResolver, VirtualNetwork
from .stream import MemoryStreamSocket


class MemoryBackend:
    """The :class:`~capsock.backends.base.Backend` of a virtual network.

    Pre-opens (`--tcplisten`, `--udpbind`) are virtual sockets made by
    `open_listener` / `open_udp` on the network's local addresses; OS
    sockets cannot be adopted. `poll` waits on the network's condition.
    """

    def __init__(self, network: VirtualNetwork | None = None) -> None:
        self.network = network if network is not None else VirtualNetwork()

    def tcp_socket(self, ipv6: bool) -> MemoryStreamSocket:
        return MemoryStreamSocket(self.network, ipv6)

    def udp_socket(self, ipv6: bool) -> MemoryDatagramSocket:
        return MemoryDatagramSocket(self.network, ipv6)

    def adopt_tcp(self, sock: object) -> StreamSocket:
        raise NetError(ErrorCode.NOT_SUPPORTED,
                       "the in-memory backend cannot adopt an OS socket: use open_listener")

    def adopt_udp(self, sock: object) -> DatagramSocket:
        raise NetError(ErrorCode.NOT_SUPPORTED,
                       "the in-memory backend cannot adopt an OS socket: use open_udp")

    def interrupt(self, sock: StreamSocket | DatagramSocket,
                  shared: bool) -> Callable[[], None] | None:
        """Close the socket: closing wakes its waiters on the network's
        condition. Virtual sockets are never dups, so nothing to restore."""
        if not isinstance(sock, (MemoryStreamSocket, MemoryDatagramSocket)):
            raise NetError(ErrorCode.INVALID_ARGUMENT, "not a socket of this backend")
        sock.close()
        return None

    def open_listener(self, address: SocketAddress, backlog: int) -> MemoryStreamSocket:
        sock = self.tcp_socket(address.is_ipv6)
        return set_up_or_close(sock, lambda: sock.bind(address), lambda: sock.listen(backlog))

    def open_udp(self, address: SocketAddress) -> MemoryDatagramSocket:
        sock = self.udp_socket(address.is_ipv6)
        return set_up_or_close(sock, lambda: sock.bind(address))

    def poll(self, waits: Sequence[tuple[StreamSocket | DatagramSocket, bool]],
             timeout: float | None) -> list[int]:
        """Wait on the network's condition until an entry is ready."""
        endpoints: list[tuple[MemoryStreamSocket | MemoryDatagramSocket, bool]] = []
        for sock, readable in waits:
            if not isinstance(sock, (MemoryStreamSocket, MemoryDatagramSocket)):
                raise NetError(ErrorCode.INVALID_ARGUMENT, "not a socket of this backend")
            if sock.network is not self.network:
                raise NetError(ErrorCode.INVALID_ARGUMENT, "a socket of another network")
            endpoints.append((sock, readable))
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.network.cond:
            while True:
                ready = [i for i, (sock, readable) in enumerate(endpoints)
                         if (sock.readable_now() if readable else sock.writable_now())]
                if ready:
                    return ready
                if deadline is None:
                    self.network.cond.wait()
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self.network.cond.wait(remaining)

    def default_resolver(self) -> MemoryResolver:
        return MemoryResolver(self.network)
