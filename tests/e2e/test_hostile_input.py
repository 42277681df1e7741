"""Hostile input from the guest: the classes the conformance table lacks.

The map of every class to its test is in SECURITY.md. Most classes are
conformance cases (`capsock/conformance/cases.py`, run on both backends by
test_conformance.py); this file adds the rest, driving the conformance
guest's probes with plans of its own, or the core directly where a guest
cannot express the input (scope ids: the guest library has no syntax).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from capsock import (
    ErrorCode,
    Host,
    MemoryBackend,
    NetError,
    OsBackend,
    Policy,
    SocketAddress,
    VirtualNetwork,
)
from capsock.core.context import InstanceContext
from capsock.core.tcp import open_tcp
from capsock.core.udp import open_udp

from .peers import Peer, echo
from .test_limits import conformance_plan


def test_hostile_destinations(guests: dict[str, Path], tmp_path: Path) -> None:
    peer = Peer(echo)
    try:
        port = peer.port
        host = Host(policy=Policy.from_flags(
            allow_outbound=[f"tcp://127.0.0.1:{port}", "udp://127.0.0.1:*"]))
        got = conformance_plan(guests, tmp_path, host, [
            ("udp-send", ["0.0.0.0:53"]),              # unspecified
            ("udp-send", ["255.255.255.255:9"]),       # broadcast: no rule names it
            ("udp-send", ["224.0.0.1:9"]),             # multicast: no rule names it
            # IPv4-compatible ::127.0.0.1 is IPv6 (deprecated, not routed to
            # IPv4): an IPv4 rule does not cover it
            ("tcp-connect", [f"[::127.0.0.1]:{port}", "ipv6"]),
            # IPv4-mapped is judged by the IPv4 rule: allowed by it (the OS
            # backend's IPv6 sockets are V6ONLY, so the kernel then says
            # unreachable), and a port the rule does not name is denied
            ("tcp-connect", [f"[::ffff:127.0.0.1]:{port}", "ipv6"]),
            ("tcp-connect", [f"[::ffff:127.0.0.1]:{port + 1}", "ipv6"]),
            ("tcp-connect", [f"[::]:{port}", "ipv6"]),  # unspecified IPv6
            ("tcp-connect", [f"[ff02::1]:{port}", "ipv6"]),  # IPv6 multicast
        ])
        assert got[4] in ("ok", "remote-unreachable")
        got[4] = "allowed"
        assert got == ["invalid-argument", "access-denied", "access-denied", "access-denied",
                       "allowed", "access-denied", "invalid-argument", "invalid-argument"]
    finally:
        peer.close()


def test_broadcast_needs_an_explicit_rule_and_still_fails_closed(guests: dict[str, Path],
                                                                  tmp_path: Path) -> None:
    """Even `udp://*:*` does not make broadcast work: capsock never sets
    SO_BROADCAST, so the kernel refuses (EACCES: access-denied)."""
    host = Host(policy=Policy.from_flags(allow_outbound=["udp://*:*"]))
    got = conformance_plan(guests, tmp_path, host, [("udp-send", ["255.255.255.255:9"])])
    assert got == ["access-denied"]


@pytest.mark.parametrize("name", [
    "svc\x00.test", "svc.test\x7f", "svc\t.test",       # control characters
    "svc.te\u212at",                                   # KELVIN SIGN lowers to "k"
    "a" * 64 + ".test",                                # label over 63
    ".".join(["a" * 63] * 4) + ".test",                # over 253 bytes (and 255)
    "svc..test", "-svc.test", "*.test", "svc.test..",  # malformed
    "[::1]", "127.1", "0x7f000001",                    # IP literals in disguise
])
def test_hostile_names_are_invalid_argument(guests: dict[str, Path], tmp_path: Path,
                                            name: str) -> None:
    """Refused before the policy (so no audit noise) and before any query."""
    asked: list[str] = []
    network = VirtualNetwork(names={"svc.test": ["127.0.0.1"]})
    backend = MemoryBackend(network)
    resolver = backend.default_resolver()
    real = resolver.resolve

    def spy(query: str, ipv6: bool | None) -> list[ipaddress.IPv4Address |
                                                   ipaddress.IPv6Address]:
        asked.append(query)
        return real(query, ipv6)

    resolver.resolve = spy  # type: ignore[method-assign]
    host = Host(policy=Policy.from_flags(allow_resolve=["*"]), backend=backend,
                resolver=resolver)
    assert conformance_plan(guests, tmp_path, host, [("resolve", [name])]) == ["invalid-argument"]
    assert asked == []


def _context(rules: list[str]) -> tuple[InstanceContext, list[str]]:
    """A context whose backend records every connect it is asked for."""
    calls: list[str] = []
    backend = MemoryBackend(VirtualNetwork(local=("127.0.0.0/8", "::1/128", "fe80::/10")))
    real_tcp = backend.tcp_socket

    def tcp_socket(ipv6: bool):  # type: ignore[no-untyped-def]
        sock = real_tcp(ipv6)
        real_connect = sock.connect

        def connect(address: SocketAddress) -> None:
            calls.append(f"connect {address}")
            real_connect(address)

        sock.connect = connect  # type: ignore[method-assign]
        return sock

    backend.tcp_socket = tcp_socket  # type: ignore[method-assign]
    return InstanceContext(Policy.from_flags(allow_outbound=rules), backend), calls


@pytest.mark.parametrize("scope_id", [0, 1, 2**32 - 1])
def test_link_local_scope_ids_do_not_change_the_decision(scope_id: int) -> None:
    """Rules carry no scope id; any scope id on the target is ignored for
    the decision (so it can neither widen nor dodge a rule), and a denied
    target never reaches the backend."""
    target = SocketAddress(ipaddress.ip_address("fe80::1"), 80, 0, scope_id)
    context, calls = _context(["tcp://[::1]:*"])
    sock = open_tcp(context, context.checker, True)
    with pytest.raises(NetError) as denied:
        sock.connect(target)
    assert denied.value.code is ErrorCode.ACCESS_DENIED
    assert calls == []

    context, calls = _context(["tcp://[fe80::1]:80"])
    sock = open_tcp(context, context.checker, True)
    try:
        sock.connect(target)
    except NetError as error:  # nobody listens: the network's answer, not the policy's
        assert error.code is not ErrorCode.ACCESS_DENIED
    assert len(calls) == 1


def test_os_backend_survives_absurd_scope_and_flow_ids() -> None:
    """Out-of-range scope/flow values from the guest are an error code, never
    an exception escaping the host."""
    context = InstanceContext(Policy.from_flags(allow_outbound=["tcp://[fe80::1]:*"]),
                              OsBackend())
    sock = open_tcp(context, context.checker, True)
    sock.set_timeout(1.0)
    try:
        with pytest.raises(NetError) as error:
            sock.connect(SocketAddress(ipaddress.ip_address("fe80::1"), 9, 2**20 - 1,
                                       2**32 - 1))
        assert error.value.code is not ErrorCode.UNKNOWN
    finally:
        sock.close()


def test_udp_receive_with_a_huge_length_is_capped() -> None:
    network = VirtualNetwork()
    context = InstanceContext(Policy.from_flags(allow_outbound=["udp://127.0.0.1:*"],
                                                allow_inbound=["udp://127.0.0.1:*"]),
                              MemoryBackend(network))
    receiver = open_udp(context, context.checker, False)
    receiver.bind(SocketAddress(ipaddress.ip_address("127.0.0.1"), 0))
    sender = open_udp(context, context.checker, False)
    sender.send(b"q" * 1000, receiver.local_address())
    data, _ = receiver.receive(2**64 - 1)
    assert data == b"q" * 1000
    receiver.close()
    sender.close()
    assert context.open_sockets == 0
