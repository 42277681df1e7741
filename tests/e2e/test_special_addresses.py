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
            real = getattr(sock, name)

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
        "64:ff9b:1:a:102:300::",                    # local-use, as a /64
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
