"""Pre-opened sockets: readiness waits, and turning a pre-open into a socket.

The binding's `socket` interface hands out pre-opens as untyped handles and
its pollables name a backend socket and a direction; what those mean (the
protocol check, the state a pre-opened socket starts in, the poll limit,
who waits) is decided here, so another binding of the contract would get
the same answers without copying them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import cast

from ..backends.base import DatagramSocket, StreamSocket
from ..backends.tls import plan_waits
from ..errors import ErrorCode, NetError
from .context import InstanceContext, Preopen
from .tcp import TcpSocket, TcpState
from .udp import UdpSocket, UdpState

#: One readiness wait: a backend socket and whether to wait for reading.
Wait = tuple[StreamSocket | DatagramSocket, bool]


def adopt_tcp(context: InstanceContext, preopen: Preopen) -> TcpSocket:
    """The pre-open as a listening TCP socket of the instance.

    A pre-open of another protocol is closed (the guest gave it up) and
    refused with `invalid-argument`. Pre-opens are the operator's: they are
    not counted against the instance's socket limit.
    """
    if preopen.protocol != "tcp":
        preopen.socket.close()
        raise NetError(ErrorCode.INVALID_ARGUMENT, f"{preopen.name} is not a TCP socket")
    # protocol "tcp" means the host made it with backend.open_listener/adopt_tcp.
    stream = cast(StreamSocket, preopen.socket)
    listener = TcpSocket(context, context.checker, stream, preopen.ipv6, TcpState.LISTENING)
    listener.origin = f"preopen {preopen.name}"
    return listener


def adopt_udp(context: InstanceContext, preopen: Preopen) -> UdpSocket:
    """The pre-open as a bound UDP socket of the instance (see `adopt_tcp`)."""
    if preopen.protocol != "udp":
        preopen.socket.close()
        raise NetError(ErrorCode.INVALID_ARGUMENT, f"{preopen.name} is not a UDP socket")
    # protocol "udp" means the host made it with backend.open_udp/adopt_udp.
    datagram = cast(DatagramSocket, preopen.socket)
    udp = UdpSocket(context, context.checker, datagram, preopen.ipv6, UdpState.BOUND,
                    preopened=True)
    udp.origin = f"preopen {preopen.name}"
    return udp


def wait(context: InstanceContext, waits: Sequence[Wait], timeout: float | None) -> list[int]:
    """The indices of `waits` that are ready, waiting up to `timeout`
    seconds (None: until one is). The backend does the waiting, on the
    transports under any TLS layers (`backends.tls.plan_waits`: plaintext
    already decrypted is ready at once, and a stream's unsent ciphertext
    is sent as its transport takes it, however long the guest waits)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        ready, backend_waits, handshake_deadline = plan_waits(waits)
        if ready:
            return ready
        now = time.monotonic()
        remaining = None if deadline is None else max(0.0, deadline - now)
        if handshake_deadline is not None:
            until = max(0.0, handshake_deadline - now)
            remaining = until if remaining is None else min(remaining, until)
        found = context.backend.poll(backend_waits, remaining)
        asked = [index for index in found if index < len(waits)]
        if asked:
            return asked
        if deadline is not None and time.monotonic() >= deadline:
            return []
        # A transport with unsent ciphertext became writable (pump), or a
        # handshake's deadline came (ready now): plan again.


def wait_metered(context: InstanceContext, waits: Sequence[Wait], timeout: float | None,
                 holds: Sequence[Callable[[], float]]) -> list[int]:
    """`wait`, with each socket left out while its byte-rate quota is
    spent: ``holds[i]()`` says for how many seconds more (0.0: not held;
    `SocketCore.quota_hold`). Without byte quotas this is `wait`.

    A socket the kernel has data for is ready to the kernel whatever the
    quota; a non-blocking guest would then poll, receive `would-block` from
    the meter, and poll again without ever sleeping. Held sockets come back
    into the wait when their buckets refill (under a second: a bucket holds
    one second's worth), so every round ends at a refill or the deadline.
    While every socket is held the wait sleeps to the first refill (a kill
    is noticed after it, as with a blocking send's own quota wait)."""
    if not context.quotas.meters_bytes:
        return wait(context, waits, timeout)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        pauses = [hold() for hold in holds]
        active = [index for index, pause in enumerate(pauses) if pause <= 0.0]
        refill = min((pause for pause in pauses if pause > 0.0), default=None)
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        limit = refill if remaining is None else (
            remaining if refill is None else min(refill, remaining))
        if active:
            found = wait(context, [waits[index] for index in active], limit)
            if found:
                return [active[index] for index in found]
        elif limit:
            time.sleep(limit)
        if deadline is not None and time.monotonic() >= deadline:
            return []


def poll(context: InstanceContext, waits: Sequence[Wait], timeout: float | None,
         holds: Sequence[Callable[[], float]] | None = None) -> list[int]:
    """A guest's `poll`: `wait` (`wait_metered` with ``holds``, one per
    wait), after the contract's and the limits' checks."""
    if not waits:
        raise NetError(ErrorCode.INVALID_ARGUMENT, "poll needs at least one pollable")
    if len(waits) > context.limits.max_pollables:
        raise context.limit_reached("poll", "socket", f"{len(waits)} pollables",
                                    "max_pollables")
    if holds is None:
        return wait(context, waits, timeout)
    return wait_metered(context, waits, timeout, holds)


__all__ = ["Wait", "adopt_tcp", "adopt_udp", "poll", "wait", "wait_metered"]
