"""Issue 15, defect 4: with hidden peers, the stand-in is the reply handle.

Before, every send was denied except to the real sender's address (the
reply rule), so a port scan found the sender and delivered the probe.
Now a send to `192.0.0.8:0` / `[100::]:0` is a reply to the socket's last
sender, and the reply rule covers nothing else (SECURITY.md, promise 2,
"Hidden peers"). Over the core with real loopback sockets.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator

import pytest

from capsock.addresses import SocketAddress
from capsock.backends.os import OsBackend
from capsock.core.context import HIDDEN_PEER_V4, HIDDEN_PEER_V6, InstanceContext
from capsock.core.tcp import open_tcp
from capsock.core.udp import UdpSocket, open_udp
from capsock.errors import NetError
from capsock.policy import Policy

SCAN = 40  # ports on each side of the sender's


def make(ipv6: bool = False, **flags: list[str]) -> UdpSocket:
    loopback = "[::1]" if ipv6 else "127.0.0.1"
    flags.setdefault("allow_inbound", [f"udp://{loopback}:*"])
    policy = Policy.from_flags(**flags)
    context = InstanceContext(policy, OsBackend(), hide_peers=True)
    udp = open_udp(context, policy, ipv6)
    udp.bind(SocketAddress(ipaddress.ip_address("::1" if ipv6 else "127.0.0.1"), 0))
    udp.set_timeout(5)
    return udp


@pytest.fixture(params=[False, True], ids=["ipv4", "ipv6"])
def sender(request: pytest.FixtureRequest) -> Iterator[socket.socket]:
    family = socket.AF_INET6 if request.param else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind(("::1" if request.param else "127.0.0.1", 0))
    sock.setblocking(False)
    yield sock
    sock.close()


def address_of(sock: socket.socket, port: int | None = None) -> SocketAddress:
    host, real_port = sock.getsockname()[:2]
    return SocketAddress(ipaddress.ip_address(host), real_port if port is None else port)


def outcome(action: object) -> str:
    try:
        action()  # type: ignore[operator]
    except NetError as error:
        return error.code.value
    return "ok"


def scan(udp: UdpSocket, sender: socket.socket) -> set[str]:
    real = address_of(sender).port
    return {outcome(lambda p=port: udp.send(b"probe", address_of(sender, p)))
            for port in range(max(1, real - SCAN), min(65535, real + SCAN) + 1)}


def test_a_scan_finds_nothing_and_the_stand_in_answers(sender: socket.socket) -> None:
    ipv6 = sender.family == socket.AF_INET6
    udp = make(ipv6)
    try:
        sender.sendto(b"q", udp.local_address().to_os())
        stand_in = HIDDEN_PEER_V6 if ipv6 else HIDDEN_PEER_V4
        assert udp.receive(100) == (b"q", stand_in)
        # Every port of the real sender, its own included: the same answer.
        assert scan(udp, sender) == {"access-denied"}
        with pytest.raises(BlockingIOError):
            sender.recv(100)  # no probe delivered
        assert udp.send(b"answer", stand_in) == 6
        sender.setblocking(True)
        sender.settimeout(5)
        assert sender.recv(100) == b"answer"
    finally:
        udp.close()


def test_an_outbound_rule_allows_every_port_alike(sender: socket.socket) -> None:
    """The other edge: where a rule allows the sender's address, it allows
    its neighbours too; the outcome still says nothing about the sender."""
    ipv6 = sender.family == socket.AF_INET6
    udp = make(ipv6, allow_outbound=["udp://[::1]:*" if ipv6 else "udp://127.0.0.1:*"])
    try:
        sender.sendto(b"q", udp.local_address().to_os())
        udp.receive(100)
        assert scan(udp, sender) == {"ok"}
    finally:
        udp.close()


def test_the_stand_in_before_any_datagram_and_in_the_wrong_family() -> None:
    udp = make()
    try:
        assert outcome(lambda: udp.send(b"x", HIDDEN_PEER_V4)) == "invalid-argument"
        assert outcome(lambda: udp.send(b"x", HIDDEN_PEER_V6)) == "invalid-argument"
    finally:
        udp.close()


def test_the_stand_in_maps_to_the_last_sender_not_a_peeked_one() -> None:
    udp = make()
    first, second = (socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2))
    try:
        for sock in (first, second):
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(5)
        first.sendto(b"1", udp.local_address().to_os())
        assert udp.receive(10)[0] == b"1"
        second.sendto(b"2", udp.local_address().to_os())
        assert udp.receive(10, peek=True)[0] == b"2"
        udp.send(b"to-first", HIDDEN_PEER_V4)  # the peek changed nothing
        assert first.recv(100) == b"to-first"
        assert udp.receive(10)[0] == b"2"
        udp.send(b"to-second", HIDDEN_PEER_V4)
        assert second.recv(100) == b"to-second"
    finally:
        udp.close()
        first.close()
        second.close()


def test_a_deny_rule_still_forbids_the_reply(sender: socket.socket) -> None:
    ipv6 = sender.family == socket.AF_INET6
    loopback = "[::1]" if ipv6 else "127.0.0.1"
    udp = make(ipv6, deny_outbound=[f"udp://{loopback}:{address_of(sender).port}"])
    try:
        sender.sendto(b"q", udp.local_address().to_os())
        udp.receive(100)
        stand_in = HIDDEN_PEER_V6 if ipv6 else HIDDEN_PEER_V4
        assert outcome(lambda: udp.send(b"x", stand_in)) == "access-denied"
        with pytest.raises(BlockingIOError):
            sender.recv(100)
    finally:
        udp.close()


def test_tcp_accept_leaks_nothing_either() -> None:
    """The TCP counterpart: an accepted peer is the stand-in, its real
    address opens nothing (TCP has no reply rule), and the stand-in cannot
    be connected to."""
    policy = Policy.from_flags(allow_inbound=["tcp://127.0.0.1:*"])
    context = InstanceContext(policy, OsBackend(), hide_peers=True)
    listener = open_tcp(context, policy, False)
    client: socket.socket | None = None
    try:
        listener.bind(SocketAddress(ipaddress.ip_address("127.0.0.1"), 0))
        listener.listen(4)
        client = socket.create_connection(listener.local_address().to_os())
        child, peer = listener.accept()
        assert peer == HIDDEN_PEER_V4
        assert child.remote_address() == HIDDEN_PEER_V4
        real = client.getsockname()
        probe = open_tcp(context, policy, False)
        try:
            target = SocketAddress(ipaddress.ip_address(real[0]), real[1])
            assert outcome(lambda: probe.connect(target)) == "access-denied"
            assert outcome(lambda: probe.connect(HIDDEN_PEER_V4)) == "invalid-argument"
        finally:
            probe.close()
        child.close()
    finally:
        listener.close()
        if client is not None:
            client.close()
