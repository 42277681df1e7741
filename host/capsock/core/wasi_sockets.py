"""The `wasi:sockets` 0.2 protocols over the core's TCP and UDP sockets.

`wasi:sockets` splits each blocking step into a `start-*` / `finish-*`
pair and moves bytes through `wasi:io` streams. This module adds exactly
that to :class:`capsock.core.tcp.TcpSocket` and
:class:`capsock.core.udp.UdpSocket`, which still do every policy check,
audit line, limit, implicit bind and hidden-peer substitution: nothing
here talks to a backend except through them (or, for readiness, through
the same backend socket they hold). It knows no WIT; the binding
(`binding/wasi/sockets.py`) converts.

TCP, as the 0.2 documentation says, function by function (`pending` is
the start without its finish; the core's `state` is the rest):

===================  ============================================  =====================
operation            allowed when                                  otherwise
===================  ============================================  =====================
start-bind           nothing pending, unbound                      concurrency-conflict,
                                                                   invalid-state
finish-bind          bind pending                                  not-in-progress
start-connect        nothing pending, unbound or bound             concurrency-conflict,
                                                                   invalid-state
finish-connect       connect pending; would-block until connected  not-in-progress
start-listen         nothing pending, bound                        concurrency-conflict,
                                                                   invalid-state
finish-listen        listen pending                                not-in-progress
accept               listening                                     invalid-state
shutdown, streams    connected                                     invalid-state
===================  ============================================  =====================

A connect that fails leaves the socket *closed* (the spec: only `drop` is
left; every later call is `invalid-state`). Errors found before any system
call (`invalid-argument`, `access-denied`, `invalid-state`) are returned by
`start-connect` and change nothing; the outcome of the connection attempt
itself is returned by `finish-connect`.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Sequence
from typing import cast

from ..addresses import IPAddress, SocketAddress
from ..backends.base import DatagramSocket, StreamSocket
from ..backends.options import REUSE_ADDRESS
from ..errors import ErrorCode, NetError
from ..policy import Use
from .common import SocketCore
from .context import InstanceContext, Preopen
from .tcp import TcpSocket, TcpState
from .udp import UdpSocket, UdpState

#: Errors `start-connect` returns itself: found before any system call.
_BEFORE_SYSCALL = frozenset({ErrorCode.ACCESS_DENIED, ErrorCode.INVALID_ARGUMENT,
                             ErrorCode.INVALID_STATE, ErrorCode.LIMIT_REACHED})
#: The listen backlog before `set-listen-backlog-size` (wasmtime's default).
DEFAULT_BACKLOG = 128



def _held(core: SocketCore) -> float | None:
    """When a socket whose byte-rate quota is spent may move a byte again
    (a monotonic time: the pollable is a timer until then, `wasi_poll`),
    or None when it may now (`SocketCore.quota_hold`): without this a
    guest would poll, get `would-block` from the meter, and poll again
    at full speed."""
    hold = core.quota_hold()
    return time.monotonic() + hold if hold > 0.0 else None

class Pending(enum.Enum):
    BIND = "bind"
    CONNECT = "connect"
    LISTEN = "listen"


def _error(code: ErrorCode, detail: str) -> NetError:
    return NetError(code, detail)


def _check_bind_address(address: SocketAddress) -> None:
    """`start-bind`'s `invalid-argument` for an address that is not
    unicast (the spec; wasmtime and jco agree), before the policy is
    asked: a multicast or broadcast bind is malformed, not denied."""
    ip = address.ip
    if ip.is_multicast or (ip.version == 4 and int(ip) == 0xFFFFFFFF):
        raise _error(ErrorCode.INVALID_ARGUMENT, f"{ip} is not a unicast address")


def _is_ephemeral_any(address: SocketAddress) -> bool:
    """The unspecified address with port 0: what wasi-libc binds a UDP
    socket to before its first `sendto` (an implicit bind in all but name)."""
    return address.port == 0 and address.ip.is_unspecified


class WasiTcp:
    """A `wasi:sockets/tcp.tcp-socket`: the start/finish protocol over a
    non-blocking core socket (waiting is the guest's, through pollables)."""

    def __init__(self, core: TcpSocket) -> None:
        self.core = core
        core.set_blocking(False)
        self.pending: Pending | None = None
        #: A connect failed: the socket is closed for every call but drop.
        self.failed = False
        self.backlog = DEFAULT_BACKLOG
        #: The outcome of a connect found by the system call of start-connect.
        self._connect_error: NetError | None = None
        #: Bound by taking over a pre-opened listener (`start_bind`).
        self.adopted = False

    @property
    def ipv6(self) -> bool:
        return self.core.ipv6

    def _live(self, operation: str) -> None:
        if self.failed or self.core.state is TcpState.CLOSED:
            raise _error(ErrorCode.INVALID_STATE, f"{operation} on a closed socket")

    def _not_pending(self, operation: str) -> None:
        self._live(operation)
        if self.pending is not None:
            raise _error(ErrorCode.CONCURRENCY_CONFLICT,
                         f"{operation} while a {self.pending.value} is in progress")

    # -- bind --------------------------------------------------------------
    def start_bind(self, address: SocketAddress) -> None:
        """Bind; or, when the operator pre-opened a listener at exactly
        `address` (`--tcplisten`, `capsock serve`), take that listener
        over instead: `wasi:sockets` has no pre-opened sockets, so a stock
        server binding its port is how it finds the one it was given (a
        pre-open needs no rule, as in `capsock:net`)."""
        self._not_pending("start-bind")
        _check_bind_address(address)
        if self.core.state is TcpState.UNBOUND:
            preopen = take_preopen(self.core.context, "tcp", address)
            if preopen is not None:
                self._adopt(preopen)
                self.pending = Pending.BIND
                return
            # The spec's implementors' note: SO_REUSEADDR on bind, so a
            # server rebinds its port while old connections sit in
            # TIME_WAIT (wasmtime does the same on POSIX).
            self.core.set_option(REUSE_ADDRESS, 1)
        self.core.bind(address)  # family, policy, bind; invalid-state if bound
        self.pending = Pending.BIND

    def _adopt(self, preopen: Preopen) -> None:
        old = self.core
        self.core = TcpSocket(old.context, old.checker, cast(StreamSocket, preopen.socket),
                              old.ipv6, TcpState.BOUND)
        self.core.set_blocking(False)
        self.adopted = True
        old.close()

    def finish_bind(self) -> None:
        self._finish(Pending.BIND)

    def _finish(self, what: Pending) -> None:
        self._live(f"finish-{what.value}")
        if self.pending is not what:
            raise _error(ErrorCode.NOT_IN_PROGRESS, f"no {what.value} in progress")
        self.pending = None

    # -- connect -----------------------------------------------------------
    def start_connect(self, address: SocketAddress) -> None:
        self._not_pending("start-connect")
        if self.core.state not in (TcpState.UNBOUND, TcpState.BOUND):
            raise _error(ErrorCode.INVALID_STATE, f"connect on a {self.core.state.value} socket")
        try:
            self.core.connect(address)
        except NetError as error:
            if error.code is ErrorCode.WOULD_BLOCK:
                self.pending = Pending.CONNECT
                return
            if error.code in _BEFORE_SYSCALL:
                raise
            self._connect_error = error
        self.pending = Pending.CONNECT

    def finish_connect(self) -> None:
        """Connected, or `would-block` while the attempt goes on, or the
        attempt's error (then the socket is closed)."""
        self._live("finish-connect")
        if self.pending is not Pending.CONNECT:
            raise _error(ErrorCode.NOT_IN_PROGRESS, "no connect in progress")
        if self._connect_error is not None:
            error, self._connect_error = self._connect_error, None
            self._fail()
            raise error
        core = self.core
        if core.state is TcpState.CONNECTING:
            if not core.context.backend.poll([(core.sock, False)], 0.0):
                raise _error(ErrorCode.WOULD_BLOCK, "connect in progress")
            target = core.connecting_to
            assert target is not None
            try:
                core.connect(target)
            except NetError as error:
                if error.code is ErrorCode.WOULD_BLOCK:
                    raise
                self._fail()
                raise
        self.pending = None

    def _fail(self) -> None:
        self.pending = None
        self.failed = True
        self.core.close()

    # -- listen, accept ----------------------------------------------------
    def start_listen(self) -> None:
        self._not_pending("start-listen")
        if self.core.state is not TcpState.BOUND:
            raise _error(ErrorCode.INVALID_STATE,
                         f"listen on a {self.core.state.value} socket (bind first)")
        if self.adopted:  # the operator's listener: listening already
            self.core.state = TcpState.LISTENING
        else:
            self.core.listen(self.backlog)
        self.pending = Pending.LISTEN

    def finish_listen(self) -> None:
        self._finish(Pending.LISTEN)

    def listening(self) -> bool:
        return self.core.state is TcpState.LISTENING and self.pending is None \
            and not self.failed

    def accept(self) -> WasiTcp:
        self._live("accept")
        if not self.listening():
            raise _error(ErrorCode.INVALID_STATE, "accept on a socket that is not listening")
        child, _peer = self.core.accept()
        return WasiTcp(child)

    def set_listen_backlog_size(self, value: int) -> None:
        self._live("set-listen-backlog-size")
        if value == 0:
            raise _error(ErrorCode.INVALID_ARGUMENT, "backlog 0")
        if self.core.state in (TcpState.CONNECTING, TcpState.CONNECTED):
            raise _error(ErrorCode.INVALID_STATE, "backlog of a connection")
        self.backlog = min(value, 1 << 31)
        if self.core.state is TcpState.LISTENING:
            self.core.sock.listen(max(1, min(self.backlog,
                                             self.core.context.limits.max_backlog)))

    # -- addresses, shutdown -------------------------------------------------
    def connected(self) -> bool:
        return self.core.state is TcpState.CONNECTED and self.pending is None \
            and not self.failed

    def local_address(self) -> SocketAddress:
        self._live("local-address")
        if self.pending is Pending.BIND:
            raise _error(ErrorCode.INVALID_STATE, "bind not finished")
        return self.core.local_address()

    def remote_address(self) -> SocketAddress:
        self._live("remote-address")
        if not self.connected():
            raise _error(ErrorCode.INVALID_STATE, "not connected")
        return self.core.remote_address()

    def shutdown(self, receive: bool, send: bool) -> None:
        self._live("shutdown")
        if not self.connected():
            raise _error(ErrorCode.INVALID_STATE, "not connected")
        self.core.shutdown(receive, send)

    def readiness(self) -> tuple[StreamSocket, bool] | None:
        """What `subscribe` waits for: a connect to finish, a connection
        to accept; anything else is ready at once."""
        if self.failed or self.core.state is TcpState.CLOSED:
            return None
        if self.pending is Pending.CONNECT and self._connect_error is None \
                and self.core.state is TcpState.CONNECTING:
            return (self.core.sock, False)
        if self.listening():
            return (self.core.sock, True)
        return None

    def close(self) -> None:
        self.core.close()


class TcpReader:
    """The input half of a connected `WasiTcp`: what `input-stream` reads."""

    def __init__(self, tcp: WasiTcp) -> None:
        self.tcp = tcp

    def read(self, max_len: int) -> bytes | None:
        """Up to `max_len` bytes without waiting (maybe none); None at the
        end of the stream. Failures raise NetError."""
        if max_len == 0:
            return b""
        try:
            data = self.tcp.core.receive(max_len)
        except NetError as error:
            if error.code is ErrorCode.WOULD_BLOCK:
                return b""
            if error.code is ErrorCode.INVALID_STATE:
                return None  # the socket was closed under the stream
            raise
        return data if data else None

    def readiness(self) -> tuple[StreamSocket, bool] | float | None:
        if self.tcp.core.state is not TcpState.CONNECTED:
            return None
        return _held(self.tcp.core) or (self.tcp.core.sock, True)


class TcpWriter:
    """The output half: what `output-stream` writes.

    A write never waits: what the kernel does not take at once is kept in
    `pending` and pushed out by later calls (`check-write`, `flush`), and
    `check-write` grants nothing until it is gone (the spec's "permit"),
    so the host holds at most one permit's worth per stream.
    """

    def __init__(self, tcp: WasiTcp, permit: int) -> None:
        self.tcp = tcp
        self.permit = permit
        self.pending = bytearray()
        #: A write failed: reported once by the next call, then closed.
        self.error: NetError | None = None
        self.closed = False

    def _check(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            self.closed = True
            raise error
        if self.closed or self.tcp.core.send_closed \
                or self.tcp.core.state is not TcpState.CONNECTED:
            self.closed = True
            raise EOFError

    def _push(self) -> None:
        """Send what is pending, without waiting."""
        while self.pending:
            try:
                sent = self.tcp.core.send(bytes(self.pending))
            except NetError as error:
                if error.code is ErrorCode.WOULD_BLOCK:
                    return
                self.pending.clear()
                if error.code is ErrorCode.INVALID_STATE:
                    self.closed = True
                    raise EOFError from None
                self.error = error
                self._check()
                return
            del self.pending[:sent]

    def check_write(self) -> int:
        """How many bytes `write` may take now (0: wait). EOFError when
        closed; NetError for a failure."""
        self._check()
        self._push()
        return 0 if self.pending else self.permit

    def write(self, data: bytes) -> None:
        self._check()
        self.pending += data
        self._push()

    def flushed(self) -> bool:
        self._check()
        self._push()
        return not self.pending

    def readiness(self) -> tuple[StreamSocket, bool] | float | None:
        if not self.pending or self.tcp.core.state is not TcpState.CONNECTED:
            return None
        return _held(self.tcp.core) or (self.tcp.core.sock, False)


class WasiUdp:
    """A `wasi:sockets/udp.udp-socket`: start/finish bind and `stream`.

    Datagrams go through the core socket (non-blocking), so the receive
    filter, the reply rule and hidden peers are those of `capsock:net`.
    """

    def __init__(self, core: UdpSocket) -> None:
        self.core = core
        core.set_blocking(False)
        self.bind_pending = False
        #: Bumped by each `stream` call: streams of an older one are dead.
        self.generation = 0

    @property
    def ipv6(self) -> bool:
        return self.core.ipv6

    def _live(self, operation: str) -> None:
        if self.core.state is UdpState.CLOSED:
            raise _error(ErrorCode.INVALID_STATE, f"{operation} on a closed socket")

    def start_bind(self, address: SocketAddress) -> None:
        self._live("start-bind")
        if self.bind_pending:
            raise _error(ErrorCode.CONCURRENCY_CONFLICT, "a bind is in progress")
        if self.core.state is UdpState.UNBOUND:
            preopen = take_preopen(self.core.context, "udp", address)
            if preopen is not None:  # `--udpbind`: as WasiTcp.start_bind
                old = self.core
                self.core = UdpSocket(old.context, old.checker,
                                      cast(DatagramSocket, preopen.socket), old.ipv6,
                                      UdpState.BOUND, preopened=True)
                self.core.set_blocking(False)
                old.close()
                self.bind_pending = True
                return
            if _is_ephemeral_any(address) and not self._explicitly_allowed(address):
                # wasi-libc's bind before `sendto`: capsock:net's implicit
                # bind (no inbound rule; the receive filter then admits
                # only peers the guest may send to), not a server's bind.
                self.core.check_family_of(address)
                self.core.implicit_bind_now()
                self.bind_pending = True
                return
        self.core.bind(address)
        self.bind_pending = True

    def _explicitly_allowed(self, address: SocketAddress) -> bool:
        """Whether an inbound rule allows binding `address` (then it stays
        an explicit bind that receives from anyone, as in capsock:net)."""
        context = self.core.context
        return context.check(self.core.checker, Use.UDP_BIND, address).allowed

    def finish_bind(self) -> None:
        self._live("finish-bind")
        if not self.bind_pending:
            raise _error(ErrorCode.NOT_IN_PROGRESS, "no bind in progress")
        self.bind_pending = False

    def bound(self) -> bool:
        return self.core.state in (UdpState.BOUND, UdpState.CONNECTED) and not self.bind_pending

    def stream(self, remote: SocketAddress | None) -> int:
        """(Re)connect or disconnect; returns the new streams' generation."""
        self._live("stream")
        if not self.bound():
            raise _error(ErrorCode.INVALID_STATE, "stream on an unbound socket")
        if self.core.state is UdpState.CONNECTED:
            self.core.disconnect()
        if remote is not None:
            self.core.connect(remote)
        self.generation += 1
        return self.generation

    def local_address(self) -> SocketAddress:
        self._live("local-address")
        if self.bind_pending:
            raise _error(ErrorCode.INVALID_STATE, "bind not finished")
        return self.core.local_address()

    def remote_address(self) -> SocketAddress:
        self._live("remote-address")
        return self.core.remote_address()

    def receive(self, max_results: int) -> list[tuple[bytes, SocketAddress]]:
        """Up to `max_results` datagrams without waiting."""
        got: list[tuple[bytes, SocketAddress]] = []
        while len(got) < max_results:
            try:
                got.append(self.core.receive(self.core.context.limits.max_datagram))
            except NetError as error:
                if error.code is ErrorCode.WOULD_BLOCK and True:
                    break
                if got:
                    break
                raise
        return got

    def send(self, datagrams: Sequence[tuple[bytes, SocketAddress | None]]) -> int:
        """Send in order; the count sent. An error after the first is
        reported by the count (the spec: the rest were not sent)."""
        sent = 0
        for data, address in datagrams:
            try:
                self.core.send(data, address)
            except NetError as error:
                if sent:
                    return sent
                if error.code is ErrorCode.WOULD_BLOCK:
                    return 0
                raise
            sent += 1
        return sent

    def readiness(self, readable: bool) -> tuple[DatagramSocket, bool] | float | None:
        if self.core.state is UdpState.CLOSED:
            return None
        return _held(self.core) or (self.core.sock, readable)

    def close(self) -> None:
        self.core.close()


def take_preopen(context: InstanceContext, protocol: str,
                 address: SocketAddress) -> Preopen | None:
    """Remove and return the instance's unclaimed pre-open of `protocol`
    bound at exactly `address`, if there is one."""
    with context.lock:
        for i, preopen in enumerate(context.preopens):
            if preopen.protocol != protocol or preopen.ipv6 != address.is_ipv6:
                continue
            try:
                local = preopen.socket.local_address()
            except NetError:
                continue
            if local == address:
                return context.preopens.pop(i)
    return None


class Lookup:
    """The addresses a lookup found, handed out one by one."""

    def __init__(self, addresses: Sequence[IPAddress]) -> None:
        self.addresses = list(addresses)

    def next(self) -> IPAddress | None:
        return self.addresses.pop(0) if self.addresses else None


__all__ = ["DEFAULT_BACKLOG", "Lookup", "Pending", "TcpReader", "TcpWriter", "WasiTcp",
           "WasiUdp"]
