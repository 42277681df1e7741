"""The in-memory backend: a deterministic virtual network, no OS sockets.

A :class:`VirtualNetwork` is a flat network of virtual hosts. Some of its
addresses are *local*: they belong to the machine the guest runs on, so a
guest may bind there (by default 127.0.0.0/8 and ::1, like a loopback-only
sandbox). Other addresses exist once something is bound on them or they
are declared with :meth:`VirtualNetwork.add_host`; a connection to an
address nobody declared is `remote-unreachable`, to a declared one with
nobody listening `connection-refused`.

:class:`MemoryBackend` implements the same :class:`~capsock.backends.base.Backend`
protocol as the OS backend, so the core (policy checks, state machines) and
the binding layer run unchanged on top of it. Python code in the same
process is a peer on the same network through a small client API
(:meth:`VirtualNetwork.listen`, :meth:`~VirtualNetwork.connect`,
:meth:`~VirtualNetwork.udp_bind`): that is how tests drive guests without
sockets, and how an embedder routes a guest's TCP to an in-process service.

Why it behaves as it does:

- **Same error codes as the OS, from the same table.** Every failure is
  raised as the errno Linux would report for the same situation and
  translated by :data:`~capsock.backends.errno_map.ERRNO_TO_CODE`, the one
  table the OS backend uses, so the two backends cannot drift apart.
- **Deterministic.** No randomness, no wall-clock dependence except
  timeouts: ephemeral ports are handed out in order from
  `ephemeral_ports`, so the same sequence of operations gives the same
  addresses in every run.
- **One lock per network.** All state lives under one
  `threading.Condition`; every change notifies it, and every blocking
  operation (accept, receive, a send into a full buffer, a connect into a
  full backlog, poll) waits on it with its timeout. Simple, and no lost
  wake-ups between sockets.
- **Streams** are pairs of byte pipes. A send buffer holds at most the
  sender's `send-buffer-size` bytes, so a peer that stops reading blocks
  (or, non-blocking, would-block) the writer, as TCP flow control does.
  `shutdown(send)` and `close` are a FIN (the peer reads the rest, then
  end of stream); closing with unread data sends an RST instead
  (`reset_on_unread_close`, on by default as on Linux): the peer reads
  what was already queued, then gets `connection-reset`. Sending to a
  closed peer is `connection-reset` at once (the OS lets the first send
  through and fails a later one).
- **Datagrams** are queued per bound socket up to its
  `receive-buffer-size` in bytes; beyond that, or to a port nobody bound,
  they are dropped silently, as UDP is. A datagram larger than
  `max_datagram` is `datagram-too-large`.
- **Non-blocking connect** reports would-block and completes (or fails)
  on the next connect, as a TCP handshake on Linux does, so guests written
  for the OS backend run unchanged.

Not modelled: `reuse-address` (TIME_WAIT does not exist here), IPv4-mapped
IPv6 (sockets are IPv6-only, as the OS backend makes them), ICMP errors on
UDP, hop limits and keep-alives (options are stored and read back only).
"""

from __future__ import annotations

import errno
import ipaddress
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Self

from ..addresses import IPAddress, SocketAddress, parse_host_port
from ..errors import ErrorCode, NetError
from .base import Closable, DatagramSocket, StreamSocket, set_up_or_close
from .errno_map import ERRNO_TO_CODE
from .resolvers import DictResolver

#: Option values a new socket starts with (buffer sizes come from the network).
_DEFAULT_OPTIONS = {"keep-alive": 0, "no-delay": 0, "reuse-address": 0, "hop-limit": 64}
_OPTIONS = frozenset([*_DEFAULT_OPTIONS, "receive-buffer-size", "send-buffer-size"])

AddressLike = SocketAddress | str | tuple[str, int]


def _fail(code: int, detail: str) -> NetError:
    """The error the OS backend would return for errno `code`."""
    return NetError(ERRNO_TO_CODE.get(code, ErrorCode.UNKNOWN), detail)


def _unspecified(ipv6: bool) -> IPAddress:
    return ipaddress.IPv6Address("::") if ipv6 else ipaddress.IPv4Address("0.0.0.0")


def to_address(address: AddressLike) -> SocketAddress:
    """`"127.0.0.1:80"`, `"[::1]:80"`, `("10.0.0.5", 80)` or a SocketAddress."""
    if isinstance(address, SocketAddress):
        return address
    if isinstance(address, str):
        return parse_host_port(address)
    host, port = address
    return SocketAddress(ipaddress.ip_address(host), int(port))


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
        self._bound: dict[tuple[str, int, int], list[_Endpoint]] = {}
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
                ip = ipaddress.ip_address(source) if source else _unspecified(target.is_ipv6)
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

    # -- addressing (callers hold the lock) --------------------------------------
    def is_local(self, ip: IPAddress) -> bool:
        return any(ip.version == net.version and ip in net for net in self.local)

    def _exists(self, ip: IPAddress) -> bool:
        if self.is_local(ip) or ip in self.hosts:
            return True
        return any(e.local is not None and e.local.ip == ip
                   for endpoints in self._bound.values() for e in endpoints)

    def _source_for(self, destination: IPAddress) -> IPAddress:
        """The local IP a connection or datagram to `destination` comes from:
        the destination itself when it is local (loopback), else the first
        local range's first address of the family (deterministic)."""
        if self.is_local(destination):
            return destination
        candidates = [n for n in self.local if n.version == destination.version]
        if not candidates:
            raise _fail(errno.ENETUNREACH, f"no local address to reach {destination}")
        routable = [n for n in candidates if not n.is_loopback] or candidates
        net = routable[0]
        return net.network_address + 1 if net.num_addresses > 2 else net.network_address

    def _overlaps(self, a: IPAddress, b: IPAddress) -> bool:
        """Whether two bound IPs share ports: equal, or one is the wildcard
        and the other local (the wildcard means every local address)."""
        if a == b:
            return True
        return (a.is_unspecified and self.is_local(b)) or (b.is_unspecified and self.is_local(a))

    def _bind(self, protocol: str, endpoint: _Endpoint, address: SocketAddress,
              peer: bool) -> SocketAddress:
        ip = address.ip
        if not (ip.is_unspecified or self.is_local(ip) or peer):
            raise _fail(errno.EADDRNOTAVAIL, f"{ip} is not an address of this machine")
        if peer and not ip.is_unspecified and not self.is_local(ip):
            self.hosts.add(ip)
        port = address.port or self._ephemeral(protocol, ip)
        key = (protocol, ip.version, port)
        if any(e.local is not None and self._overlaps(e.local.ip, ip)
               for e in self._bound.get(key, [])):
            raise _fail(errno.EADDRINUSE, f"{protocol} {SocketAddress(ip, port)} is in use")
        self._bound.setdefault(key, []).append(endpoint)
        return SocketAddress(ip, port, address.flow_info, address.scope_id)

    def _unbind(self, protocol: str, endpoint: _Endpoint) -> None:
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
        raise _fail(errno.EADDRINUSE, f"no free ephemeral {protocol} port")

    def _find(self, protocol: str, address: SocketAddress) -> list[_Endpoint]:
        """Sockets bound where `address` lands: exact IP first, then a
        wildcard bind if the address is local."""
        bound = self._bound.get((protocol, address.ip.version, address.port), [])
        exact = [e for e in bound if e.local is not None and e.local.ip == address.ip]
        if exact or not self.is_local(address.ip):
            return exact
        return [e for e in bound if e.local is not None and e.local.ip.is_unspecified]

    def _max_datagram(self, ipv6: bool) -> int:
        if self.max_datagram is not None:
            return self.max_datagram
        return 65527 if ipv6 else 65507


class _Endpoint:
    """What stream and datagram sockets share: address, mode, options."""

    def __init__(self, network: VirtualNetwork, ipv6: bool, peer: bool) -> None:
        self.network = network
        self.ipv6 = ipv6
        self.peer = peer
        self.local: SocketAddress | None = None
        self.remote: SocketAddress | None = None
        self.port_locked = False
        self.closed = False
        self.blocking = True
        self.timeout: float | None = None
        self.options = dict(_DEFAULT_OPTIONS)
        self.options["send-buffer-size"] = network.send_buffer
        self.options["receive-buffer-size"] = network.receive_buffer

    def _check_family(self, address: SocketAddress) -> None:
        if address.is_ipv6 != self.ipv6:
            raise _fail(errno.EINVAL, "address family does not match the socket's")

    def _wait_until(self, ready: Callable[[], bool], what: str) -> None:
        """Block (lock held) until `ready()`, within this socket's mode:
        would-block when non-blocking, timeout when the timeout passes."""
        if ready():
            return
        if not self.blocking:
            raise _fail(errno.EAGAIN, what)
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while not ready():
            if deadline is None:
                self.network.cond.wait()
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _fail(errno.ETIMEDOUT, f"{what}: timed out")
            self.network.cond.wait(remaining)

    def local_address(self) -> SocketAddress:
        with self.network.cond:
            if self.local is None:
                return SocketAddress(_unspecified(self.ipv6), 0)
            return self.local

    def remote_address(self) -> SocketAddress:
        with self.network.cond:
            if self.remote is None:
                raise _fail(errno.ENOTCONN, "not connected")
            return self.remote

    def set_blocking(self, blocking: bool) -> None:
        with self.network.cond:
            self.blocking = blocking
            self.timeout = None

    def set_timeout(self, seconds: float | None) -> None:
        """Python `socket` semantics: a timeout (or None) means blocking."""
        with self.network.cond:
            self.blocking = True
            self.timeout = seconds

    def get_option(self, name: str) -> int:
        if name not in _OPTIONS:
            raise NetError(ErrorCode.NOT_SUPPORTED, f"option {name}")
        with self.network.cond:
            return self.options[name]

    def set_option(self, name: str, value: int) -> None:
        if name not in _OPTIONS:
            raise NetError(ErrorCode.NOT_SUPPORTED, f"option {name}")
        with self.network.cond:
            self.options[name] = int(value)
            self.network.cond.notify_all()  # a bigger buffer may unblock a sender

    def fileno(self) -> int:
        """No descriptor: readiness goes through `MemoryBackend.poll`."""
        return -1


class _Pipe:
    """One direction of a stream: bytes in flight, then FIN or RST."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.eof = False
        self.reset = False


class MemoryStreamSocket(_Endpoint):
    """A virtual TCP socket (see the module docstring for its semantics)."""

    def __init__(self, network: VirtualNetwork, ipv6: bool, peer: bool = False) -> None:
        super().__init__(network, ipv6, peer)
        self.state = "fresh"  # fresh bound listening connecting connected
        self.inbound = _Pipe()
        self.partner: MemoryStreamSocket | None = None
        self.read_shut = False
        self.write_shut = False
        self.reset_reported = False
        # listening
        self.backlog = 0
        self.queue: deque[MemoryStreamSocket] = deque()
        self.listen_shut = False
        # connecting (non-blocking)
        self.connect_target: SocketAddress | None = None
        self.connect_error: NetError | None = None
        #: A non-blocking connect that succeeded before the guest asked again.
        self.unreported_connect: SocketAddress | None = None

    # -- setup -----------------------------------------------------------------
    def bind(self, address: SocketAddress) -> None:
        with self.network.cond:
            self._check_family(address)
            if self.state != "fresh" or self.closed:
                raise _fail(errno.EINVAL, "already bound")
            self.local = self.network._bind("tcp", self, address, self.peer)
            self.port_locked = address.port != 0
            self.state = "bound"

    def listen(self, backlog: int) -> None:
        with self.network.cond:
            if self.state == "fresh":
                self.local = self.network._bind(
                    "tcp", self, SocketAddress(_unspecified(self.ipv6), 0), self.peer)
                self.state = "bound"
            if self.state not in ("bound", "listening"):
                raise _fail(errno.EINVAL, f"listen on a {self.state} socket")
            self.state = "listening"
            self.backlog = max(1, backlog)
            self.network.cond.notify_all()

    def accept(self) -> tuple[MemoryStreamSocket, SocketAddress]:
        with self.network.cond:
            if self.state != "listening" or self.closed:
                raise _fail(errno.EINVAL, "not listening")
            self._wait_until(lambda: bool(self.queue) or self.listen_shut or self.closed,
                             "accept")
            if self.listen_shut or self.closed or not self.queue:
                raise _fail(errno.EINVAL, "the listener was shut down")
            conn = self.queue.popleft()
            self.network.cond.notify_all()  # room in the backlog
            assert conn.remote is not None
            return conn, conn.remote

    def connect(self, address: SocketAddress) -> None:
        with self.network.cond:
            self._check_family(address)
            if self.state == "connecting":
                self._finish_connect(address)
                return
            if self.state == "connected" and self.unreported_connect == address:
                self.unreported_connect = None  # the non-blocking connect's outcome
                return
            if self.state in ("connected", "listening"):
                raise _fail(errno.EISCONN, f"connect on a {self.state} socket")
            if self.closed:
                raise _fail(errno.EBADF, "closed")
            if address.ip.is_unspecified or address.port == 0:
                raise _fail(errno.ECONNREFUSED, f"cannot connect to {address}")
            if not self.network._exists(address.ip):
                raise _fail(errno.EHOSTUNREACH, f"no route to {address.ip}")
            self._implicit_bind(address)
            self.connect_target = address
            if not self.blocking:
                # Like a TCP handshake: the outcome is known on the next
                # connect (or when poll reports writable).
                self.state = "connecting"
                self.connect_error = self._try_establish(address)
                raise _fail(errno.EINPROGRESS, f"connecting to {address}")
            try:
                self._wait_until(lambda: self._try_establish(address) is not _FULL,
                                 f"connect to {address}")
            except NetError:
                self._release_implicit()
                raise
            error = self.connect_error
            if error is not None:
                self._release_implicit()
                raise error

    def _finish_connect(self, address: SocketAddress) -> None:
        if address != self.connect_target:
            raise _fail(errno.EALREADY, "a connect to another address is in progress")
        if self.connect_error is _FULL:
            self.connect_error = self._try_establish(address)
        error = self.connect_error
        if error is _FULL:
            raise _fail(errno.EALREADY, f"still connecting to {address}")
        if error is not None:
            self.state = "bound"
            self._release_implicit()
            raise error
        self.unreported_connect = None

    def _implicit_bind(self, destination: SocketAddress) -> None:
        source = self.network._source_for(destination.ip)
        if self.local is None:
            self.local = self.network._bind("tcp", self, SocketAddress(source, 0), True)
            self.state = "bound"
        elif self.local.ip.is_unspecified:
            self.local = SocketAddress(source, self.local.port)

    def _release_implicit(self) -> None:
        """A failed connect gives back the port it picked (as Linux does)."""
        if not self.port_locked:
            self.network._unbind("tcp", self)
            self.local = None
            self.state = "fresh"
        self.connect_target = None

    def _try_establish(self, address: SocketAddress) -> NetError | None:
        """Queue a connection on the listener at `address` (lock held).

        Returns None on success, the error, or _FULL when the backlog is
        full (the caller waits, as a SYN is retried).
        """
        listeners = [e for e in self.network._find("tcp", address)
                     if isinstance(e, MemoryStreamSocket) and e.state == "listening"
                     and not e.listen_shut]
        if not listeners:
            self.connect_error = _fail(errno.ECONNREFUSED, f"nobody listens on {address}")
            return self.connect_error
        listener = listeners[0]
        if len(listener.queue) >= listener.backlog:
            self.connect_error = _FULL
            return _FULL
        assert self.local is not None
        if self.state == "connecting":  # non-blocking: the next connect reports it
            self.unreported_connect = address
        server = MemoryStreamSocket(self.network, self.ipv6, listener.peer)
        server.local = SocketAddress(address.ip, address.port)
        server.remote = self.local
        server.state = "connected"
        server.partner = self
        server.options.update(listener.options)
        self.partner = server
        self.remote = address
        self.state = "connected"
        listener.queue.append(server)
        self.connect_error = None
        self.network.cond.notify_all()
        return None

    # -- data --------------------------------------------------------------------
    def _require_connected(self) -> None:
        if self.closed:
            raise _fail(errno.EBADF, "closed")
        if self.state != "connected":
            raise _fail(errno.ENOTCONN, f"{self.state} socket is not connected")

    def receive(self, max_len: int, peek: bool) -> bytes:
        with self.network.cond:
            self._require_connected()
            pipe = self.inbound
            self._wait_until(lambda: self._readable_now(), "receive")
            if self.read_shut or self.closed:
                return b""
            if pipe.buffer:
                data = bytes(pipe.buffer[:max_len])
                if not peek:
                    del pipe.buffer[:max_len]
                    self.network.cond.notify_all()  # room for the sender
                return data
            if pipe.reset and not self.reset_reported:
                self.reset_reported = True
                raise _fail(errno.ECONNRESET, "the peer reset the connection")
            return b""

    def send(self, data: bytes) -> int:
        with self.network.cond:
            self._require_connected()
            view = memoryview(bytes(data))
            sent = 0
            while True:
                if self.write_shut:
                    raise _fail(errno.EPIPE, "send after shutdown")
                partner = self.partner
                if self.inbound.reset or partner is None or partner.closed:
                    raise _fail(errno.ECONNRESET, "the peer closed the connection")
                room = self.options["send-buffer-size"] - len(partner.inbound.buffer)
                if room > 0 and sent < len(view):
                    chunk = view[sent:sent + room]
                    partner.inbound.buffer += chunk
                    sent += len(chunk)
                    self.network.cond.notify_all()
                if sent == len(view) or (not self.blocking and sent):
                    return sent
                self._wait_until(lambda: self._writable_now(), "send")

    def shutdown(self, receive: bool, send: bool) -> None:
        with self.network.cond:
            self._require_connected()
            if send and not self.write_shut:
                self.write_shut = True
                if self.partner is not None:
                    self.partner.inbound.eof = True
            if receive:
                self.read_shut = True
                self.inbound.buffer.clear()
            self.network.cond.notify_all()

    def close(self) -> None:
        with self.network.cond:
            if self.closed:
                return
            self.closed = True
            if self.state == "listening":
                for pending in self.queue:  # never accepted: reset
                    pending.closed = True
                    if pending.partner is not None:
                        pending.partner.inbound.reset = True
                self.queue.clear()
            partner = self.partner
            if self.state == "connected" and partner is not None and not partner.closed:
                if self.inbound.buffer and self.network.reset_on_unread_close:
                    partner.inbound.reset = True
                else:
                    partner.inbound.eof = True
            # (an accepted socket was never bound: it shares its listener's port)
            self.network._unbind("tcp", self)
            self.network.cond.notify_all()

    def shutdown_listener(self) -> None:
        """Stop a listener: a pending or later accept fails, and readiness
        says readable, so every waiting instance notices at once (what
        `shutdown(2)` on a shared listening socket does for `capsock serve`)."""
        with self.network.cond:
            self.listen_shut = True
            self.network.cond.notify_all()

    # -- readiness (lock held) --------------------------------------------------
    def _readable_now(self) -> bool:
        if self.closed:
            return True
        if self.state == "listening":
            return bool(self.queue) or self.listen_shut
        if self.state == "connected":
            pipe = self.inbound
            return bool(pipe.buffer) or pipe.eof or pipe.reset or self.read_shut
        if self.state == "connecting":
            return self.connect_error is not _FULL
        return True  # unconnected: poll(2) reports POLLHUP

    def _writable_now(self) -> bool:
        if self.closed:
            return True
        if self.state == "listening":
            return self.listen_shut
        if self.state == "connected":
            partner = self.partner
            if self.write_shut or self.inbound.reset or partner is None or partner.closed:
                return True
            return len(partner.inbound.buffer) < self.options["send-buffer-size"]
        if self.state == "connecting":
            if self.connect_error is _FULL and self.connect_target is not None:
                self._try_establish(self.connect_target)
            return self.connect_error is not _FULL
        return True


#: `_try_establish`'s "the backlog is full, try again" (never raised).
_FULL = NetError(ErrorCode.WOULD_BLOCK, "the listener's backlog is full")


class MemoryDatagramSocket(_Endpoint):
    """A virtual UDP socket (see the module docstring for its semantics)."""

    def __init__(self, network: VirtualNetwork, ipv6: bool, peer: bool = False) -> None:
        super().__init__(network, ipv6, peer)
        self.queue: deque[tuple[bytes, SocketAddress]] = deque()
        self.queued_bytes = 0
        self.ip_locked = False

    def bind(self, address: SocketAddress) -> None:
        with self.network.cond:
            self._check_family(address)
            if self.local is not None or self.closed:
                raise _fail(errno.EINVAL, "already bound")
            self.local = self.network._bind("udp", self, address, self.peer)
            self.port_locked = address.port != 0
            self.ip_locked = not address.ip.is_unspecified

    def _implicit_bind(self, destination: IPAddress) -> SocketAddress:
        """Bind to an ephemeral port if needed; the source address toward
        `destination` (a wildcard bind sends from the routed address)."""
        source = self.network._source_for(destination)
        if self.local is None:
            self.local = self.network._bind("udp", self, SocketAddress(_unspecified(self.ipv6), 0),
                                            True)
        if self.local.ip.is_unspecified:
            return SocketAddress(source, self.local.port)
        return self.local

    def connect(self, address: SocketAddress) -> None:
        with self.network.cond:
            self._check_family(address)
            if self.closed:
                raise _fail(errno.EBADF, "closed")
            if not self.network._exists(address.ip):
                raise _fail(errno.EHOSTUNREACH, f"no route to {address.ip}")
            source = self._implicit_bind(address.ip)
            self.local = source
            self.remote = address
            # Datagrams already queued from other senders stay: Linux too
            # delivers what arrived before connect.

    def disconnect(self) -> None:
        with self.network.cond:
            self.remote = None
            if not self.port_locked:  # Linux gives back a port it picked
                self.network._unbind("udp", self)
                self.local = None
            elif not self.ip_locked and self.local is not None:
                self.local = SocketAddress(_unspecified(self.ipv6), self.local.port)

    def send(self, data: bytes, address: SocketAddress | None) -> int:
        with self.network.cond:
            if self.closed:
                raise _fail(errno.EBADF, "closed")
            target = address if address is not None else self.remote
            if target is None:
                raise _fail(errno.EDESTADDRREQ, "no destination")
            self._check_family(target)
            if len(data) > self.network._max_datagram(self.ipv6):
                raise _fail(errno.EMSGSIZE, f"{len(data)} bytes")
            if not self.network._exists(target.ip):
                raise _fail(errno.EHOSTUNREACH, f"no route to {target.ip}")
            sender = self._implicit_bind(target.ip)
            for endpoint in self.network._find("udp", target):
                if not isinstance(endpoint, MemoryDatagramSocket) or endpoint.closed:
                    continue
                if endpoint.remote is not None and endpoint.remote != sender:
                    continue  # a connected socket only hears its peer
                if endpoint.queued_bytes + len(data) > endpoint.options["receive-buffer-size"]:
                    break  # receive buffer full: dropped, as UDP does
                endpoint.queue.append((bytes(data), sender))
                endpoint.queued_bytes += len(data)
                self.network.cond.notify_all()
                break
            return len(data)

    def receive(self, max_len: int, peek: bool) -> tuple[bytes, SocketAddress]:
        with self.network.cond:
            if self.closed:
                raise _fail(errno.EBADF, "closed")
            self._wait_until(lambda: bool(self.queue) or self.closed, "receive")
            if self.closed:
                raise _fail(errno.EBADF, "closed")
            data, sender = self.queue[0]
            if not peek:
                self.queue.popleft()
                self.queued_bytes -= len(data)
            return data[:max_len], sender

    def close(self) -> None:
        with self.network.cond:
            if self.closed:
                return
            self.closed = True
            self.queue.clear()
            self.network._unbind("udp", self)
            self.network.cond.notify_all()

    def _readable_now(self) -> bool:
        return self.closed or bool(self.queue)

    def _writable_now(self) -> bool:
        return True


class MemoryResolver(DictResolver):
    """Answers from a :class:`VirtualNetwork`'s name table (live)."""

    def __init__(self, network: VirtualNetwork) -> None:
        super().__init__()
        self.table = network.names.table


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
                         if (sock._readable_now() if readable else sock._writable_now())]
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


# -- the in-process peer API -------------------------------------------------------------

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

    def recvfrom(self, max_len: int = 65535) -> tuple[bytes, SocketAddress]:
        return self.sock.receive(max_len, False)



__all__ = ["MemoryBackend", "MemoryDatagramSocket", "MemoryResolver", "MemoryStreamSocket",
           "VirtualConnection", "VirtualDatagram", "VirtualListener", "VirtualNetwork",
           "to_address"]
