"""Virtual UDP sockets: the datagram half of the in-memory backend."""

from __future__ import annotations

import errno
from collections import deque
from typing import TYPE_CHECKING

from ...addresses import IPAddress, SocketAddress
from ..options import RECEIVE_BUFFER_SIZE
from .endpoint import MemoryEndpoint, fail, unspecified

if TYPE_CHECKING:
    from .network import VirtualNetwork


class MemoryDatagramSocket(MemoryEndpoint):
    """A virtual UDP socket (see the package docstring for its semantics).

    No state machine: a UDP socket is bound or not (`local`), connected
    or not (`remote`), and open or closed.
    """

    def __init__(self, network: VirtualNetwork, ipv6: bool, peer: bool = False) -> None:
        super().__init__(network, ipv6, peer)
        self.queue: deque[tuple[bytes, SocketAddress]] = deque()
        self.queued_bytes = 0
        self.ip_locked = False
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def bind(self, address: SocketAddress) -> None:
        with self.network.cond:
            self._check_family(address)
            if self.local is not None or self.closed:
                raise fail(errno.EINVAL, "already bound")
            self.local = self.network.bind_endpoint("udp", self, address, self.peer)
            self.port_locked = address.port != 0
            self.ip_locked = not address.ip.is_unspecified

    def _implicit_bind(self, destination: IPAddress) -> SocketAddress:
        """Bind to an ephemeral port if needed; the source address toward
        `destination` (a wildcard bind sends from the routed address)."""
        source = self.network.source_for(destination)
        if self.local is None:
            self.local = self.network.bind_endpoint(
                "udp", self, SocketAddress(unspecified(self.ipv6), 0), True)
        if self.local.ip.is_unspecified:
            return SocketAddress(source, self.local.port)
        return self.local

    def connect(self, address: SocketAddress) -> None:
        with self.network.cond:
            self._check_family(address)
            if self.closed:
                raise fail(errno.EBADF, "closed")
            if not self.network.exists(address.ip):
                raise fail(errno.EHOSTUNREACH, f"no route to {address.ip}")
            source = self._implicit_bind(address.ip)
            self.local = source
            self.remote = address
            # Datagrams already queued from other senders stay: Linux too
            # delivers what arrived before connect.

    def disconnect(self) -> None:
        with self.network.cond:
            self.remote = None
            if not self.port_locked:  # Linux gives back a port it picked
                self.network.unbind_endpoint("udp", self)
                self.local = None
            elif not self.ip_locked and self.local is not None:
                self.local = SocketAddress(unspecified(self.ipv6), self.local.port)

    def send(self, data: bytes, address: SocketAddress | None) -> int:
        with self.network.cond:
            if self.closed:
                raise fail(errno.EBADF, "closed")
            target = address if address is not None else self.remote
            if target is None:
                raise fail(errno.EDESTADDRREQ, "no destination")
            self._check_family(target)
            if len(data) > self.network.max_datagram_for(self.ipv6):
                raise fail(errno.EMSGSIZE, f"{len(data)} bytes")
            if not self.network.exists(target.ip):
                raise fail(errno.EHOSTUNREACH, f"no route to {target.ip}")
            sender = self._implicit_bind(target.ip)
            for endpoint in self.network.find("udp", target):
                if not isinstance(endpoint, MemoryDatagramSocket) or endpoint.closed:
                    continue
                if endpoint.remote is not None and endpoint.remote != sender:
                    continue  # a connected socket only hears its peer
                if endpoint.queued_bytes + len(data) > endpoint.options[RECEIVE_BUFFER_SIZE]:
                    break  # receive buffer full: dropped, as UDP does
                endpoint.queue.append((bytes(data), sender))
                endpoint.queued_bytes += len(data)
                self.network.cond.notify_all()
                break
            return len(data)

    def receive(self, max_len: int, peek: bool) -> tuple[bytes, SocketAddress]:
        with self.network.cond:
            if self.closed:
                raise fail(errno.EBADF, "closed")
            self._wait_until(lambda: bool(self.queue) or self.closed, "receive")
            if self.closed:
                raise fail(errno.EBADF, "closed")
            data, sender = self.queue[0]
            if not peek:
                self.queue.popleft()
                self.queued_bytes -= len(data)
            return data[:max_len], sender

    def close(self) -> None:
        with self.network.cond:
            if self.closed:
                return
            self._closed = True
            self.queue.clear()
            self.network.unbind_endpoint("udp", self)
            self.network.cond.notify_all()

    def readable_now(self) -> bool:
        return self.closed or bool(self.queue)

    def writable_now(self) -> bool:
        return True
