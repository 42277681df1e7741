"""Audit mode in the core (`--policy-mode=audit`), over real loopback
sockets without a guest: a denied send, receive and resolve go ahead and
are written as `would-deny` lines; what no policy decides (an unspecified
destination, a limit) is still refused."""

from __future__ import annotations

import ipaddress
import json
import socket
from pathlib import Path

import pytest

from capsock.addresses import SocketAddress
from capsock.backends.os import OsBackend
from capsock.backends.resolvers import DictResolver
from capsock.core.audit import AuditLog
from capsock.core.context import InstanceContext
from capsock.core.limits import Limits
from capsock.core.resolve import NameResolver
from capsock.core.udp import UdpSocket
from capsock.errors import ErrorCode, NetError
from capsock.policy import Policy


def addr(sock: socket.socket) -> SocketAddress:
    host, port = sock.getsockname()
    return SocketAddress(ipaddress.ip_address(host), port)


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_denied_operations_go_ahead_as_would_deny(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    policy = Policy.from_flags(deny_outbound=["udp://loopback:*"])
    context = InstanceContext(policy, OsBackend(), audit=log, audit_mode=True,
                              resolver=DictResolver({"db.test": ["127.0.0.1"]}),
                              limits=Limits(max_sockets=2))
    assert context.grants("udp") and context.grants("tcp") and context.grants("dns")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.bind(("127.0.0.1", 0))
        peer.settimeout(5)
        udp = UdpSocket(context, policy, OsBackend().udp_socket(False), False)
        try:
            udp.send(b"hello", addr(peer))
            data, sender = peer.recvfrom(100)
            assert data == b"hello"
            peer.sendto(b"back", sender)
            udp.set_timeout(5)
            assert udp.receive(100)[0] == b"back"
            with pytest.raises(NetError) as caught:  # not the policy's: still refused
                udp.send(b"x", SocketAddress(ipaddress.ip_address("0.0.0.0"), 9))
            assert caught.value.code is ErrorCode.INVALID_ARGUMENT
        finally:
            udp.close()
    assert NameResolver(context, policy).resolve("db.test", None) == \
        [ipaddress.ip_address("127.0.0.1")]
    log.close()
    would = [(r["operation"], r["rule"]) for r in lines(tmp_path / "audit.jsonl")
             if r.get("would-deny")]
    assert would == [("send", "deny-outbound udp://loopback:*"),
                     ("receive", "deny-outbound udp://loopback:*"),
                     ("resolve", None)]
    assert all(r["allowed"] is True for r in lines(tmp_path / "audit.jsonl"))


def test_enforce_mode_still_denies(tmp_path: Path) -> None:
    policy = Policy.from_flags(deny_outbound=["udp://loopback:*"],
                               allow_outbound=["udp://*:*"])
    context = InstanceContext(policy, OsBackend())
    udp = UdpSocket(context, policy, OsBackend().udp_socket(False), False)
    try:
        with pytest.raises(NetError) as caught:
            udp.send(b"x", SocketAddress(ipaddress.ip_address("127.0.0.1"), 9))
        assert caught.value.code is ErrorCode.ACCESS_DENIED
    finally:
        udp.close()
