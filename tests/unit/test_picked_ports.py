"""Issue 15, defect 2: the port the kernel picks is checked too.

A port-0 bind (explicit, or the implicit bind of a connect or send) is
judged by the checker at port 0; the real port is then checked with the
same use, and a denied one closes the socket before anything could reach
it (SECURITY.md, promise 2). Both backends, TCP and UDP, IPv4 and IPv6,
over the core without a guest (the guest's calls reach exactly these).
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from capsock.addresses import SocketAddress
from capsock.backends.base import Backend
from capsock.backends.memory import MemoryBackend, VirtualNetwork
from capsock.backends.os import OsBackend
from capsock.core.audit import AuditLog
from capsock.core.common import SocketCore
from capsock.core.context import InstanceContext
from capsock.core.tcp import TcpState, open_tcp
from capsock.core.udp import UdpState, open_udp
from capsock.errors import ErrorCode, NetError
from capsock.policy import Policy

#: Covers every ephemeral port of both backends (Linux's
#: ip_local_port_range, the memory backend's 49152-65535), so a port-0
#: bind cannot land outside it.
WHOLE_EPHEMERAL = "1024-65535"


def _linux_ephemeral_range() -> str:
    low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    return f"{low}-{high}"


@pytest.fixture(params=["os", "memory"])
def backend(request: pytest.FixtureRequest) -> Backend:
    return OsBackend() if request.param == "os" else MemoryBackend(VirtualNetwork())


@pytest.fixture
def audit(tmp_path: Path) -> Iterator[AuditLog]:
    log = AuditLog(tmp_path / "audit.jsonl")
    yield log
    log.close()


def context(backend: Backend, audit: AuditLog | None = None, **flags: list[str]
            ) -> InstanceContext:
    return InstanceContext(Policy.from_flags(**flags), backend, audit=audit)


def error_of(action: object) -> ErrorCode | None:
    try:
        action()  # type: ignore[operator]
    except NetError as error:
        return error.code
    return None


def address(text: str) -> SocketAddress:
    host, _, port = text.rpartition(":")
    return SocketAddress(ipaddress.ip_address(host.strip("[]")), int(port))


def opened(ctx: InstanceContext, protocol: str, ipv6: bool) -> SocketCore:
    make = open_tcp if protocol == "tcp" else open_udp
    return make(ctx, ctx.checker, ipv6)


@pytest.mark.parametrize("protocol", ["tcp", "udp"])
@pytest.mark.parametrize("loopback", ["127.0.0.1", "::1"])
def test_explicit_port_zero_in_a_denied_range_is_closed(backend: Backend, audit: AuditLog,
                                                         protocol: str, loopback: str) -> None:
    host = f"[{loopback}]" if ":" in loopback else loopback
    ctx = context(backend, audit, allow_inbound=[f"{protocol}://{host}:*"],
                  deny_inbound=[f"{protocol}://{host}:{WHOLE_EPHEMERAL}"])
    sock = opened(ctx, protocol, ":" in loopback)
    try:
        assert error_of(lambda: sock.bind(address(f"{host}:0"))) is ErrorCode.ACCESS_DENIED  # type: ignore[attr-defined]
        # Closed: nothing listens or receives there, and it stays so.
        assert sock.state is (TcpState.CLOSED if protocol == "tcp" else UdpState.CLOSED)
        if protocol == "tcp":
            assert error_of(lambda: sock.listen(8)) is ErrorCode.INVALID_STATE  # type: ignore[attr-defined]
        else:
            assert error_of(lambda: sock.receive(10)) is ErrorCode.INVALID_STATE  # type: ignore[attr-defined]
        assert ctx.open_sockets == 0
    finally:
        sock.close()
    audit.close()
    lines = [json.loads(line) for line in audit.path.read_text().splitlines()]
    # The request (port 0, allowed) then the port the kernel picked (denied).
    assert [(line["operation"], line["allowed"]) for line in lines] == [("bind", True),
                                                                       ("bind", False)]
    picked = address(lines[1]["target"])
    assert picked.port >= 1024
    assert lines[1]["rule"] == f"deny-inbound {protocol}://{host}:{WHOLE_EPHEMERAL}"


@pytest.mark.parametrize("protocol", ["tcp", "udp"])
def test_listen_without_bind_checks_the_picked_port(backend: Backend, protocol: str) -> None:
    """`listen` on an unbound TCP socket binds 0.0.0.0:0 first; UDP has no
    listen, so its counterpart is a bind to the unspecified address."""
    ctx = context(backend, allow_inbound=[f"{protocol}://*:*"],
                  deny_inbound=[f"{protocol}://*:{WHOLE_EPHEMERAL}"])
    sock = opened(ctx, protocol, False)
    try:
        if protocol == "tcp":
            assert error_of(lambda: sock.listen(8)) is ErrorCode.ACCESS_DENIED  # type: ignore[attr-defined]
        else:
            assert error_of(lambda: sock.bind(address("0.0.0.0:0"))) is ErrorCode.ACCESS_DENIED  # type: ignore[attr-defined]
    finally:
        sock.close()


def test_the_issues_case_bind_then_listen_accepts_nobody() -> None:
    """The audit's reproduction: the Linux ephemeral range denied, bind
    127.0.0.1:0 and listen; before the fix a native client was accepted."""
    ctx = context(OsBackend(), allow_inbound=["tcp://127.0.0.1:*"],
                  deny_inbound=[f"tcp://127.0.0.1:{_linux_ephemeral_range()}"])
    sock = open_tcp(ctx, ctx.checker, False)
    try:
        assert error_of(lambda: sock.bind(address("127.0.0.1:0"))) is ErrorCode.ACCESS_DENIED
        assert error_of(lambda: sock.listen(8)) is ErrorCode.INVALID_STATE
    finally:
        sock.close()


@pytest.mark.parametrize("protocol", ["tcp", "udp"])
@pytest.mark.parametrize("loopback", ["127.0.0.1", "::1"])
def test_port_zero_outside_the_denied_range_still_binds(backend: Backend, protocol: str,
                                                         loopback: str) -> None:
    """The edge on the other side: a deny rule below the ephemeral range
    leaves port-0 binds working, on the port the kernel picked."""
    host = f"[{loopback}]" if ":" in loopback else loopback
    ctx = context(backend, allow_inbound=[f"{protocol}://{host}:*"],
                  deny_inbound=[f"{protocol}://{host}:1-1023"])
    sock = opened(ctx, protocol, ":" in loopback)
    try:
        sock.bind(address(f"{host}:0"))  # type: ignore[attr-defined]
        assert sock.local_address().port >= 1024  # type: ignore[attr-defined]
    finally:
        sock.close()


@pytest.fixture
def native_peer(request: pytest.FixtureRequest) -> Iterator[socket.socket]:
    kind = socket.SOCK_STREAM if request.param == "tcp" else socket.SOCK_DGRAM
    peer = socket.socket(socket.AF_INET, kind)
    peer.bind(("127.0.0.1", 0))
    if kind == socket.SOCK_STREAM:
        peer.listen(8)
    peer.setblocking(False)
    yield peer
    peer.close()


@pytest.mark.parametrize("native_peer, how", [("tcp", "connect"), ("udp", "connect"),
                                              ("udp", "send")], indirect=["native_peer"])
def test_implicit_bind_into_a_denied_range_sends_nothing(native_peer: socket.socket,
                                                         how: str) -> None:
    """connect on an unbound TCP socket, connect or send on an unbound UDP
    one: the picked port is checked before a packet leaves."""
    protocol = "tcp" if native_peer.type == socket.SOCK_STREAM else "udp"
    target = address(f"127.0.0.1:{native_peer.getsockname()[1]}")
    ctx = context(OsBackend(), allow_outbound=[f"{protocol}://{target}"],
                  deny_inbound=[f"{protocol}://*:{WHOLE_EPHEMERAL}"])
    sock = opened(ctx, protocol, False)
    try:
        if how == "connect":
            outcome = error_of(lambda: sock.connect(target))  # type: ignore[attr-defined]
        else:
            outcome = error_of(lambda: sock.send(b"probe", target))  # type: ignore[attr-defined]
        assert outcome is ErrorCode.ACCESS_DENIED
        assert sock.state is (TcpState.CLOSED if protocol == "tcp" else UdpState.CLOSED)
    finally:
        sock.close()
    with pytest.raises(BlockingIOError):  # no connection queued, no datagram
        if protocol == "tcp":
            native_peer.accept()
        else:
            native_peer.recv(100)


@pytest.mark.parametrize("protocol", ["tcp", "udp"])
def test_implicit_bind_on_the_memory_backend(protocol: str) -> None:
    net = VirtualNetwork()
    ctx = context(MemoryBackend(net), allow_outbound=[f"{protocol}://[::1]:9"],
                  deny_inbound=[f"{protocol}://*:{WHOLE_EPHEMERAL}"])
    sock = opened(ctx, protocol, True)
    target = address("[::1]:9")
    try:
        if protocol == "tcp":
            assert error_of(lambda: sock.connect(target)) is ErrorCode.ACCESS_DENIED  # type: ignore[attr-defined]
        else:
            assert error_of(lambda: sock.send(b"x", target)) is ErrorCode.ACCESS_DENIED  # type: ignore[attr-defined]
    finally:
        sock.close()


@pytest.mark.parametrize("protocol", ["tcp", "udp"])
def test_implicit_bind_outside_the_denied_range_works(protocol: str) -> None:
    """Only the denied ports fail: a deny rule for other ports changes nothing."""
    peer = socket.socket(socket.AF_INET, socket.SOCK_STREAM if protocol == "tcp"
                         else socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    if protocol == "tcp":
        peer.listen(1)
    target = address(f"127.0.0.1:{peer.getsockname()[1]}")
    ctx = context(OsBackend(), allow_outbound=[f"{protocol}://{target}"],
                  deny_inbound=[f"{protocol}://*:1-1023"])
    sock = opened(ctx, protocol, False)
    try:
        if protocol == "tcp":
            sock.connect(target)  # type: ignore[attr-defined]
            assert sock.state is TcpState.CONNECTED
        else:
            sock.send(b"x", target)  # type: ignore[attr-defined]
            assert peer.recv(10) == b"x"
    finally:
        sock.close()
        peer.close()


def test_a_connect_retried_after_a_refusal_is_refused_again(backend: Backend) -> None:
    """The host's implicit bind does not change a retry: the second connect
    is refused like the first (not `invalid-argument` for binding twice)."""
    ctx = context(backend, allow_outbound=["tcp://127.0.0.1:1"])
    sock = open_tcp(ctx, ctx.checker, False)
    try:
        for _ in range(2):
            assert error_of(lambda: sock.connect(address("127.0.0.1:1"))) is (
                ErrorCode.CONNECTION_REFUSED)
    finally:
        sock.close()
