"""The virtual-address model (`capsock.policy.mapping`): parsing, the
bijection of each rule, overlap refusal, allocation, and the allows a
mapping implies. Properties are checked against integer arithmetic written
here (offset from the start of a range), not the module's helpers.

``CAPSOCK_HYPOTHESIS_EXAMPLES=20000 pytest tests/unit/test_mapping.py``
runs longer.
"""

from __future__ import annotations

import ipaddress
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capsock.addresses import SocketAddress
from capsock.policy import (
    DEFAULT_VIRTUAL_RANGE,
    MappingTable,
    Policy,
    PolicyError,
    Use,
    is_mapping,
)

EXAMPLES = int(os.environ.get("CAPSOCK_HYPOTHESIS_EXAMPLES", "300"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address


def table(**flags: Any) -> MappingTable:
    return MappingTable.build(**flags)


# -- the issue's examples ----------------------------------------------------------


def test_the_examples_of_the_issue_parse_and_translate() -> None:
    t = table(resolve=["db.internal->172.17.0.14", "real.internal->db.real.example:5432"],
              outbound=["tcp://my-database.internal->172.17.0.14:5432->5433",
                        "tcp://10.225.0.32/29->192.168.225.8/29:*"],
              inbound=["tcp://*:80->8888"])
    # A name mapped to an address is an alias: the guest sees the address given.
    assert t.resolve("db.internal") == (V4("172.17.0.14"),)
    # A name mapped to a real name gets the first free virtual address.
    assert t.resolve("real.internal") == (V4("10.225.0.1"),)
    mapped = t.resolve("my-database.internal")
    assert mapped == (V4("10.225.0.2"),)
    found = t.remote_to_real("tcp", mapped[0], 5432)
    assert found is not None and found[1:] == (V4("172.17.0.14"), 5433)
    assert t.remote_to_real("tcp", mapped[0], 5433) is None      # only the mapped port
    assert t.remote_to_real("udp", mapped[0], 5432) is None      # only the mapped protocol
    # The real name is resolved by the core, at connect time: no address here.
    named = t.remote_to_real("udp", V4("10.225.0.1"), 5432)
    assert named is not None and named[1] is None and named[0].real.name == "db.real.example"
    assert t.remote_to_real("tcp", V4("10.225.0.1"), 5433) is None
    # Seed 002: 192.168.225.8/29 mounted as 10.225.0.32/29, offset-preserving.
    found = t.remote_to_real("tcp", V4("10.225.0.33"), 1234)
    assert found is not None and found[1:] == (V4("192.168.225.9"), 1234)
    back = t.remote_to_guest("tcp", V4("192.168.225.15"), 99)
    assert back is not None and back[1:] == (V4("10.225.0.39"), 99)
    # Inbound: the guest binds :80 on any address, the host :8888 on the same.
    bound = t.local_to_real("tcp", V4("0.0.0.0"), 80)
    assert bound is not None and bound[1:] == (V4("0.0.0.0"), 8888)
    seen = t.local_to_guest("tcp", V4("127.0.0.1"), 8888)
    assert seen is not None and seen[1:] == (V4("127.0.0.1"), 80)
    assert t.local_to_real("tcp", V4("0.0.0.0"), 81) is None


def test_ipv6_and_mapped_addresses() -> None:
    t = table(outbound=["udp://[fd00:225::]/120->[::1]/120:53"])
    found = t.remote_to_real("udp", V6("fd00:225::7"), 53)
    assert found is not None and found[1:] == (V6("::7"), 53)
    # An IPv4-mapped guest address is judged as IPv4: not covered by a v6 range.
    v4 = table(outbound=["tcp://10.225.0.9->127.0.0.2:80"])
    found = v4.remote_to_real("tcp", V6("::ffff:10.225.0.9"), 80)
    assert found is not None and found[1] == V4("127.0.0.2")


@pytest.mark.parametrize(("flag", "rule", "reason"), [
    ("outbound", "tcp://10.0.0.0/8->127.0.0.0/16:*", "ranges of different sizes"),
    ("outbound", "tcp://*->127.0.0.1:80", "'*' maps only to itself"),
    ("outbound", "tcp://1.2.3.4:*->80", "port ranges of different sizes"),
    ("outbound", "tcp://1.2.3.4:80-81->90", "port ranges of different sizes"),
    ("outbound", "tcp://10.0.0.1->[::1]:80", "one family"),
    ("outbound", "tcp://10.0.0.0/24->db.example:80", "a range cannot map to a name"),
    ("outbound", "tcp://a.example->b.example->c:1", "GUEST->REAL:GPORT->RPORT"),
    ("outbound", "tcp://localhost->127.0.0.1:80", "guest side must be"),
    ("outbound", "tcp://10.0.0.1->127.0.0.1:0->80", "port 0"),
    ("outbound", "sctp://10.0.0.1->127.0.0.1:80", "unsupported protocol"),
    ("outbound", "tcp://10.0.0.1->1.2.3:80", "not a valid IPv4 address"),
    ("inbound", "tcp://name.example->127.0.0.1:80", "no names"),
    ("resolve", "*.internal->127.0.0.1", "one name"),
    ("resolve", "db.internal->127.0.0.1:5432", "a port only narrows"),
    ("resolve", "db.internal->", "missing target"),
])
def test_a_bad_mapping_is_refused_naming_the_rule(flag: str, rule: str, reason: str) -> None:
    with pytest.raises(PolicyError) as caught:
        table(**{flag: [rule]})
    message = str(caught.value)
    assert f"'{rule}'" in message and f"--allow-{flag}" in message
    assert reason in message


def test_overlapping_mappings_are_a_startup_error_naming_both() -> None:
    first, second = "tcp://10.225.0.32/29->127.0.0.8/29:*", "tcp://10.225.0.36->127.0.1.1:80"
    with pytest.raises(PolicyError) as caught:
        table(outbound=[first, second])
    assert first in str(caught.value) and second in str(caught.value)
    assert "guest sides" in str(caught.value)
    # Real sides overlapping would make the way back ambiguous.
    with pytest.raises(PolicyError, match="real sides"):
        table(outbound=["udp://10.225.1.1->127.0.0.2:53", "udp://10.225.1.2->127.0.0.2:53"])
    with pytest.raises(PolicyError, match="guest sides"):
        table(inbound=["tcp://*:80->8888", "tcp://127.0.0.1:80->8889"])
    # Other protocol or other ports: no overlap.
    table(outbound=["tcp://10.225.1.1->127.0.0.2:53", "udp://10.225.1.2->127.0.0.2:53"])
    table(outbound=["tcp://10.225.1.1->127.0.0.2:53", "tcp://10.225.1.1->127.0.0.2:54"])
    # A name given two addresses is refused too.
    with pytest.raises(PolicyError, match="both give the name"):
        table(resolve=["db.internal->127.0.0.2", "db.internal->127.0.0.3"])


def test_a_mapping_allows_exactly_its_guest_side_and_deny_still_wins() -> None:
    t = table(outbound=["tcp://db.internal->127.0.0.2:5432->5433"])
    guest = t.resolve("db.internal")
    assert guest is not None
    outbound, inbound, resolve = t.allow_rules()
    policy = Policy.from_flags(deny_outbound=["tcp://10.225.0.0/16:6000"]).granting(
        allow_outbound=outbound, allow_inbound=inbound, allow_resolve=resolve)
    at = SocketAddress(guest[0], 5432)
    decision = policy.check(Use.TCP_CONNECT, at, {})
    assert decision.allowed and decision.rule == \
        "allow-outbound tcp://db.internal->127.0.0.2:5432->5433"
    assert not policy.check(Use.TCP_CONNECT, SocketAddress(guest[0], 5433), {})
    # The real target itself is not allowed by the mapping: the guest
    # reaches it only through the guest-side address.
    assert not policy.check(Use.TCP_CONNECT, SocketAddress(V4("127.0.0.2"), 5433), {})
    assert not policy.check(Use.UDP_SEND, at, {})
    assert policy.check(Use.RESOLVE, "db.internal", {}).allowed
    assert policy.grants("tcp") and policy.grants_resolve() and not policy.grants("udp")
    denied = Policy.from_flags(deny_outbound=["tcp://10.225.0.0/16:*"]).granting(
        allow_outbound=outbound)
    assert denied.check(Use.TCP_CONNECT, at, {}).rule == "deny-outbound tcp://10.225.0.0/16:*"


def test_is_mapping_and_the_default_range() -> None:
    assert is_mapping("tcp://a.internal->127.0.0.1:80") and not is_mapping("tcp://a:80")
    assert DEFAULT_VIRTUAL_RANGE == "10.225.0.0/16"
    t = table(resolve=["a.internal->a.example"], virtual_range="fd00:225::/126")
    assert t.resolve("a.internal") == (V6("fd00:225::1"),)
    with pytest.raises(PolicyError, match="is full"):
        table(resolve=[f"n{i}.internal->n.example" for i in range(4)],
              virtual_range="10.9.9.0/30")
    with pytest.raises(PolicyError, match="--virtual-range"):
        table(virtual_range="10.9.9.1/24")


# -- properties ----------------------------------------------------------------------


@st.composite
def range_pair(draw: st.DrawFn) -> tuple[int, int, int, int, int, int]:
    """Two IPv4 ranges of one prefix length, and a port map: (guest base,
    real base, prefix, guest port low, real port low, port count)."""
    prefix = draw(st.integers(20, 32))
    size = 1 << (32 - prefix)
    guest = draw(st.integers(0, (1 << 32) - 1)) // size * size
    real = draw(st.integers(0, (1 << 32) - 1)) // size * size
    count = draw(st.integers(1, 50))
    glow = draw(st.integers(1, 65535 - count + 1))
    rlow = draw(st.integers(1, 65535 - count + 1))
    return guest, real, prefix, glow, rlow, count


def _ports(low: int, count: int) -> str:
    return str(low) if count == 1 else f"{low}-{low + count - 1}"


@SETTINGS
@given(range_pair(), st.data())
def test_each_rule_is_a_bijection_that_preserves_offsets(
        pair: tuple[int, int, int, int, int, int], data: st.DataObject) -> None:
    guest, real, prefix, glow, rlow, count = pair
    rule = (f"udp://{V4(guest)}/{prefix}->{V4(real)}/{prefix}:"
            f"{_ports(glow, count)}->{_ports(rlow, count)}")
    t = table(outbound=[rule])
    offset = data.draw(st.integers(0, (1 << (32 - prefix)) - 1))
    port_offset = data.draw(st.integers(0, count - 1))
    there = t.remote_to_real("udp", V4(guest + offset), glow + port_offset)
    assert there is not None
    assert there[1:] == (V4(real + offset), rlow + port_offset)
    back = t.remote_to_guest("udp", V4(real + offset), rlow + port_offset)
    assert back is not None and back[1:] == (V4(guest + offset), glow + port_offset)
    # Just outside the guest side: not translated.
    outside_port = glow + count
    if outside_port <= 65535:
        assert t.remote_to_real("udp", V4(guest + offset), outside_port) is None
    if prefix > 0 and guest + (1 << (32 - prefix)) < (1 << 32):
        assert t.remote_to_real("udp", V4(guest + (1 << (32 - prefix))), glow) is None


@st.composite
def small_rule(draw: st.DrawFn) -> tuple[int, int, int, int, int]:
    """A rule in 10.0.0.0/24 -> 10.1.0.0/24 with a few ports: (guest
    base, real base, size, guest port, real port)."""
    prefix = draw(st.integers(29, 32))
    size = 1 << (32 - prefix)
    guest = draw(st.integers(0, 255)) // size * size
    real = draw(st.integers(0, 255)) // size * size
    return guest, real, size, draw(st.integers(1, 3)), draw(st.integers(1, 3))


@SETTINGS
@given(small_rule(), small_rule())
def test_overlap_is_refused_exactly_when_two_rules_share_an_endpoint(
        a: tuple[int, int, int, int, int], b: tuple[int, int, int, int, int]) -> None:
    def text(rule: tuple[int, int, int, int, int]) -> str:
        guest, real, size, gport, rport = rule
        prefix = 32 - size.bit_length() + 1
        return f"tcp://10.0.0.{guest}/{prefix}->10.1.0.{real}/{prefix}:{gport}->{rport}"

    def endpoints(rule: tuple[int, int, int, int, int], side: int) -> set[tuple[int, int]]:
        base, size, port = rule[side], rule[2], rule[3 + side]
        return {(base + i, port) for i in range(size)}

    overlap = any(endpoints(a, side) & endpoints(b, side) for side in (0, 1))
    try:
        t = table(outbound=[text(a), text(b)])
    except PolicyError as error:
        assert overlap, error
        assert text(a) in str(error) and text(b) in str(error)
        return
    assert not overlap
    # No overlap: both directions agree for every endpoint of both rules.
    for rule in (a, b):
        for address, port in endpoints(rule, 0):
            there = t.remote_to_real("tcp", V4(f"10.0.0.{address}"), port)
            assert there is not None and there[1] is not None
            back = t.remote_to_guest("tcp", there[1], there[2])
            assert back is not None and back[1:] == (V4(f"10.0.0.{address}"), port)


@SETTINGS
@given(st.lists(st.sampled_from(["a", "b", "c", "d", "e", "f"]), min_size=1, max_size=6,
                unique=True),
       st.integers(0, 7))
def test_allocated_addresses_are_distinct_and_avoid_explicit_sides(
        names: list[str], explicit: int) -> None:
    t = table(resolve=[f"{n}.internal->{n}.example" for n in names],
              outbound=[f"tcp://10.225.0.{explicit}->127.0.0.9:80"])
    given_addresses = [t.resolve(f"{n}.internal") for n in names]
    flat = [a[0] for a in given_addresses if a is not None]
    assert len(flat) == len(names) == len(set(flat))
    network = ipaddress.ip_network(DEFAULT_VIRTUAL_RANGE)
    for address in flat:
        assert address in network and address != network.network_address
        assert address != V4(f"10.225.0.{explicit}")
