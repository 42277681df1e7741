"""The UDP core over real loopback sockets, without a guest: the receive
filter (also through peek), replies, implicit binds, illegal states."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator

import pytest

from capsock.addresses import SocketAddress, parse_host_port
from capsock.backends.os import OsBackend
from capsock.core.context import HIDDEN_PEER_V4, InstanceContext
from capsock.core.udp import UdpSocket, UdpState
from capsock.errors import ErrorCode, NetError
from capsock.policy import Policy


@pytest.fixture
def peers() -> Iterator[list[socket.socket]]:
    socks = []
    for _ in range(2):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.settimeout(5)
        socks.append(s)
    yield socks
    for s in socks:
        s.close()


def addr(sock: socket.socket) -> SocketAddress:
    host, port = sock.getsockname()
    return SocketAddress(ipaddress.ip_address(host), port)


def make(flags: dict[str, list[str]], hide: bool = False) -> UdpSocket:
    policy = Policy.from_flags(**flags)
    backend = OsBackend()
    context = InstanceContext(policy, backend, hide_peers=hide)
    return UdpSocket(context, policy, backend.udp_socket(False), False)


def code(action: object) -> ErrorCode | None:
    try:
        action()  # type: ignore[operator]
    except NetError as error:
        return error.code
    return None


@pytest.mark.parametrize("peek", [False, True])
def test_filter_drops_other_senders_even_through_peek(peers: list[socket.socket],
                                                      peek: bool) -> None:
    good, rogue = peers
    udp = make({"allow_outbound": [f"udp://{addr(good)}"]})
    try:
        udp.set_timeout(2)
        udp.send(b"hi", addr(good))
        _, local = good.recvfrom(100)
        rogue.sendto(b"rogue", local)
        good.sendto(b"good", local)
        data, sender = udp.receive(100, peek=peek)
        assert (data, sender) == (b"good", addr(good))
        if peek:  # the peeked datagram is still there; the rogue one is gone
            assert udp.receive(100) == (b"good", addr(good))
        udp.set_blocking(False)
        assert code(lambda: udp.receive(100)) is ErrorCode.WOULD_BLOCK
    finally:
        udp.close()


def test_timeout_while_only_dropped_datagrams_arrive(peers: list[socket.socket]) -> None:
    good, rogue = peers
    udp = make({"allow_outbound": [f"udp://{addr(good)}"]})
    try:
        udp.send(b"hi", addr(good))
        _, local = good.recvfrom(100)
        rogue.sendto(b"rogue", local)
        udp.set_timeout(0.3)
        assert code(lambda: udp.receive(100)) is ErrorCode.TIMEOUT
    finally:
        udp.close()


def test_bound_by_inbound_rule_receives_from_anyone_and_may_reply(
        peers: list[socket.socket]) -> None:
    stranger = peers[0]
    udp = make({"allow_inbound": ["udp://127.0.0.1:*"]}, hide=False)
    try:
        udp.bind(parse_host_port("127.0.0.1:0"))
        udp.set_timeout(2)
        stranger.sendto(b"q", udp.local_address().to_os())
        data, sender = udp.receive(100)
        assert sender == addr(stranger)
        assert udp.send(b"a", sender) == 1  # a reply needs no outbound rule
        assert stranger.recvfrom(100)[0] == b"a"
        assert code(lambda: udp.send(b"x", addr(peers[1]))) is ErrorCode.ACCESS_DENIED
    finally:
        udp.close()


def test_hidden_sender() -> None:
    udp = make({"allow_inbound": ["udp://127.0.0.1:*"]}, hide=True)
    try:
        udp.bind(parse_host_port("127.0.0.1:0"))
        udp.set_timeout(2)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.sendto(b"q", udp.local_address().to_os())
            assert udp.receive(100) == (b"q", HIDDEN_PEER_V4)
    finally:
        udp.close()


def test_states(peers: list[socket.socket]) -> None:
    udp = make({"allow_outbound": ["udp://127.0.0.1:*"], "allow_inbound": ["udp://127.0.0.1:*"]})
    try:
        assert code(lambda: udp.receive(10)) is ErrorCode.INVALID_STATE
        assert code(udp.disconnect) is ErrorCode.INVALID_STATE
        assert code(udp.local_address) is ErrorCode.INVALID_STATE
        assert code(lambda: udp.send(b"x", None)) is ErrorCode.INVALID_ARGUMENT
        assert code(lambda: udp.send(b"x", parse_host_port("127.0.0.1:0"))) is (
            ErrorCode.INVALID_ARGUMENT)
        assert code(lambda: udp.send(b"x", parse_host_port("[::1]:9"))) is (
            ErrorCode.INVALID_ARGUMENT)
        assert udp.state is UdpState.UNBOUND
        udp.connect(addr(peers[0]))
        assert udp.state is UdpState.CONNECTED
        assert code(lambda: udp.bind(parse_host_port("127.0.0.1:0"))) is ErrorCode.INVALID_STATE
        assert code(lambda: udp.send(b"x", addr(peers[1]))) is ErrorCode.INVALID_ARGUMENT
        assert udp.send(b"x", addr(peers[0])) == 1
        udp.disconnect()
        assert udp.state is UdpState.UNBOUND  # Linux released the implicit port
        assert code(udp.remote_address) is ErrorCode.INVALID_STATE
    finally:
        udp.close()
    assert udp.state is UdpState.CLOSED
