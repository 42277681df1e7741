"""The virtual network: addresses, the table of bound sockets, names.

One :class:`VirtualNetwork` is shared by every backend and in-process
peer on it; all of its state (and every socket's) lives under its one
condition variable `cond`.
"""

from __future__ import annotations

import errno
import ipaddress
import threading
from collections.abc import Iterable, Mapping

from ...addresses import IPAddress, SocketAddress
from ...errors import ErrorCode, NetError
from ..resolvers import DictResolver
from .datagram import MemoryDatagramSocket
from .endpoint import MemoryEndpoint, fail, unspecified
from .peers import AddressLike, VirtualConnection, VirtualDatagram, VirtualListener, to_address
from .stream import MemoryStreamSocket


class VirtualNetwork:
    """A deterministic network of virtual hosts, shared by backends and peers.

    `local`: the address ranges of the guest's own machine (bindable).
    `hosts`: other addresses that exist (connecting there is refused
    rather than unreachable when nobody listens). `names`: the name table
    :class:`MemoryResolver` answers from. `send_buffer` /
    `receive_buffer`: a new socket's buffer sizes in bytes.
    `max_datagram`: the largest UDP payload (default: 65507 bytes over
    IPv4, 65527 over IPv6, as on Linux loopback). `ephemeral_ports`: the
    range implicit binds and port 0 draw from, in order.
    """

    def __init__(self, local: Iterable[str] = ("127.0.0.0/8", "::1/128"), *,
                 hosts: Iterable[str] = (),
                 names: Mapping[str, Iterable[str] | ErrorCode] | None = None,
                 send_buffer: int = 256 * 1024, receive_buffer: int = 256 * 1024,
                 max_datagram: int | None = None,
                 ephemeral_ports: tuple[int, int] = (49152, 65535),
                 reset_on_unread_close: bool = True) -> None:
        self.cond = threading.Condition()
        self.local: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self.hosts: set[IPAddress] = set()
        self.names = DictResolver(names)
        self.send_buffer = send_buffer
        self.receive_buffer = receive_buffer
        self.max_datagram = max_datagram
        self.ephemeral_ports = ephemeral_ports
        self.reset_on_unread_close = reset_on_unread_close
        #: (protocol, IP version, port) -> sockets bound there.
        self._bound: dict[tuple[str, int, int], list[MemoryEndpoint]] = {}
        self._next_port = {"tcp": ephemeral_ports[0], "udp": ephemeral_ports[0]}
        for network in local:
            self.add_local(network)
        for host in hosts:
            self.add_host(host)

    # -- configuration ---------------------------------------------------------
    def add_local(self, network: str) -> None:
        """Make an address or range local to the guest's machine (bindable)."""
        with self.cond:
            self.local.append(ipaddress.ip_network(network, strict=False))

    def add_host(self, address: str) -> None:
        """Declare a remote host: connections to it are refused, not
        unreachable, when nobody listens on the port."""
        with self.cond:
            self.hosts.add(ipaddress.ip_address(address))

    def add_name(self, name: str, answer: Iterable[str] | ErrorCode) -> None:
        """Add a name to the table :class:`MemoryResolver` answers from."""
        self.names.set(name, answer)

    def resolver(self) -> MemoryResolver:
        return MemoryResolver(self)

    # -- in-process peers -----------------------------------------------------------
    def listen(self, address: AddressLike, backlog: int = 128,
               timeout: float | None = 10.0) -> VirtualListener:
        """A listener for an in-process service. Unlike a guest, a peer may
        listen on any address: a non-local one becomes a remote host."""
        sock = MemoryStreamSocket(self, to_address(address).is_ipv6, peer=True)
        try:
            sock.bind(to_address(address))
            sock.listen(backlog)
        except NetError:
            sock.close()
            raise
        return VirtualListener(sock, timeout)

    def connect(self, address: AddressLike, *, source: str | None = None, source_port: int = 0,
                timeout: float | None = 10.0) -> VirtualConnection:
        """Connect an in-process client. `source` is the client's IP
        (default: the address the guest's machine would use), e.g. a
        remote address to test what a guest sees of its peers;
        `source_port` its port (default: an ephemeral one)."""
        target = to_address(address)
        sock = MemoryStreamSocket(self, target.is_ipv6, peer=True)
        sock.set_timeout(timeout)
        try:
            if source is not None or source_port:
                ip = ipaddress.ip_address(source) if source else unspecified(target.is_ipv6)
                sock.bind(SocketAddress(ip, source_port))
            sock.connect(target)
        except NetError:
            sock.close()
            raise
        return VirtualConnection(sock, timeout)

    def udp_bind(self, address: AddressLike, timeout: float | None = 10.0) -> VirtualDatagram:
        """A UDP socket for an in-process peer, bound to `address`."""
        bound = to_address(address)
        sock = MemoryDatagramSocket(self, bound.is_ipv6, peer=True)
        try:
            sock.bind(bound)
        except NetError:
            sock.close()
            raise
        sock.set_timeout(timeout)
        return VirtualDatagram(sock)

    # -- addressing, for the sockets (callers hold the lock) ----------------------
    def is_local(self, ip: IPAddress) -> bool:
        return any(ip.version == net.version and ip in net for net in self.local)

    def exists(self, ip: IPAddress) -> bool:
        """Whether a host has `ip` (else: unreachable)."""
        if self.is_local(ip) or ip in self.hosts:
            return True
        return any(e.local is not None and e.local.ip == ip
                   for endpoints in self._bound.values() for e in endpoints)

    def source_for(self, destination: IPAddress) -> IPAddress:
        """The local IP a connection or datagram to `destination` comes from:
        the destination itself when it is local (loopback), else the first
        local range's first address of the family (deterministic)."""
        if self.is_local(destination):
            return destination
        candidates = [n for n in self.local if n.version == destination.version]
        if not candidates:
            raise fail(errno.ENETUNREACH, f"no local address to reach {destination}")
        routable = [n for n in candidates if not n.is_loopback] or candidates
        net = routable[0]
        return net.network_address + 1 if net.num_addresses > 2 else net.network_address

    def _overlaps(self, a: IPAddress, b: IPAddress) -> bool:
        """Whether two bound IPs share ports: equal, or one is the wildcard
        and the other local (the wildcard means every local address)."""
        if a == b:
            return True
        return (a.is_unspecified and self.is_local(b)) or (b.is_unspecified and self.is_local(a))

    def bind_endpoint(self, protocol: str, endpoint: MemoryEndpoint, address: SocketAddress,
                      peer: bool) -> SocketAddress:
        """Enter `endpoint` in the table at `address` (port 0: an ephemeral
        one); the address it got. `peer` may bind non-local addresses."""
        ip = address.ip
        if not (ip.is_unspecified or self.is_local(ip) or peer):
            raise fail(errno.EADDRNOTAVAIL, f"{ip} is not an address of this machine")
        if peer and not ip.is_unspecified and not self.is_local(ip):
            self.hosts.add(ip)
        port = address.port or self._ephemeral(protocol, ip)
        key = (protocol, ip.version, port)
        if any(e.local is not None and self._overlaps(e.local.ip, ip)
               for e in self._bound.get(key, [])):
            raise fail(errno.EADDRINUSE, f"{protocol} {SocketAddress(ip, port)} is in use")
        self._bound.setdefault(key, []).append(endpoint)
        return SocketAddress(ip, port, address.flow_info, address.scope_id)

    def unbind_endpoint(self, protocol: str, endpoint: MemoryEndpoint) -> None:
        if endpoint.local is None:
            return
        key = (protocol, endpoint.local.ip.version, endpoint.local.port)
        endpoints = self._bound.get(key, [])
        if endpoint in endpoints:
            endpoints.remove(endpoint)
        if not endpoints:
            self._bound.pop(key, None)

    def _ephemeral(self, protocol: str, ip: IPAddress) -> int:
        low, high = self.ephemeral_ports
        for _ in range(high - low + 1):
            port = self._next_port[protocol]
            self._next_port[protocol] = low if port >= high else port + 1
            bound = self._bound.get((protocol, ip.version, port), [])
            if not any(e.local is not None and self._overlaps(e.local.ip, ip) for e in bound):
                return port
        raise fail(errno.EADDRINUSE, f"no free ephemeral {protocol} port")

    def find(self, protocol: str, address: SocketAddress) -> list[MemoryEndpoint]:
        """Sockets bound where `address` lands: exact IP first, then a
        wildcard bind if the address is local."""
        bound = self._bound.get((protocol, address.ip.version, address.port), [])
        exact = [e for e in bound if e.local is not None and e.local.ip == address.ip]
        if exact or not self.is_local(address.ip):
            return exact
        return [e for e in bound if e.local is not None and e.local.ip.is_unspecified]

    def max_datagram_for(self, ipv6: bool) -> int:
        if self.max_datagram is not None:
            return self.max_datagram
        return 65527 if ipv6 else 65507


class MemoryResolver(DictResolver):
    """Answers from a :class:`VirtualNetwork`'s name table (live)."""

    def __init__(self, network: VirtualNetwork) -> None:
        super().__init__()
        self.table = network.names.table
