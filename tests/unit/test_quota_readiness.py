"""A socket whose byte-rate quota is spent is not ready (SECURITY.md,
"Quotas"): readiness waits leave it out until its buckets refill.

Before, the kernel's readiness was the answer: a non-blocking guest with
data waiting but its quota spent polled (ready at once), received
`would-block` from the meter and polled again, spinning a host CPU for as
long as the quota held. Over the core with real sockets on loopback (the
guest's `poll`, `pollable.ready`/`block` and `wasi:io/poll` reach exactly
these), both quota kinds (the instance's and a destination's), TCP and UDP.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from capsock.addresses import SocketAddress, parse_host_port
from capsock.backends.os import OsBackend
from capsock.binding.interfaces.socket import Pollable, Socket
from capsock.core.context import InstanceContext
from capsock.core.limits import Limits
from capsock.core.preopens import poll
from capsock.core.tcp import TcpSocket, open_tcp
from capsock.core.udp import open_udp
from capsock.core.wasi_sockets import _held
from capsock.errors import ErrorCode, NetError
from capsock.policy import Policy

RATE = 2000  # bytes per second: a bucket refills within 0.5 s of being spent


@pytest.fixture
def server() -> Iterator[tuple[int, socket.socket]]:
    """A native peer that has sent 64 KiB by the time the guest connects."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def serve() -> None:
        conn, _ = listener.accept()
        conn.sendall(b"x" * 65536)
        accepted.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], listener
    thread.join(timeout=10)
    for conn in accepted:
        conn.close()
    listener.close()


def _context(limits: Limits, port: int, protocol: str = "tcp") -> InstanceContext:
    policy = Policy.from_flags(allow_outbound=[f"{protocol}://127.0.0.1:{port}"])
    return InstanceContext(policy, OsBackend(), limits=limits)


def _spend(sock: TcpSocket) -> None:
    """Receive until the quota, not the kernel, says would-block."""
    for _ in range(100):
        try:
            sock.receive(65536)
        except NetError as error:
            assert error.code is ErrorCode.WOULD_BLOCK
            return
    raise AssertionError("the quota never ran out")


def _connected(context: InstanceContext, port: int) -> TcpSocket:
    sock = open_tcp(context, context.checker, False)
    sock.connect(parse_host_port(f"127.0.0.1:{port}"))
    sock.set_blocking(False)
    return sock


@pytest.mark.parametrize("limits", [Limits(max_bytes_per_second=RATE),
                                    Limits(max_bytes_per_second_per_destination=RATE)],
                         ids=["instance", "destination"])
def test_a_spent_quota_holds_readiness_until_the_bucket_refills(
        server: tuple[int, socket.socket], limits: Limits) -> None:
    port, _ = server
    context = _context(limits, port)
    sock = _connected(context, port)
    try:
        time.sleep(0.2)  # the peer's 64 KiB are in the kernel
        _spend(sock)
        assert sock.quota_hold() > 0.0
        waits = [(sock.sock, True)]
        assert poll(context, waits, 0.0) == [0]  # the kernel's answer (the old one): data
        # the kernel has data, yet a zero-timeout poll finds nothing ready
        assert poll(context, waits, 0.0, holds=[sock.quota_hold]) == []
        # a waiting poll returns once the bucket holds a byte, not before
        assert poll(context, waits, 5.0, holds=[sock.quota_hold]) == [0]
        assert sock.quota_hold() == 0.0
        assert sock.receive(65536)  # and the receive it announced moves bytes
    finally:
        sock.close()


def test_the_guests_pollables_carry_the_hold(server: tuple[int, socket.socket]) -> None:
    """`subscribe` → `pollable.ready`, `block` and `poll` of the binding."""
    port, _ = server
    context = _context(Limits(max_bytes_per_second=RATE), port)
    sock = _connected(context, port)
    try:
        time.sleep(0.2)
        _spend(sock)
        pollable = Pollable(context, sock.sock, True, hold=sock.quota_hold)
        assert not pollable.ready()
        assert Socket(context).poll([pollable], 0) == []
        pollable.block()
        assert sock.quota_hold() == 0.0 and pollable.ready()
    finally:
        sock.close()


def test_no_quota_no_hold(server: tuple[int, socket.socket]) -> None:
    port, _ = server
    context = _context(Limits(), port)
    sock = _connected(context, port)
    try:
        time.sleep(0.2)
        assert sock.quota_hold() == 0.0
        assert poll(context, [(sock.sock, True)], 5.0, holds=[sock.quota_hold]) == [0]
    finally:
        sock.close()


def test_a_listener_is_never_held() -> None:
    """Accepting moves no bytes: a spent quota leaves a listener's readiness alone."""
    context = InstanceContext(Policy.from_flags(allow_inbound=["tcp://127.0.0.1:*"]),
                              OsBackend(), limits=Limits(max_bytes_per_second=1))
    listener = open_tcp(context, context.checker, False)
    try:
        listener.bind(parse_host_port("127.0.0.1:0"))
        listener.listen(4)
        context.charge(None, 10)  # the instance's bucket is spent
        assert listener.quota_hold() == 0.0
        local: SocketAddress = listener.local_address()
        with socket.create_connection(("127.0.0.1", local.port), timeout=10):
            assert poll(context, [(listener.sock, True)], 5.0,
                        holds=[listener.quota_hold]) == [0]
    finally:
        listener.close()


def test_udp_and_wasi_readiness_are_held_too() -> None:
    """UDP (the instance's bucket for an unconnected socket) and the WASI
    pollables' readiness (a timer until the refill: `wasi_poll`)."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    port = receiver.getsockname()[1]
    context = _context(Limits(max_bytes_per_second=RATE), port, "udp")
    sock = open_udp(context, context.checker, False)
    try:
        assert sock.quota_hold() == 0.0 and _held(sock) is None
        context.charge(None, RATE * 2)  # spent for about a second
        hold = sock.quota_hold()
        assert 0.0 < hold <= 2.0
        when = _held(sock)
        assert when is not None and when > time.monotonic()
    finally:
        sock.close()
        receiver.close()
