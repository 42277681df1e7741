"""Address classes a rule can be dodged through, end to end (issue 15).

A real guest (the conformance guest's probes) against the OS backend,
whose sockets record every bind, listen, connect and send they are asked
for: a refused operation must be refused before any of these. The classes
and their boundaries are in SECURITY.md (sections 2 and 3).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from capsock import Host, OsBackend, Policy
from capsock.addresses import parse_host_port
from capsock.backends.resolvers import DnsResolver

from ..dns_server import DnsServer
from .test_limits import conformance_plan

#: The socket methods that reach the kernel toward an address.
SYSCALLS = ("bind", "listen", "connect", "send")


class RecordingBackend(OsBackend):
    """The OS backend, recording each syscall-making call of its sockets."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def _record(self, sock: Any) -> Any:
        for name in SYSCALLS:
            real = getattr(sock, name, None)
            if real is None:  # a datagram socket does not listen
                continue

            def call(*args: Any, _name: str = name, _real: Any = real) -> Any:
                self.calls.append(f"{_name} {args[:1]}")
                return _real(*args)

            setattr(sock, name, call)
        return sock

    def tcp_socket(self, ipv6: bool) -> Any:
        return self._record(super().tcp_socket(ipv6))

    def udp_socket(self, ipv6: bool) -> Any:
        return self._record(super().udp_socket(ipv6))


def test_ipv6_forms_embedding_a_denied_ipv4_are_denied(guests: dict[str, Path],
                                                        tmp_path: Path) -> None:
    """The audit's case and the rest of its class: every IPv6 form that
    designates 10.1.2.3 (or the metadata service) is judged by the IPv4
    deny rule, for TCP and UDP; no connect or send is made."""
    backend = RecordingBackend()
    host = Host(backend=backend, policy=Policy.from_flags(
        allow_outbound=["tcp://*:8080", "udp://*:8080"],
        deny_outbound=["tcp://10.0.0.0/8:*", "udp://10.0.0.0/8:*",
                       "tcp://169.254.0.0/16:*"]))
    forms = [
        "::ffff:10.1.2.3",                          # mapped (judged as IPv4)
        "::10.1.2.3",                               # compatible
        "64:ff9b::a01:203",                         # NAT64 well-known
        "64:ff9b:1::a01:203",                       # local-use, as a /96
        "64:ff9b:1:0:a:102:300:0",                  # local-use, as a /64
        "64:ff9b:1:a01:2:300::",                    # local-use, as a /48
        "2002:a01:203::1",                          # 6to4
        "2001:0:4136:e378:8000:63bf:f5fe:fdfc",     # Teredo client 10.1.2.3
        "2001:0:a01:203:8000:63bf:3fff:fdd2",       # Teredo server 10.1.2.3
    ]
    plan: list[tuple[str, list[object]]] = [
        ("tcp-connect", [f"[{form}]:8080", "ipv6"]) for form in forms]
    plan += [("udp-echo", [f"[{form}]:8080", "ipv6"]) for form in forms]
    plan.append(("tcp-connect", ["[64:ff9b::a9fe:a9fe]:8080", "ipv6"]))  # metadata
    got = conformance_plan(guests, tmp_path, host, plan)
    assert got == ["access-denied"] * len(plan)
    assert backend.calls == []


def test_embedded_special_addresses_are_refused(guests: dict[str, Path],
                                                tmp_path: Path) -> None:
    """`[::ffff:0.0.0.0]` is the unspecified address, and so on: refused
    where the plain IPv4 address is (TCP: unspecified, multicast and
    broadcast are `invalid-argument`; UDP: unspecified), even under `*`."""
    backend = RecordingBackend()
    host = Host(backend=backend, policy=Policy.from_flags(
        allow_outbound=["tcp://*:*", "udp://*:*"]))
    tcp_forms = ["::ffff:0.0.0.0", "64:ff9b::", "2002::1", "::ffff:224.0.0.1",
                 "64:ff9b::e000:1", "::ffff:255.255.255.255", "64:ff9b::ffff:ffff",
                 "2002:ffff:ffff::1", "2001:0:a01:203:8000:63bf:ffff:ffff"]
    # the last: a Teredo client of 0.0.0.0 (its bits are inverted)
    udp_forms = ["::ffff:0.0.0.0", "64:ff9b::", "2002::1", "2001:0:a01:203::ffff:ffff"]
    plan: list[tuple[str, list[object]]] = [
        ("tcp-connect", [f"[{form}]:80", "ipv6"]) for form in tcp_forms]
    plan += [("udp-echo", [f"[{form}]:53", "ipv6"]) for form in udp_forms]
    got = conformance_plan(guests, tmp_path, host, plan)
    assert got == ["invalid-argument"] * len(plan)
    assert backend.calls == []


#: Each name answers one special address (A or AAAA); `ok.test` a plain one.
SPECIAL_ZONE = {
    "zero.test": ["0.0.0.0"],
    "group.test": ["224.0.0.1"],
    "bcast.test": ["255.255.255.255"],
    "any6.test": ["::"],
    "group6.test": ["ff02::1"],
    "mapped0.test": ["::ffff:0.0.0.0"],
    "nat64zero.test": ["64:ff9b::"],
    "ok.test": ["127.0.0.1"],
}


def test_name_rules_grant_no_special_answer(guests: dict[str, Path], tmp_path: Path) -> None:
    """`svc.test A 0.0.0.0` does not let a name rule listen everywhere, nor
    `224.0.0.1` / `255.255.255.255` / `ff02::1` send to a group: bind,
    listen and send are `access-denied` and reach no syscall, inbound and
    outbound, TCP and UDP, in IPv4, IPv6 and embedded forms. The plain
    answer next to them works (the path is real)."""
    port = 5353
    with DnsServer(SPECIAL_ZONE) as dns:
        names = list(SPECIAL_ZONE)
        inbound = [f"{proto}://{name}:*" for name in names for proto in ("tcp", "udp")]
        outbound = [f"udp://{name}:{port}" for name in names]
        backend = RecordingBackend()
        host = Host(backend=backend, resolver=DnsResolver(parse_host_port(dns.address)),
                    policy=Policy.from_flags(allow_inbound=inbound, allow_outbound=outbound))
        plan: list[tuple[str, list[object]]] = [("resolve", [name]) for name in names]
        plan += [
            ("tcp-listen", [f"0.0.0.0:{port}"]),
            ("tcp-bind", [f"0.0.0.0:{port}"]),
            ("udp-bind", [f"0.0.0.0:{port}"]),
            ("tcp-bind", [f"[::]:{port}", "ipv6"]),
            ("udp-bind", [f"[::]:{port}", "ipv6"]),
            ("tcp-bind", [f"[::ffff:0.0.0.0]:{port}", "ipv6"]),
            ("tcp-bind", [f"[64:ff9b::]:{port}", "ipv6"]),
            ("udp-send", [f"224.0.0.1:{port}"]),
            ("udp-send", [f"255.255.255.255:{port}"]),
            ("udp-echo", [f"[ff02::1]:{port}", "ipv6"]),
            ("udp-echo", [f"[::ffff:224.0.0.1]:{port}", "ipv6"]),
            ("tcp-bind", ["127.0.0.1:0"]),  # the plain answer: allowed
        ]
        got = conformance_plan(guests, tmp_path, host, plan)
    answers = got[:len(names)]
    assert answers == [f"value:{answer}" for answers in SPECIAL_ZONE.values()
                       for answer in answers]
    assert got[len(names):] == ["access-denied"] * (len(plan) - len(names) - 1) + ["ok"]
    assert [call for call in backend.calls if "127.0.0.1" not in call] == []
