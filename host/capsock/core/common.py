"""What TCP and UDP sockets of the core share: modes, options, closing.

Option values are checked here against their row in
:mod:`capsock.backends.options`, for both protocols and every backend.

Both state machines have an ``UNBOUND`` and a ``CLOSED`` state; the rest
of their states and transitions stay in `tcp.py` and `udp.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Protocol, TypeVar

from ..addresses import SocketAddress
from ..backends.options import OptionKind, SocketOption
from ..errors import ErrorCode, NetError
from ..policy import Checker, Decision, Use
from . import translate
from .context import UNSPECIFIED_V4, UNSPECIFIED_V6, InstanceContext

_Made = TypeVar("_Made")


def make_counted(context: InstanceContext, protocol: str, make: Callable[[], _Made]) -> _Made:
    """Make a guest socket's backend socket, counted against `max_sockets`
    before the backend is asked (so a refused create costs nothing)."""
    context.acquire_socket("create", protocol)
    try:
        return make()
    except BaseException:
        context.release_socket()
        raise


def normalise_option(context: InstanceContext, option: SocketOption, value: int) -> int:
    """Validate a value against the option's row and bring it to what the
    backend will hold: `invalid-argument` below the minimum, clamped to
    the maximum, buffer sizes capped at `max_buffer_bytes`, durations
    rounded up to whole seconds (never down to 0), flags 0 or 1."""
    if value < option.minimum:
        raise NetError(ErrorCode.INVALID_ARGUMENT,
                       f"{option.name} must be at least {option.minimum}")
    if option.maximum is not None:
        value = min(value, option.maximum)
    kind = option.kind
    if kind is OptionKind.FLAG:
        return int(bool(value))
    if kind is OptionKind.BYTES:
        return min(value, context.limits.max_buffer_bytes)
    if kind is OptionKind.DURATION:
        return -(-value // option.unit) * option.unit
    return value


class _ModalSocket(Protocol):
    """The part of a backend socket (stream or datagram) used here."""

    def set_blocking(self, blocking: bool) -> None: ...
    def set_timeout(self, seconds: float | None) -> None: ...
    def get_option(self, option: SocketOption) -> int: ...
    def set_option(self, option: SocketOption, value: int) -> None: ...
    def close(self) -> None: ...
    def bind(self, address: SocketAddress) -> None: ...
    def local_address(self) -> SocketAddress: ...


class SocketCore:
    """Blocking mode, timeouts, options and close for a core socket.

    Subclasses set `protocol` ("tcp" or "udp"), `context`, `sock` (the
    backend socket), `state` (an enum with UNBOUND and CLOSED),
    `blocking`, `timeout` and `counted`.
    """

    protocol: ClassVar[str]
    context: InstanceContext
    checker: Checker
    ipv6: bool
    sock: _ModalSocket
    state: Any
    blocking: bool
    timeout: float | None
    counted: bool
    #: What labels this socket's traffic for the observer (core/observe.py):
    #: the rule that let it exist, `preopen <name>`, or "implicit".
    origin: str = "implicit"
    #: Counted as an open connection by the observer (`opened`).
    observed_open: bool = False

    def take_origin(self, decision: Decision) -> None:
        """Label this socket's traffic with the rule that allowed it."""
        self.origin = decision.rule or "-"

    def opened(self) -> None:
        """The socket is a connection now (the observer's gauge; `close`
        takes it back)."""
        if not self.observed_open:
            self.observed_open = True
            self.context.observer.connection(self.protocol, self.origin, 1)

    def set_blocking(self, blocking: bool) -> None:
        self.blocking = blocking
        self._apply_timeout()

    def quota_hold(self) -> float:
        """Seconds until the byte-rate quotas let this socket move a byte
        (`InstanceContext.quota_hold`; 0.0: now, and always for a socket
        that moves no bytes); the protocols say whose buckets count."""
        return 0.0

    def set_timeout(self, seconds: float | None) -> None:
        if seconds is not None and seconds <= 0:
            raise NetError(ErrorCode.INVALID_ARGUMENT, "timeout must be positive")
        self.timeout = seconds
        self._apply_timeout()

    def _apply_timeout(self) -> None:
        if not self.blocking:
            self.sock.set_blocking(False)
        else:
            self.sock.set_timeout(self.timeout)

    def bind_checked(self, use: Use, address: SocketAddress) -> None:
        """Bind the backend socket to `address` (already allowed for `use`,
        and real: translated by `translate.local`), and if its port is 0,
        check the port the kernel picked (`translate.check_picked`).

        The checker judged port 0; the socket ends up on a port it never
        saw, maybe one a deny rule covers (`--deny-inbound=
        tcp://127.0.0.1:32768-60999` and a bind to `127.0.0.1:0`). So the
        real local address is checked with the same use, audited only when
        denied (the request itself was audited). Denied, the socket is
        closed at once: a TCP socket is bound but not yet listening, a UDP
        socket's queued datagrams are never read, so nothing was reachable
        through the port; every later call on it is `invalid-state`. The
        host does not retry another port: where a deny rule covers only
        part of the ephemeral range, port-0 binds fail in proportion.
        Explicit binds (`bind`, `listen` on an unbound socket) and implicit
        ones (`connect`, a UDP `send`) all come here.
        """
        self.sock.bind(address)
        if address.port != 0:
            return
        try:
            translate.check_picked(self.context, self.checker, use, self.sock.local_address(),
                                   self.ipv6)
        except NetError:
            self.close()
            raise

    def implicit_bind(self, use: Use) -> None:
        """The ephemeral bind of a connect or send on an unbound socket,
        done by the host rather than the kernel's autobind so the picked
        port goes through `bind_checked` before anything is sent.

        A socket the backend already bound (a connect that failed after
        the memory backend bound it, or a test double that never
        connected) keeps its port: it was checked when it was bound.
        """
        self.context.require_implicit_bind(self.checker, use, self.ipv6)
        try:
            bound = self.sock.local_address().port != 0
        except NetError:
            bound = False
        if not bound:
            self.bind_checked(use, UNSPECIFIED_V6 if self.ipv6 else UNSPECIFIED_V4)

    def get_option(self, option: SocketOption) -> int:
        self._check_protocol(option)
        return self.sock.get_option(option)

    def set_option(self, option: SocketOption, value: int) -> None:
        """Set an option after checking it against its registry row."""
        self._check_protocol(option)
        if option.before_bind and self.state is not type(self.state).UNBOUND:
            raise NetError(ErrorCode.INVALID_STATE,
                           f"set-{option.name} on a {self.state.value} socket")
        self.sock.set_option(option, normalise_option(self.context, option, value))

    def _check_protocol(self, option: SocketOption) -> None:
        if self.protocol not in option.protocols:
            raise NetError(ErrorCode.NOT_SUPPORTED,
                           f"{option.name} is not an option of {self.protocol} sockets")

    def close(self) -> None:
        closed = type(self.state).CLOSED
        if self.state is not closed:
            self.state = closed
            if self.observed_open:
                self.observed_open = False
                self.context.observer.connection(self.protocol, self.origin, -1)
            try:
                self.sock.close()
            finally:
                self.release_quotas()
                if self.counted:
                    self.counted = False
                    self.context.release_socket()

    def release_quotas(self) -> None:
        """Give back what this socket holds of the per-destination quotas
        (a TCP connection's slot); nothing for most sockets."""
