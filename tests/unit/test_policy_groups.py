"""Network groups (policy/groups.py) in rules: membership and its boundary.

Membership is checked against Python's `ipaddress` predicates written
independently of groups.py (`is_loopback`, `is_multicast`, `is_global`,
the RFC ranges as integers here), and every IPv4-embedding IPv6 form of a
member is checked to be a member too. SECURITY.md's table must name the
same networks as the code.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capsock.policy import (
    GROUPS,
    Direction,
    GroupHost,
    Policy,
    PolicyError,
    SubdomainHost,
    Use,
    parse_address_rule,
)

EXAMPLES = int(os.environ.get("CAPSOCK_HYPOTHESIS_EXAMPLES", "300"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
OUT, IN = Direction.OUTBOUND, Direction.INBOUND
ROOT = Path(__file__).resolve().parents[2]


def member(group: str, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return GroupHost(group).matches(ip, None)


# -- an independent model: the documented ranges as integers -------------------

def _v4(a: int, b: int, c: int, d: int) -> int:
    return a << 24 | b << 16 | c << 8 | d


PRIVATE_V4 = [(_v4(10, 0, 0, 0), 8), (_v4(172, 16, 0, 0), 12), (_v4(192, 168, 0, 0), 16),
              (_v4(100, 64, 0, 0), 10), (_v4(169, 254, 0, 0), 16)]
PRIVATE_V6 = [(0xFC << 120, 7), (0xFE80 << 112, 10)]
METADATA = {ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2",
                                              "100.100.100.200", "fd00:ec2::254")}
# Entries of IANA's special-purpose registries that Python 3.11's
# `is_global` calls global: globally reachable ones, the parts of the
# registry's 192.0.0.0/24 Python does not list, entries newer than its table.
SPECIAL_BUT_GLOBAL = [ipaddress.ip_network(n) for n in (
    "192.0.0.0/24", "192.31.196.0/24", "192.52.193.0/24", "192.88.99.0/24",
    "192.175.48.0/24", "64:ff9b::/96", "64:ff9b:1::/48", "100:0:0:1::/64", "2002::/16",
    "2620:4f:8000::/48", "3fff::/20", "5f00::/16")]


def in_model(ranges: list[tuple[int, int]], value: int, bits: int) -> bool:
    return any(value >> (bits - prefix) == base >> (bits - prefix) for base, prefix in ranges)


# Addresses near every group boundary, and anywhere.
_EDGES = [int(n.network_address) for nets in GROUPS.values() for n in nets if n.version == 4]
v4_ints = st.one_of(st.integers(0, 2**32 - 1),
                    st.builds(lambda base, off: (base + off) % 2**32,
                              st.sampled_from(_EDGES), st.integers(-2**10, 2**16)))
_EDGES6 = [int(n.network_address) for nets in GROUPS.values() for n in nets if n.version == 6]
v6_ints = st.one_of(st.integers(0, 2**128 - 1),
                    st.builds(lambda base, off: (base + off) % 2**128,
                              st.sampled_from(_EDGES6), st.integers(-2**20, 2**40)),
                    st.builds(lambda base, off: (base | off) % 2**128,
                              st.sampled_from(_EDGES6), st.integers(0, 2**80)))


@SETTINGS
@given(v4_ints)
def test_ipv4_membership_matches_the_documented_ranges(value: int) -> None:
    ip = ipaddress.IPv4Address(value)
    assert member("private", ip) == in_model(PRIVATE_V4, value, 32)
    assert member("loopback", ip) == ip.is_loopback
    assert member("multicast", ip) == ip.is_multicast
    assert member("metadata", ip) == (ip in METADATA)
    if not ip.is_multicast:
        extra = any(ip in net for net in SPECIAL_BUT_GLOBAL if net.version == 4)
        assert member("special", ip) == (not ip.is_global or extra)


@SETTINGS
@given(v6_ints)
def test_ipv6_membership_matches_the_documented_ranges(value: int) -> None:
    ip = ipaddress.IPv6Address(value)
    if ip.ipv4_mapped is not None:  # judged as IPv4 (normalize_ip), see the v4 test
        return
    embeds = GroupHost("private").member(ip)
    if embeds is None or embeds[0].version == 6:  # no IPv4 reading in a group
        assert member("private", ip) == in_model(PRIVATE_V6, value, 128)
    assert member("loopback", ip) == (ip.is_loopback or _embeds(ip, "loopback"))
    assert member("multicast", ip) == (ip.is_multicast or _embeds(ip, "multicast"))
    assert member("metadata", ip) == (ip in METADATA or _embeds(ip, "metadata"))
    if not ip.is_multicast:
        extra = any(ip in net for net in SPECIAL_BUT_GLOBAL if net.version == 6)
        assert member("special", ip) == (not ip.is_global or extra or _embeds(ip, "special"))


def _embeds(ip: ipaddress.IPv6Address, group: str) -> bool:
    found = GroupHost(group).member(ip)
    return found is not None and found[0].version == 4


def _embeddings(v4: int, filler: int) -> list[ipaddress.IPv6Address]:
    """Every IPv6 form that carries IPv4 `v4` (an independent writing of the
    prefixes rules.embedded_ipv4 knows)."""
    low = filler & 0xFFFF_FFFF
    return [ipaddress.IPv6Address(x) for x in (
        0xFFFF << 32 | v4,                                       # IPv4-mapped
        v4 if v4 > 1 else 0xFFFF_0000,                           # IPv4-compatible
        0x64_FF9B << 96 | v4,                                    # NAT64 well-known
        0x64_FF9B_0001 << 80 | v4,                               # NAT64 local-use /96
        0x2002 << 112 | v4 << 80 | low,                          # 6to4
        0x2001_0000 << 96 | v4 << 64 | low << 32 | 0,            # Teredo server
        0x2001_0000 << 96 | (~v4 & 0xFFFF_FFFF),                 # Teredo client
    )]


@SETTINGS
@given(st.sampled_from(sorted(GROUPS)), v4_ints, st.integers(0, 2**64 - 1))
def test_ipv4_embedding_forms_of_a_member_are_members(group: str, v4: int, filler: int) -> None:
    ip = ipaddress.IPv4Address(v4)
    if not member(group, ip):
        return
    for form in _embeddings(v4, filler):
        normalized = form.ipv4_mapped or form
        if normalized == ipaddress.IPv6Address(0xFFFF_0000) and v4 <= 1:
            continue  # ::0.0.0.0 and ::0.0.0.1 are :: and ::1, not IPv4-compatible
        assert member(group, normalized), (group, ip, form)


@pytest.mark.parametrize("text", [
    "::ffff:169.254.169.254", "::169.254.169.254", "64:ff9b::a9fe:a9fe",
    "64:ff9b:1::a9fe:a9fe", "2002:a9fe:a9fe::1", "2001:0:a9fe:a9fe::1", "fd00:ec2::254",
])
def test_metadata_forms_are_denied_by_one_rule(text: str) -> None:
    policy = Policy.from_flags(allow_outbound=["tcp://*:*", "tcp://[::]/0:*"],
                               deny_outbound=["tcp://metadata:*"])
    decision = policy.check_address(OUT, "tcp", ipaddress.ip_address(text), 80)
    assert not decision.allowed
    assert decision.rule == "deny-outbound tcp://metadata:*"


def test_deny_private_in_one_line() -> None:
    policy = Policy.from_flags(allow_outbound=["tcp://*:*"], deny_outbound=["tcp://private:*"])
    for text in ("10.0.0.5", "172.31.255.255", "192.168.1.1", "100.64.0.1", "169.254.0.1"):
        assert not policy.check_address(OUT, "tcp", ipaddress.ip_address(text), 5432)
    assert policy.check_address(OUT, "tcp", ipaddress.ip_address("8.8.8.8"), 443).allowed
    assert policy.check_address(OUT, "tcp", ipaddress.ip_address("172.32.0.1"), 443).allowed


def test_groups_in_every_rule_kind() -> None:
    policy = Policy.from_flags(allow_inbound=["tcp://loopback:*", "udp://loopback:*"],
                               allow_outbound=["udp://private:53", "tcp://special:*"],
                               deny_outbound=["tcp://metadata:*"],
                               deny_inbound=["udp://multicast:*"])
    assert policy.check_address(IN, "tcp", ipaddress.ip_address("127.0.0.9"), 80).allowed
    assert policy.check_address(IN, "udp", ipaddress.ip_address("::1"), 80).allowed
    assert not policy.check_address(IN, "tcp", ipaddress.ip_address("10.0.0.1"), 80).allowed
    assert policy.check_address(OUT, "udp", ipaddress.ip_address("10.1.2.3"), 53).allowed
    assert not policy.check_address(OUT, "udp", ipaddress.ip_address("10.1.2.3"), 54).allowed
    assert policy.check_address(OUT, "tcp", ipaddress.ip_address("192.0.2.1"), 1).allowed
    assert not policy.check_address(OUT, "tcp", ipaddress.ip_address("169.254.169.254"), 1)
    assert not policy.check_address(IN, "udp", ipaddress.ip_address("239.1.1.1"), 1)


class _At:
    def __init__(self, ip: str, port: int) -> None:
        self.ip = ipaddress.ip_address(ip)
        self.port = port


def test_a_name_resolved_into_a_denied_group_is_denied() -> None:
    """The SSRF case: the allowed name resolves to a private address."""
    policy = Policy.from_flags(allow_outbound=["tcp://db.example.com:5432"],
                               deny_outbound=["tcp://private:*"])
    resolved = {"db.example.com": frozenset({ipaddress.ip_address("10.0.0.5"),
                                             ipaddress.ip_address("203.0.113.7")})}
    assert policy.check(Use.RESOLVE, "db.example.com", resolved).allowed
    denied = policy.check(Use.TCP_CONNECT, _At("10.0.0.5", 5432), resolved)
    assert denied == (False, "deny-outbound tcp://private:*")
    allowed = policy.check(Use.TCP_CONNECT, _At("203.0.113.7", 5432), resolved)
    assert allowed == (True, "allow-outbound tcp://db.example.com:5432")


def test_subdomain_rules_match_resolved_subdomains_only() -> None:
    rule = parse_address_rule("tcp://*.example.com:443")
    assert rule.host == SubdomainHost("example.com")
    policy = Policy.from_flags(allow_outbound=["tcp://*.example.com:443"])
    resolved = {"api.example.com": frozenset({ipaddress.ip_address("203.0.113.1")}),
                "example.com": frozenset({ipaddress.ip_address("203.0.113.2")}),
                "evilexample.com": frozenset({ipaddress.ip_address("203.0.113.3")})}
    assert policy.check_resolve("a.b.example.com").allowed
    assert not policy.check_resolve("example.com").allowed
    assert policy.check(Use.TCP_CONNECT, _At("203.0.113.1", 443), resolved).allowed
    assert not policy.check(Use.TCP_CONNECT, _At("203.0.113.2", 443), resolved).allowed
    assert not policy.check(Use.TCP_CONNECT, _At("203.0.113.3", 443), resolved).allowed


def test_group_names_are_parsed_case_insensitively_and_kept_verbatim() -> None:
    rule = parse_address_rule("tcp://Private:*")
    assert rule.host == GroupHost("private") and rule.text == "tcp://Private:*"
    with pytest.raises(PolicyError, match="private"):
        parse_address_rule("tcp://private")


def test_security_md_names_the_same_networks() -> None:
    """SECURITY.md's "Network groups" table is the operator's statement of
    the boundary: one row per group, the code's networks in order."""
    text = (ROOT / "SECURITY.md").read_text()
    section = text.split("### Network groups", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]+) \|", section, re.MULTILINE))
    assert set(rows) == set(GROUPS)
    for group, networks in GROUPS.items():
        documented = [ipaddress.ip_network(n) for n in re.findall(r"`([0-9a-f:./]+)`", rows[group])]
        assert documented == list(networks), group
