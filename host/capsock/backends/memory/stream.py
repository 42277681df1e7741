"""Virtual TCP sockets: the stream half of the in-memory backend.

A connection is two :class:`MemoryStreamSocket` partners, each reading
from its own inbound :class:`Pipe`, which the other writes into. The
states are those of a BSD socket, not of the contract (the core's
`TcpState` checks the contract's; this one only answers what the kernel
would, including errors the core never lets a guest reach):

=============  ==============================================================
state          how it is left
=============  ==============================================================
UNBOUND        bind or listen (explicit or implicit bind) -> BOUND; a connect
               binds implicitly first
BOUND          listen -> LISTENING; connect -> CONNECTED (blocking) or
               CONNECTING (non-blocking); a failed connect gives back an
               implicit port -> UNBOUND
CONNECTING     the next connect or a writable poll finishes it -> CONNECTED
               or, on failure, BOUND / UNBOUND
LISTENING      accept hands out sockets made CONNECTED by their connect
CONNECTED      shutdown closes a direction; the state stays
CLOSED         close, from any state: nothing more
=============  ==============================================================
"""

from __future__ import annotations

import enum
import errno
from collections import deque
from typing import TYPE_CHECKING

from ...addresses import SocketAddress
from ...errors import ErrorCode, NetError
from ..options import SEND_BUFFER_SIZE
from .endpoint import MemoryEndpoint, fail, unspecified

if TYPE_CHECKING:
    from .network import VirtualNetwork


class StreamState(enum.Enum):
    UNBOUND = "unbound"
    BOUND = "bound"
    LISTENING = "listening"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"


#: `_try_establish`'s "the backlog is full, try again" (never raised).
_FULL = NetError(ErrorCode.WOULD_BLOCK, "the listener's backlog is full")


class Pipe:
    """One direction of a stream: bytes in flight, then FIN or RST."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.eof = False
        self.reset = False


class MemoryStreamSocket(MemoryEndpoint):
    """A virtual TCP socket (see the package docstring for its semantics)."""

    def __init__(self, network: VirtualNetwork, ipv6: bool, peer: bool = False) -> None:
        super().__init__(network, ipv6, peer)
        self.state = StreamState.UNBOUND
        self.inbound = Pipe()
        self.partner: MemoryStreamSocket | None = None
        self.read_shut = False
        self.write_shut = False
        self.reset_reported = False
        # listening
        self.backlog = 0
        self.queue: deque[MemoryStreamSocket] = deque()
        # connecting (non-blocking)
        self.connect_target: SocketAddress | None = None
        self.connect_error: NetError | None = None
        #: A non-blocking connect that succeeded before the guest asked again.
        self.unreported_connect: SocketAddress | None = None

    @property
    def closed(self) -> bool:
        return self.state is StreamState.CLOSED

    # -- setup -----------------------------------------------------------------
    def bind(self, address: SocketAddress) -> None:
        with self.network.cond:
            self._check_family(address)
            if self.state is not StreamState.UNBOUND:
                raise fail(errno.EINVAL, "already bound")
            self.local = self.network.bind_endpoint("tcp", self, address, self.peer)
            self.port_locked = address.port != 0
            self.state = StreamState.BOUND

    def listen(self, backlog: int) -> None:
        with self.network.cond:
            if self.state is StreamState.UNBOUND:
                self.local = self.network.bind_endpoint(
                    "tcp", self, SocketAddress(unspecified(self.ipv6), 0), self.peer)
                self.state = StreamState.BOUND
            if self.state not in (StreamState.BOUND, StreamState.LISTENING):
                raise fail(errno.EINVAL, f"listen on a {self.state.value} socket")
            self.state = StreamState.LISTENING
            self.backlog = max(1, backlog)
            self.network.cond.notify_all()

    def accept(self) -> tuple[MemoryStreamSocket, SocketAddress]:
        with self.network.cond:
            if self.state is not StreamState.LISTENING:
                raise fail(errno.EINVAL, "not listening")
            self._wait_until(lambda: bool(self.queue) or self.closed, "accept")
            if self.closed:
                raise fail(errno.EINVAL, "the listener was closed")
            conn = self.queue.popleft()
            self.network.cond.notify_all()  # room in the backlog
            assert conn.remote is not None
            return conn, conn.remote

    def connect(self, address: SocketAddress) -> None:
        with self.network.cond:
            self._check_family(address)
            if self.state is StreamState.CONNECTING:
                self._finish_connect(address)
                return
            if self.state is StreamState.CONNECTED and self.unreported_connect == address:
                self.unreported_connect = None  # the non-blocking connect's outcome
                return
            if self.state in (StreamState.CONNECTED, StreamState.LISTENING):
                raise fail(errno.EISCONN, f"connect on a {self.state.value} socket")
            if self.closed:
                raise fail(errno.EBADF, "closed")
            if address.ip.is_unspecified or address.port == 0:
                raise fail(errno.ECONNREFUSED, f"cannot connect to {address}")
            if not self.network.exists(address.ip):
                raise fail(errno.EHOSTUNREACH, f"no route to {address.ip}")
            self._implicit_bind(address)
            self.connect_target = address
            if not self.blocking:
                # Like a TCP handshake: the outcome is known on the next
                # connect (or when poll reports writable).
                self.state = StreamState.CONNECTING
                self.connect_error = self._try_establish(address)
                raise fail(errno.EINPROGRESS, f"connecting to {address}")
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
            raise fail(errno.EALREADY, "a connect to another address is in progress")
        if self.connect_error is _FULL:
            self.connect_error = self._try_establish(address)
        error = self.connect_error
        if error is _FULL:
            raise fail(errno.EALREADY, f"still connecting to {address}")
        if error is not None:
            self.state = StreamState.BOUND
            self._release_implicit()
            raise error
        self.unreported_connect = None

    def _implicit_bind(self, destination: SocketAddress) -> None:
        source = self.network.source_for(destination.ip)
        if self.local is None:
            self.local = self.network.bind_endpoint("tcp", self, SocketAddress(source, 0), True)
            self.state = StreamState.BOUND
        elif self.local.ip.is_unspecified:
            self.local = SocketAddress(source, self.local.port)

    def _release_implicit(self) -> None:
        """A failed connect gives back the port it picked (as Linux does)."""
        if not self.port_locked:
            self.network.unbind_endpoint("tcp", self)
            self.local = None
            self.state = StreamState.UNBOUND
        self.connect_target = None

    def _try_establish(self, address: SocketAddress) -> NetError | None:
        """Queue a connection on the listener at `address` (lock held).

        Returns None on success, the error, or _FULL when the backlog is
        full (the caller waits, as a SYN is retried).
        """
        listeners = [e for e in self.network.find("tcp", address)
                     if isinstance(e, MemoryStreamSocket) and e.state is StreamState.LISTENING]
        if not listeners:
            self.connect_error = fail(errno.ECONNREFUSED, f"nobody listens on {address}")
            return self.connect_error
        listener = listeners[0]
        if len(listener.queue) >= listener.backlog:
            self.connect_error = _FULL
            return _FULL
        assert self.local is not None
        if self.state is StreamState.CONNECTING:  # non-blocking: the next connect reports it
            self.unreported_connect = address
        server = MemoryStreamSocket(self.network, self.ipv6, listener.peer)
        server.local = SocketAddress(address.ip, address.port)
        server.remote = self.local
        server.state = StreamState.CONNECTED
        server.partner = self
        server.options.update(listener.options)
        self.partner = server
        self.remote = address
        self.state = StreamState.CONNECTED
        listener.queue.append(server)
        self.connect_error = None
        self.network.cond.notify_all()
        return None

    # -- data --------------------------------------------------------------------
    def _require_connected(self) -> None:
        if self.closed:
            raise fail(errno.EBADF, "closed")
        if self.state is not StreamState.CONNECTED:
            raise fail(errno.ENOTCONN, f"{self.state.value} socket is not connected")

    def receive(self, max_len: int, peek: bool) -> bytes:
        with self.network.cond:
            self._require_connected()
            pipe = self.inbound
            self._wait_until(self.readable_now, "receive")
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
                raise fail(errno.ECONNRESET, "the peer reset the connection")
            return b""

    def send(self, data: bytes) -> int:
        with self.network.cond:
            self._require_connected()
            view = memoryview(bytes(data))
            sent = 0
            while True:
                if self.write_shut:
                    raise fail(errno.EPIPE, "send after shutdown")
                partner = self.partner
                if self.inbound.reset or partner is None or partner.closed:
                    raise fail(errno.ECONNRESET, "the peer closed the connection")
                room = self.options[SEND_BUFFER_SIZE] - len(partner.inbound.buffer)
                if room > 0 and sent < len(view):
                    chunk = view[sent:sent + room]
                    partner.inbound.buffer += chunk
                    sent += len(chunk)
                    self.network.cond.notify_all()
                if sent == len(view) or (not self.blocking and sent):
                    return sent
                self._wait_until(self.writable_now, "send")

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
            was, self.state = self.state, StreamState.CLOSED
            if was is StreamState.LISTENING:
                for pending in self.queue:  # never accepted: reset
                    pending.state = StreamState.CLOSED
                    if pending.partner is not None:
                        pending.partner.inbound.reset = True
                self.queue.clear()
            partner = self.partner
            if was is StreamState.CONNECTED and partner is not None and not partner.closed:
                if self.inbound.buffer and self.network.reset_on_unread_close:
                    partner.inbound.reset = True
                else:
                    partner.inbound.eof = True
            # (an accepted socket was never bound: it shares its listener's port)
            self.network.unbind_endpoint("tcp", self)
            self.network.cond.notify_all()

    # -- readiness (lock held) --------------------------------------------------
    def readable_now(self) -> bool:
        state = self.state
        if state is StreamState.LISTENING:
            return bool(self.queue)
        if state is StreamState.CONNECTED:
            pipe = self.inbound
            return bool(pipe.buffer) or pipe.eof or pipe.reset or self.read_shut
        if state is StreamState.CONNECTING:
            return self.connect_error is not _FULL
        return True  # closed, or unconnected: poll(2) reports POLLHUP

    def writable_now(self) -> bool:
        state = self.state
        if state is StreamState.LISTENING:
            return False
        if state is StreamState.CONNECTED:
            partner = self.partner
            if self.write_shut or self.inbound.reset or partner is None or partner.closed:
                return True
            return len(partner.inbound.buffer) < self.options[SEND_BUFFER_SIZE]
        if state is StreamState.CONNECTING:
            if self.connect_error is _FULL and self.connect_target is not None:
                self._try_establish(self.connect_target)
            return self.connect_error is not _FULL
        return True  # closed or unconnected
