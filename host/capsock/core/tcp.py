"""The TCP socket state machine, with the checker asked before every syscall.

States and the operations each allows (anything else is `invalid-state`,
and leaves the state unchanged):

=============  =================================================
state          allowed
=============  =================================================
UNBOUND        bind, listen (implicit bind), connect
BOUND          listen, connect
CONNECTING     connect again (to the same address: completes or would-block)
LISTENING      accept
CONNECTED      receive, peek, send, splice, shutdown, remote-address
CLOSED         nothing (after drop)
=============  =================================================
"""

from __future__ import annotations

import enum
import time

from ..addresses import SocketAddress
from ..backends.base import StreamSocket
from ..backends.tls import transport_of
from ..errors import ErrorCode, NetError
from ..policy import Checker, Use, special_kind
from . import translate
from .common import SocketCore, make_counted
from .context import UNSPECIFIED_V4, UNSPECIFIED_V6, InstanceContext
from .observe import NULL_OBSERVER


class TcpState(enum.Enum):
    UNBOUND = "unbound"
    BOUND = "bound"
    CONNECTING = "connecting"
    LISTENING = "listening"
    CONNECTED = "connected"
    CLOSED = "closed"


_CONNECTED = TcpState.CONNECTED


def _invalid_state(operation: str, state: TcpState) -> NetError:
    return NetError(ErrorCode.INVALID_STATE, f"{operation} on a {state.value} socket")


def check_remote(address: SocketAddress, ipv6: bool) -> None:
    """Reject remote addresses no connection can go to: port 0, and the
    unspecified, multicast and broadcast addresses, also in an IPv6 form
    that embeds them (`special_kind`: `[::ffff:0.0.0.0]` is unspecified)."""
    check_family(address, ipv6)
    if address.port == 0 or special_kind(address.ip) is not None:
        raise NetError(ErrorCode.INVALID_ARGUMENT, f"cannot connect to {address}")


def open_tcp(context: InstanceContext, checker: Checker, ipv6: bool) -> TcpSocket:
    """A new guest socket, counted against `max_sockets` before the backend
    makes it."""
    sock = make_counted(context, "tcp", lambda: context.backend.tcp_socket(ipv6))
    core = TcpSocket(context, checker, sock, ipv6)
    core.counted = True
    return core


def check_family(address: SocketAddress, ipv6: bool) -> None:
    if address.is_ipv6 != ipv6:
        raise NetError(ErrorCode.INVALID_ARGUMENT, "address family does not match the socket's")


class TcpSocket(SocketCore):
    """A guest's TCP socket: state, checker, and the backend socket.

    `checker` is the one of the capability that made the socket (narrowed
    by `restrict`, maybe); an accepted socket inherits its listener's.
    """

    protocol = "tcp"

    def __init__(self, context: InstanceContext, checker: Checker, sock: StreamSocket,
                 ipv6: bool, state: TcpState = TcpState.UNBOUND) -> None:
        self.context = context
        self.checker = checker
        self.sock: StreamSocket = sock
        self.ipv6 = ipv6
        self.state = state
        self.send_closed = False
        self.blocking = True
        self.timeout: float | None = None
        self.connecting_to: SocketAddress | None = None
        #: Where the pending connect really goes (`connecting_to` is the
        #: guest-side address; they differ through a `->` mapping).
        self.connecting_real: SocketAddress | None = None
        #: Connected through a `->` mapping: remote-address answers the
        #: guest-side `peer_address`, not the backend's real peer.
        self.peer_mapped = False
        #: Bound by the host for a connect through a mapping: local-address
        #: hides the real source address (`translate.seen_local`).
        self.behind_mapping = False
        #: Accepted from a listener: its peer is hidden under
        #: `--peer-address=hidden` (a socket the guest connected itself
        #: already knows its peer, so hiding it there would protect nothing).
        self.accepted = False
        #: Counted in `context.open_sockets` (created or accepted by the
        #: guest; pre-opens are the operator's and are not counted).
        self.counted = False
        #: The peer as the guest names it (connected to, or accepted from,
        #: after any `->` translation): what the quotas per destination are
        #: kept by, as the rules name destinations.
        self.peer_address: SocketAddress | None = None
        #: The connection-quota slot this socket holds: (destination, rule).
        self.connection: tuple[SocketAddress, str | None] | None = None
        # Decided once per socket (an instance's limits, quotas and observer
        # are fixed when it is made), for `receive` and `send`:
        #: the most bytes one call moves (`limits.max_io_bytes`);
        self.io_cap = context.limits.max_io_bytes
        #: no byte-rate quota and no observer: nothing to meter, charge or count.
        self.plain_io = (not context.quotas.meters_bytes
                         and context.observer is NULL_OBSERVER)

    def release_quotas(self) -> None:
        if self.connection is not None:
            address, rule = self.connection
            self.connection = None
            self.context.close_connection(address, rule)

    def _require(self, operation: str, *states: TcpState) -> None:
        if self.state not in states:
            raise _invalid_state(operation, self.state)

    def bind(self, address: SocketAddress) -> None:
        self._require("bind", TcpState.UNBOUND)
        check_family(address, self.ipv6)
        real, _, decision = translate.local(self.context, self.checker, Use.TCP_BIND, address,
                                            self.ipv6)
        self.take_origin(decision)
        self.bind_checked(Use.TCP_BIND, real)
        self.state = TcpState.BOUND

    def listen(self, backlog: int) -> None:
        self._require("listen", TcpState.UNBOUND, TcpState.BOUND)
        if self.state is TcpState.UNBOUND:
            self.bind(UNSPECIFIED_V6 if self.ipv6 else UNSPECIFIED_V4)
        self.sock.listen(max(1, min(backlog, self.context.limits.max_backlog)))
        self.state = TcpState.LISTENING

    def accept(self) -> tuple[TcpSocket, SocketAddress]:
        self._require("accept", TcpState.LISTENING)
        # Refused before accept(): the connection stays queued, the host
        # holds no new descriptor for a guest over its quota.
        self.context.acquire_socket("accept", "tcp")
        try:
            conn, peer = self.sock.accept()
        except BaseException:
            self.context.release_socket()
            raise
        child = TcpSocket(self.context, self.checker, conn, self.ipv6, TcpState.CONNECTED)
        child.peer_address = translate.seen_peer(self.context, "tcp", peer, self.ipv6)
        child.accepted = True
        child.counted = True
        child.origin = self.origin
        child.opened()
        return child, self.context.peer(child.peer_address)

    def connect(self, address: SocketAddress) -> None:
        """Connect; a non-blocking socket says would-block, then the guest
        waits for `writable` and calls connect again for the outcome."""
        if self.state is TcpState.CONNECTING:
            self._finish_connect(address)
            return
        self._require("connect", TcpState.UNBOUND, TcpState.BOUND)
        check_remote(address, self.ipv6)
        real, mapped, decision = translate.remote(self.context, self.checker,
                                                  Use.TCP_CONNECT, address, self.ipv6)
        self.take_origin(decision)
        # After the policy, before any syscall: a full connection quota
        # costs the host nothing. Quotas count guest-side destinations
        # (what the rules name).
        self.context.open_connection(address, decision.rule)
        self.connection = (address, decision.rule)
        try:
            if self.state is TcpState.UNBOUND:
                # The state stays UNBOUND: a failed connect releases a port
                # the kernel picked (Linux), as it always did.
                self.implicit_bind(Use.TCP_IMPLICIT_BIND)
                self.behind_mapping = mapped
            self.peer_mapped = mapped
            self.sock.connect(real)
        except NetError as error:
            if error.code is ErrorCode.WOULD_BLOCK:
                self.state = TcpState.CONNECTING
                self.connecting_to = address
                self.connecting_real = real
            else:
                self.release_quotas()
            raise
        except BaseException:
            self.release_quotas()
            raise
        self.peer_address = address
        self.state = TcpState.CONNECTED
        self.opened()

    def _finish_connect(self, address: SocketAddress) -> None:
        if address != self.connecting_to:
            raise NetError(ErrorCode.INVALID_STATE, "a connect to another address is in progress")
        try:
            self.sock.connect(self.connecting_real or address)
        except NetError as error:
            if error.code is ErrorCode.WOULD_BLOCK:
                raise
            if error.code is not ErrorCode.INVALID_STATE:  # EISCONN means it succeeded
                self.state = TcpState.BOUND
                self.connecting_to = self.connecting_real = None
                self.release_quotas()
                raise
        self.peer_address = address
        self.state = TcpState.CONNECTED
        self.opened()

    # receive and send are a host call each for every chunk a guest moves
    # (the BSD layer's recv and sendall): the state check is written out,
    # and the meter, the charge and the observer are skipped when the
    # instance has no byte-rate quota and no observer (`plain_io`; each a
    # method call that would do nothing).

    def receive(self, max_len: int, peek: bool = False) -> bytes:
        if self.state is not _CONNECTED:
            raise _invalid_state("receive", self.state)
        if max_len == 0:
            return b""
        cap = self.io_cap
        wanted = max_len if max_len < cap else cap
        if peek:  # consumes nothing: the receive that follows is metered
            return self.sock.receive(wanted, True)
        if self.plain_io:
            return self.sock.receive(wanted, False)
        context = self.context
        if context.quotas.meters_bytes:
            data = self.sock.receive(context.meter(self.peer_address, wanted, self.blocking),
                                     False)
            context.charge(self.peer_address, len(data))
        else:
            data = self.sock.receive(wanted, False)
        observer = context.observer
        if data and observer is not NULL_OBSERVER:
            observer.transferred("tcp", self.origin, len(data), 0)
        return data

    def send(self, data: bytes) -> int:
        if self.state is not _CONNECTED:
            raise _invalid_state("send", self.state)
        if self.send_closed:
            raise NetError(ErrorCode.INVALID_STATE, "send after shutdown(send)")
        # A partial send is what send() may do anyway: the guest loops.
        size = len(data)
        cap = self.io_cap
        allowed = size if size < cap else cap
        if self.plain_io:
            return self.sock.send(data if allowed == size else data[:allowed])
        context = self.context
        if context.quotas.meters_bytes:
            allowed = context.meter(self.peer_address, allowed, self.blocking)
            sent = self.sock.send(data[:allowed])
            context.charge(self.peer_address, sent)
        else:
            sent = self.sock.send(data if allowed == size else data[:allowed])
        observer = context.observer
        if observer is not NULL_OBSERVER:
            observer.transferred("tcp", self.origin, 0, sent)
        return sent

    def splice(self, target: TcpSocket, max_len: int) -> int:
        """Move bytes from this socket to `target` without the guest
        (`fast-io.splice`; the binding hands over the target the guest
        borrowed, so only a socket the guest holds can be named).

        Each chunk is peeked, sent, and only then consumed for as many
        bytes as `target` took, so a `target` that would block or fails
        leaves the rest queued here: nothing is held, nothing is lost.
        Blocking (this socket's mode) waits for the first chunk and goes
        on until `max_len` or end of stream; non-blocking stops as soon as
        either side would block. An error after some bytes moved ends the
        call with the count; the guest sees the error on its next call.
        """
        self._require("splice", TcpState.CONNECTED)
        target._require("splice", TcpState.CONNECTED)
        if target.send_closed:
            raise NetError(ErrorCode.INVALID_STATE, "splice to a socket after shutdown(send)")
        chunk = self.context.limits.max_io_bytes
        moved = 0
        while moved < max_len:
            sent = 0
            try:
                # Metered as a receive here and a send on `target`, like
                # the guest doing both: the lesser allowance moves.
                allowed = self.context.meter(self.peer_address, min(chunk, max_len - moved),
                                             self.blocking)
                data = self.sock.receive(allowed, True)
                if not data:
                    break
                allowed = self.context.meter(target.peer_address, len(data), self.blocking)
                sent = self._splice_send(target, data[:allowed])
                consumed = 0
                while consumed < sent:  # already queued: never waits
                    taken = self.sock.receive(sent - consumed, False)
                    if not taken:
                        break
                    consumed += len(taken)
            except NetError:
                if moved:
                    break
                raise
            finally:
                self.context.charge(self.peer_address, sent)
                self.context.charge(target.peer_address, sent)
            moved += sent
        if moved:
            self.context.observer.transferred("tcp", self.origin, moved, 0)
            target.context.observer.transferred("tcp", target.origin, 0, moved)
        return moved

    def _splice_send(self, target: TcpSocket, data: bytes) -> int:
        """Send a prefix of `data` on `target` in *this* socket's mode.

        The backend send is always non-blocking, whatever `target`'s own
        mode: it then reports exactly how many bytes went out (a blocking
        send that times out part-way does not, and those bytes would be
        spliced again), and a non-blocking splice never waits for a
        blocking target. Blocking, this waits for `target` to be writable,
        within this socket's timeout.
        """
        deadline: float | None = None
        # A target already in non-blocking mode (a loop's socket: the
        # common case, and an echo's target is its source) is sent on as
        # it is: toggling it costs two ioctl(2)s per chunk.
        toggle = target.blocking
        while True:
            if toggle:
                target.sock.set_blocking(False)
            try:
                return target.sock.send(data)
            except NetError as error:
                if error.code is not ErrorCode.WOULD_BLOCK or not self.blocking:
                    raise
            finally:
                if toggle:
                    target._apply_timeout()
            remaining: float | None = None
            if self.timeout is not None:
                now = time.monotonic()
                deadline = now + self.timeout if deadline is None else deadline
                remaining = deadline - now
                if remaining <= 0:
                    raise NetError(ErrorCode.TIMEOUT, "splice: the target stayed full")
            self.context.backend.poll([(transport_of(target.sock), False)], remaining)

    def shutdown(self, receive: bool, send: bool) -> None:
        self._require("shutdown", TcpState.CONNECTED)
        self.sock.shutdown(receive, send)
        if send:
            self.send_closed = True

    def local_address(self) -> SocketAddress:
        if self.state is TcpState.UNBOUND or self.state is TcpState.CLOSED:
            raise _invalid_state("local-address", self.state)
        return translate.seen_local(self.context, "tcp", self.sock.local_address(), self.ipv6,
                                    self.behind_mapping)

    def quota_hold(self) -> float:
        """A connected socket's bytes count against its peer's buckets and
        the instance's (`meter`); a listener or an unconnected socket moves none."""
        if self.state is not TcpState.CONNECTED:
            return 0.0
        return self.context.quota_hold(self.peer_address)

    def remote_address(self) -> SocketAddress:
        self._require("remote-address", TcpState.CONNECTED)
        if self.peer_mapped and self.peer_address is not None:
            return self.peer_address
        peer = self.sock.remote_address()
        if not self.accepted:
            return peer
        return self.context.peer(translate.seen_peer(self.context, "tcp", peer, self.ipv6))
