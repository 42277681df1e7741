"""Table-driven tests for the pure policy module (capsock.policy)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

import pytest

from capsock.policy import (
    AddressRule,
    AnyHost,
    Decision,
    Direction,
    IPAddress,
    LocalhostHost,
    NameHost,
    NetworkHost,
    Policy,
    PolicyError,
    PortRange,
    normalize_ip,
    parse_addr_pool,
    parse_address_rule,
    parse_resolve_rule,
    special_kind,
)

OUT = Direction.OUTBOUND
IN = Direction.INBOUND
ip = ipaddress.ip_address
net = ipaddress.ip_network


# ---------------------------------------------------------------------------
# Parsing: valid address rules
# ---------------------------------------------------------------------------

VALID_ADDRESS_RULES = [
    # text, protocol, host, (low, high)
    ("tcp://127.0.0.1:80", "tcp", NetworkHost(net("127.0.0.1/32")), (80, 80)),
    ("udp://8.8.8.8:53", "udp", NetworkHost(net("8.8.8.8/32")), (53, 53)),
    ("tcp://[::1]:8080", "tcp", NetworkHost(net("::1/128")), (8080, 8080)),
    ("tcp://[2001:db8::1]:0", "tcp", NetworkHost(net("2001:db8::1/128")), (0, 0)),
    ("tcp://10.0.0.0/8:*", "tcp", NetworkHost(net("10.0.0.0/8")), (0, 65535)),
    ("tcp://10.0.0.1/8:443", "tcp", NetworkHost(net("10.0.0.0/8")), (443, 443)),
    ("udp://0.0.0.0/0:1-1024", "udp", NetworkHost(net("0.0.0.0/0")), (1, 1024)),
    ("tcp://[fd00::/8]:22", "tcp", NetworkHost(net("fd00::/8")), (22, 22)),
    ("tcp://[fd00::]/8:22", "tcp", NetworkHost(net("fd00::/8")), (22, 22)),
    ("tcp://[::]/0:*", "tcp", NetworkHost(net("::/0")), (0, 65535)),
    ("tcp://*:*", "tcp", AnyHost(), (0, 65535)),
    ("udp://*:5000-5010", "udp", AnyHost(), (5000, 5010)),
    ("tcp://example.com:443", "tcp", NameHost("example.com"), (443, 443)),
    ("tcp://Example.COM.:443", "tcp", NameHost("example.com"), (443, 443)),
    ("tcp://a-b.c-d.example:1", "tcp", NameHost("a-b.c-d.example"), (1, 1)),
    ("tcp://localhost:8080", "tcp", LocalhostHost(), (8080, 8080)),
    ("TCP://LOCALHOST.:8080", "tcp", LocalhostHost(), (8080, 8080)),
    ("tcp://127.0.0.1:65535", "tcp", NetworkHost(net("127.0.0.1/32")), (65535, 65535)),
    ("tcp://127.0.0.1:7-7", "tcp", NetworkHost(net("127.0.0.1/32")), (7, 7)),
    # IPv4-mapped IPv6 rules are rewritten to IPv4 (addresses are normalized).
    ("tcp://[::ffff:10.1.2.3]:1", "tcp", NetworkHost(net("10.1.2.3/32")), (1, 1)),
    ("tcp://[::ffff:10.0.0.0/104]:1", "tcp", NetworkHost(net("10.0.0.0/8")), (1, 1)),
    # IPv4-compatible is not mapped: stays IPv6.
    ("tcp://[::127.0.0.1]:1", "tcp", NetworkHost(net("::7f00:1/128")), (1, 1)),
    ("  tcp://127.0.0.1:80  ", "tcp", NetworkHost(net("127.0.0.1/32")), (80, 80)),
]


@pytest.mark.parametrize(("text", "protocol", "host", "ports"), VALID_ADDRESS_RULES)
def test_parse_valid_address_rule(
    text: str, protocol: str, host: object, ports: tuple[int, int]
) -> None:
    rule = parse_address_rule(text, "--allow-outbound")
    assert rule.protocols == frozenset({protocol})
    assert rule.host == host
    assert (rule.ports.low, rule.ports.high) == ports
    assert rule.text == text.strip()


def test_parsed_rules_are_frozen() -> None:
    rule = parse_address_rule("tcp://127.0.0.1:80")
    with pytest.raises(AttributeError):
        rule.text = "tcp://*:*"  # type: ignore[misc]


# ---------------------------------------------------------------------------
# Parsing: invalid address rules
# ---------------------------------------------------------------------------

INVALID_ADDRESS_RULES = [
    # text, a fragment the reason must contain
    ("tcp://1.2.3:80", "'1.2.3' is not a valid IPv4 address"),
    ("tcp://256.1.1.1:80", "not a valid IPv4 address"),
    ("tcp://1.2.3.4.5:80", "not a valid IPv4 address"),
    ("tcp://127.1:80", "not a valid IPv4 address"),
    ("tcp://010.0.0.1:80", "not a valid IPv4 address"),
    ("tcp://10.0.0.0/33:*", "/33"),
    ("tcp://10.0.0.0/-1:*", "prefix length"),
    ("tcp://10.0.0.0/255.0.0.0:*", "prefix length"),
    ("tcp://10.0.0/8:*", "not a valid IPv4 address"),
    ("tcp://[fd00::/129]:*", "/129"),
    ("tcp://[fd00::/8]/8:*", "prefix length given twice"),
    ("ftp://x:1", "unsupported protocol 'ftp'"),
    ("http://example.com:80", "unsupported protocol"),
    ("example.com:80", "PROTO://HOST:PORT"),
    ("tcp://::1:80", "brackets"),
    ("tcp://fe80::1:80", "brackets"),
    ("tcp://127.0.0.1", "missing port"),
    ("tcp://127.0.0.1:", "missing port"),
    ("tcp://[::1]", "missing port"),
    ("tcp://example.com", "missing port"),
    ("tcp://127.0.0.1:70000", "not a valid port"),
    ("tcp://127.0.0.1:65536", "not a valid port"),
    ("tcp://[::1]:-1", "not a valid port"),
    ("tcp://127.0.0.1:+80", "not a valid port"),
    ("tcp://127.0.0.1:8 0", "not a valid port"),
    ("tcp://127.0.0.1:\u0668\u0660", "not a valid port"),  # Arabic-Indic digits
    ("tcp://127.0.0.1:80-", "not a valid port"),
    ("tcp://127.0.0.1:90-80", "empty"),
    ("tcp://127.0.0.1:80/x", "not a valid port"),
    ("tcp://a..b:1", "empty label"),
    ("tcp://-a.com:1", "bad label"),
    ("tcp://a-.com:1", "bad label"),
    ("tcp://a_b.com:1", "bad label"),
    ("tcp://" + "a" * 64 + ".com:1", "longer than 63"),
    ("tcp://" + ".".join(["a" * 63] * 4) + ":1", "longer than 253"),
    ("tcp://b\u00fccher.de:1", "non-ASCII"),
    ("tcp://\u212aelvin.com:1", "non-ASCII"),  # KELVIN SIGN lowercases to 'k'
    ("tcp://0x7f000001:1", "numeric IPv4"),
    ("tcp://0x7f.0.0.1:1", "numeric IPv4"),
    ("tcp://example.123:1", "all-numeric"),
    ("tcp://a*.example.com:1", "wildcards"),
    ("tcp://*.*.example.com:1", "leading"),
    ("tcp://:80", "missing host"),
    ("tcp://[]:80", "empty IPv6"),
    ("tcp://[10.0.0.1]:80", "not a valid IPv6 address"),
    ("tcp://[fe80::1%eth0]:80", "zone"),
    ("tcp://[::1]x:80", "unexpected"),
    ("", "empty rule"),
    ("   ", "empty rule"),
    ("udp://[fe80::1:80", "missing ']'"),
]


@pytest.mark.parametrize(("text", "reason"), INVALID_ADDRESS_RULES)
def test_parse_invalid_address_rule(text: str, reason: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_address_rule(text, "--allow-outbound")
    message = str(info.value)
    assert f"'{text}'" in message
    assert "--allow-outbound" in message
    assert reason in message


def test_policy_error_is_value_error() -> None:
    assert issubclass(PolicyError, ValueError)


def test_error_message_format_example() -> None:
    with pytest.raises(PolicyError) as info:
        parse_address_rule("tcp://1.2.3:80", "--allow-outbound")
    assert str(info.value) == (
        "invalid rule 'tcp://1.2.3:80' for --allow-outbound: "
        "'1.2.3' is not a valid IPv4 address"
    )


def test_error_without_flag() -> None:
    with pytest.raises(PolicyError, match=r"^invalid rule 'ftp://x:1': "):
        parse_address_rule("ftp://x:1")


@pytest.mark.parametrize(
    ("kwarg", "flag"),
    [
        ("allow_outbound", "--allow-outbound"),
        ("allow_inbound", "--allow-inbound"),
        ("deny_outbound", "--deny-outbound"),
        ("deny_inbound", "--deny-inbound"),
    ],
)
def test_from_flags_names_flag_in_error(kwarg: str, flag: str) -> None:
    with pytest.raises(PolicyError) as info:
        Policy.from_flags(**{kwarg: ["tcp://127.0.0.1:80", "tcp://::1:80"]})
    assert f"'tcp://::1:80' for {flag}:" in str(info.value)


@pytest.mark.parametrize(
    ("kwarg", "flag"),
    [("allow_resolve", "--allow-resolve"), ("deny_resolve", "--deny-resolve")],
)
def test_from_flags_names_resolve_flag_in_error(kwarg: str, flag: str) -> None:
    with pytest.raises(PolicyError, match=f"'a..b' for {flag}:"):
        Policy.from_flags(**{kwarg: ["a..b"]})


def test_from_flags_rejects_bare_string() -> None:
    with pytest.raises(TypeError):
        Policy.from_flags(allow_outbound="tcp://127.0.0.1:80")


# ---------------------------------------------------------------------------
# Parsing: resolve rules
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name", "subdomains"),
    [
        ("example.com", "example.com", False),
        ("Example.COM.", "example.com", False),
        ("*.example.com", "example.com", True),
        ("*.COM", "com", True),
        ("localhost", "localhost", False),
        ("*", None, False),
    ],
)
def test_parse_valid_resolve_rule(
    text: str, name: str | None, subdomains: bool
) -> None:
    rule = parse_resolve_rule(text)
    assert (rule.name, rule.subdomains, rule.text) == (name, subdomains, text)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty rule"),
        ("a..b", "empty label"),
        ("*example.com", "'*' is only allowed"),
        ("a.*.com", "'*' is only allowed"),
        ("*.*.com", "'*' is only allowed"),
        ("*.", "empty domain name"),
        ("127.0.0.1", "numeric"),
        ("exa mple.com", "bad label"),
    ],
)
def test_parse_invalid_resolve_rule(text: str, reason: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_resolve_rule(text, "--allow-resolve")
    assert f"'{text}' for --allow-resolve" in str(info.value)
    assert reason in str(info.value)


# ---------------------------------------------------------------------------
# Parsing: WAMR --addr-pool
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "networks"),
    [
        ("1.2.3.4/15,2.3.4.6/16", ["1.2.0.0/15", "2.3.0.0/16"]),
        ("10.0.0.0/8", ["10.0.0.0/8"]),
        (" 10.0.0.0/8 , 0.0.0.0/0 ", ["10.0.0.0/8", "0.0.0.0/0"]),
        ("::1/128", ["::1/128"]),
        ("[::1]/128", ["::1/128"]),
        ("[fe80::/10]", ["fe80::/10"]),
        ("::ffff:10.0.0.0/104", ["10.0.0.0/8"]),
    ],
)
def test_parse_addr_pool_valid(text: str, networks: list[str]) -> None:
    rules = parse_addr_pool(text)
    assert [rule.host for rule in rules] == [NetworkHost(net(n)) for n in networks]
    for rule in rules:
        assert rule.protocols == frozenset({"tcp", "udp"})
        assert rule.ports == PortRange(0, 65535)


@pytest.mark.parametrize(
    ("text", "entry", "reason"),
    [
        ("1.2.3.4", "1.2.3.4", "must be in the form of ADDRESS/MASK"),
        ("1.2.3.4/15,2.3.4.6", "2.3.4.6", "must be in the form of ADDRESS/MASK"),
        ("::1", "::1", "must be in the form of ADDRESS/MASK"),
        ("[::1]", "[::1]", "must be in the form of ADDRESS/MASK"),
        ("[::1/64]/3", "[::1/64]/3", "must be in the form of ADDRESS/MASK"),
        ("1.2.3.4/33", "1.2.3.4/33", "/33"),
        ("::1/129", "::1/129", "/129"),
        ("1.2.3.4/x", "1.2.3.4/x", "prefix length"),
        ("1.2.3/8", "1.2.3/8", "not a valid IPv4 address"),
        ("[1.2.3.4]/8", "[1.2.3.4]/8", "not a valid IPv6 address"),
        ("example.com/8", "example.com/8", "not a valid IPv4 address"),
        ("", "", "empty address pool"),
        ("1.2.3.4/8,", "1.2.3.4/8,", "empty entry"),
    ],
)
def test_parse_addr_pool_invalid(text: str, entry: str, reason: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_addr_pool(text)
    message = str(info.value)
    assert f"invalid rule '{entry}' for --addr-pool:" in message
    assert reason in message


# ---------------------------------------------------------------------------
# Address decisions
# ---------------------------------------------------------------------------

RESOLVED: Mapping[str, frozenset[IPAddress]] = {
    "example.com": frozenset({ip("93.184.216.34"), ip("2606:2800:220:1::1")}),
    "mapped.test": frozenset({ip("::ffff:198.51.100.7")}),
}

Flags = dict[str, list[str]]

DECISIONS: list[tuple[str, Flags, Direction, str, str, int, bool, str | None]] = [
    # id, flags, direction, protocol, ip, port, allowed, deciding rule
    (
        "exact match",
        {"allow_outbound": ["tcp://127.0.0.1:80"]},
        OUT, "tcp", "127.0.0.1", 80,
        True, "allow-outbound tcp://127.0.0.1:80",
    ),
    (
        "wrong port",
        {"allow_outbound": ["tcp://127.0.0.1:80"]},
        OUT, "tcp", "127.0.0.1", 81,
        False, None,
    ),
    (
        "wrong address",
        {"allow_outbound": ["tcp://127.0.0.1:80"]},
        OUT, "tcp", "127.0.0.2", 80,
        False, None,
    ),
    (
        "default deny",
        {},
        OUT, "tcp", "127.0.0.1", 80,
        False, None,
    ),
    (
        "wildcard host v4",
        {"allow_outbound": ["tcp://*:443"]},
        OUT, "tcp", "203.0.113.9", 443,
        True, "allow-outbound tcp://*:443",
    ),
    (
        "wildcard host v6",
        {"allow_outbound": ["tcp://*:443"]},
        OUT, "tcp", "2001:db8::9", 443,
        True, "allow-outbound tcp://*:443",
    ),
    (
        "port star",
        {"allow_outbound": ["udp://10.1.1.1:*"]},
        OUT, "udp", "10.1.1.1", 65535,
        True, "allow-outbound udp://10.1.1.1:*",
    ),
    (
        "port range low end",
        {"allow_outbound": ["tcp://10.1.1.1:8000-8010"]},
        OUT, "tcp", "10.1.1.1", 8000,
        True, "allow-outbound tcp://10.1.1.1:8000-8010",
    ),
    (
        "port range outside",
        {"allow_outbound": ["tcp://10.1.1.1:8000-8010"]},
        OUT, "tcp", "10.1.1.1", 8011,
        False, None,
    ),
    (
        "cidr in",
        {"allow_outbound": ["tcp://10.0.0.0/8:*"]},
        OUT, "tcp", "10.255.0.1", 22,
        True, "allow-outbound tcp://10.0.0.0/8:*",
    ),
    (
        "cidr out",
        {"allow_outbound": ["tcp://10.0.0.0/8:*"]},
        OUT, "tcp", "11.0.0.1", 22,
        False, None,
    ),
    (
        "v4 cidr does not match v6",
        {"allow_outbound": ["tcp://0.0.0.0/0:*"]},
        OUT, "tcp", "::1", 22,
        False, None,
    ),
    (
        "v6 exact",
        {"allow_outbound": ["tcp://[::1]:80"]},
        OUT, "tcp", "::1", 80,
        True, "allow-outbound tcp://[::1]:80",
    ),
    (
        "v6 exact other address",
        {"allow_outbound": ["tcp://[::1]:80"]},
        OUT, "tcp", "::2", 80,
        False, None,
    ),
    (
        "v6 exact zone id ignored",
        {"allow_outbound": ["tcp://[fe80::1]:80"]},
        OUT, "tcp", "fe80::1%eth0", 80,
        True, "allow-outbound tcp://[fe80::1]:80",
    ),
    (
        "v6 cidr in",
        {"allow_outbound": ["tcp://[fd00::/8]:*"]},
        OUT, "tcp", "fd12:3456::1", 9000,
        True, "allow-outbound tcp://[fd00::/8]:*",
    ),
    (
        "v6 cidr out",
        {"allow_outbound": ["tcp://[fd00::/8]:*"]},
        OUT, "tcp", "fe80::1", 9000,
        False, None,
    ),
    (
        "outbound rule does not allow inbound",
        {"allow_outbound": ["tcp://127.0.0.1:80"]},
        IN, "tcp", "127.0.0.1", 80,
        False, None,
    ),
    (
        "inbound rule does not allow outbound",
        {"allow_inbound": ["tcp://127.0.0.1:80"]},
        OUT, "tcp", "127.0.0.1", 80,
        False, None,
    ),
    (
        "inbound rule allows inbound",
        {"allow_inbound": ["tcp://0.0.0.0/0:8080"]},
        IN, "tcp", "192.0.2.1", 8080,
        True, "allow-inbound tcp://0.0.0.0/0:8080",
    ),
    (
        "tcp rule does not allow udp",
        {"allow_outbound": ["tcp://*:*"]},
        OUT, "udp", "127.0.0.1", 53,
        False, None,
    ),
    (
        "udp rule does not allow tcp",
        {"allow_outbound": ["udp://*:*"]},
        OUT, "tcp", "127.0.0.1", 53,
        False, None,
    ),
    (
        "protocol is case-insensitive",
        {"allow_outbound": ["udp://*:53"]},
        OUT, "UDP", "127.0.0.1", 53,
        True, "allow-outbound udp://*:53",
    ),
    (
        "unknown protocol denied",
        {"allow_outbound": ["tcp://*:*", "udp://*:*"]},
        OUT, "sctp", "127.0.0.1", 53,
        False, None,
    ),
    (
        "out-of-range port denied",
        {"allow_outbound": ["tcp://*:*"]},
        OUT, "tcp", "127.0.0.1", 65536,
        False, None,
    ),
    (
        "deny beats allow",
        {"allow_outbound": ["tcp://*:*"], "deny_outbound": ["tcp://10.0.0.0/8:*"]},
        OUT, "tcp", "10.0.0.5", 80,
        False, "deny-outbound tcp://10.0.0.0/8:*",
    ),
    (
        "deny beats more specific allow",
        {"allow_outbound": ["tcp://10.0.0.5:80"], "deny_outbound": ["tcp://*:*"]},
        OUT, "tcp", "10.0.0.5", 80,
        False, "deny-outbound tcp://*:*",
    ),
    (
        "deny elsewhere leaves allow",
        {"allow_outbound": ["tcp://*:*"], "deny_outbound": ["tcp://10.0.0.0/8:*"]},
        OUT, "tcp", "11.0.0.5", 80,
        True, "allow-outbound tcp://*:*",
    ),
    (
        "deny outbound does not deny inbound",
        {"allow_inbound": ["tcp://*:*"], "deny_outbound": ["tcp://*:*"]},
        IN, "tcp", "11.0.0.5", 80,
        True, "allow-inbound tcp://*:*",
    ),
    (
        "deny inbound",
        {"allow_inbound": ["udp://*:*"], "deny_inbound": ["udp://192.0.2.0/24:*"]},
        IN, "udp", "192.0.2.200", 5353,
        False, "deny-inbound udp://192.0.2.0/24:*",
    ),
    (
        "mapped v6 allowed by v4 rule",
        {"allow_outbound": ["tcp://127.0.0.1:80"]},
        OUT, "tcp", "::ffff:127.0.0.1", 80,
        True, "allow-outbound tcp://127.0.0.1:80",
    ),
    (
        "mapped v6 denied by v4 deny rule",
        {"allow_outbound": ["tcp://*:*"], "deny_outbound": ["tcp://127.0.0.0/8:*"]},
        OUT, "tcp", "::ffff:127.0.0.1", 80,
        False, "deny-outbound tcp://127.0.0.0/8:*",
    ),
    (
        "mapped v6 not allowed by v6 catch-all",
        {"allow_outbound": ["tcp://[::]/0:*"]},
        OUT, "tcp", "::ffff:127.0.0.1", 80,
        False, None,
    ),
    (
        "mapped v6 with v6 catch-all and v4 deny",
        {"allow_outbound": ["tcp://[::]/0:*"], "deny_outbound": ["tcp://10.0.0.0/8:*"]},
        OUT, "tcp", "::ffff:10.0.0.1", 80,
        False, "deny-outbound tcp://10.0.0.0/8:*",
    ),
    (
        "v4 address judged by mapped-form rule",
        {"allow_outbound": ["tcp://[::ffff:127.0.0.1]:80"]},
        OUT, "tcp", "127.0.0.1", 80,
        True, "allow-outbound tcp://[::ffff:127.0.0.1]:80",
    ),
    (
        "mapped v6 outside v4 rule",
        {"allow_outbound": ["tcp://127.0.0.1:80"]},
        OUT, "tcp", "::ffff:127.0.0.2", 80,
        False, None,
    ),
    (
        "v4-compatible is not mapped",
        {"allow_outbound": ["tcp://127.0.0.1:80"]},
        OUT, "tcp", "::127.0.0.1", 80,
        False, None,
    ),
    # An IPv6 form that embeds an IPv4 address is judged as both (issue 15):
    # a v6 rule alone does not reach the IPv4 host; a deny on either wins.
    (
        "v4-compatible needs the v4 rule too",
        {"allow_outbound": ["tcp://[::]/0:*"]},
        OUT, "tcp", "::127.0.0.1", 80,
        False, None,
    ),
    (
        "v4-compatible allowed by both",
        {"allow_outbound": ["tcp://[::]/0:*", "tcp://127.0.0.1:80"]},
        OUT, "tcp", "::127.0.0.1", 80,
        True, "allow-outbound tcp://127.0.0.1:80",
    ),
    (
        "NAT64 under any host, v4 deny wins",
        {"allow_outbound": ["tcp://*:8080"], "deny_outbound": ["tcp://10.0.0.0/8:*"]},
        OUT, "tcp", "64:ff9b::a01:203", 8080,
        False, "deny-outbound tcp://10.0.0.0/8:*",
    ),
    (
        "NAT64 metadata service, v4 deny wins",
        {"allow_outbound": ["tcp://*:*"], "deny_outbound": ["tcp://169.254.0.0/16:*"]},
        OUT, "tcp", "64:ff9b::a9fe:a9fe", 80,
        False, "deny-outbound tcp://169.254.0.0/16:*",
    ),
    (
        "NAT64 outside the v4 deny",
        {"allow_outbound": ["tcp://*:8080"], "deny_outbound": ["tcp://10.0.0.0/8:*"]},
        OUT, "tcp", "64:ff9b::b01:203", 8080,
        True, "allow-outbound tcp://*:8080",
    ),
    (
        "NAT64 local-use /48 position",
        {"allow_outbound": ["tcp://*:8080"], "deny_outbound": ["tcp://10.0.0.0/8:*"]},
        OUT, "tcp", "64:ff9b:1:a01:2:300::", 8080,
        False, "deny-outbound tcp://10.0.0.0/8:*",
    ),
    (
        "NAT64 local-use /96 position",
        {"allow_outbound": ["tcp://*:8080"], "deny_outbound": ["tcp://10.0.0.0/8:*"]},
        OUT, "tcp", "64:ff9b:1::a01:203", 8080,
        False, "deny-outbound tcp://10.0.0.0/8:*",
    ),
    (
        "6to4, v4 deny wins",
        {"allow_outbound": ["tcp://*:8080"], "deny_outbound": ["tcp://10.0.0.0/8:*"]},
        OUT, "tcp", "2002:a01:203::1", 8080,
        False, "deny-outbound tcp://10.0.0.0/8:*",
    ),
    (
        "Teredo client, v4 deny wins",
        {"allow_outbound": ["tcp://*:8080"], "deny_outbound": ["tcp://10.0.0.0/8:*"]},
        OUT, "tcp", "2001:0:4136:e378:8000:63bf:f5fe:fdfc", 8080,
        False, "deny-outbound tcp://10.0.0.0/8:*",
    ),
    (
        "Teredo server, v4 deny wins",
        {"allow_outbound": ["tcp://*:8080"], "deny_outbound": ["tcp://10.0.0.0/8:*"]},
        OUT, "tcp", "2001:0:a01:203:8000:63bf:3fff:fdd2", 8080,
        False, "deny-outbound tcp://10.0.0.0/8:*",
    ),
    (
        "v6 deny still wins over v4 allow",
        {"allow_outbound": ["tcp://*:*"], "deny_outbound": ["tcp://[64:ff9b::]/96:*"]},
        OUT, "tcp", "64:ff9b::808:808", 53,
        False, "deny-outbound tcp://[64:ff9b::]/96:*",
    ),
    (
        "v4 rule alone does not reach the v6 form",
        {"allow_outbound": ["tcp://8.8.8.8:53"]},
        OUT, "tcp", "64:ff9b::808:808", 53,
        False, None,
    ),
    (
        "documentation prefix is no Teredo",
        {"allow_outbound": ["tcp://[2001:db8::]/32:*"], "deny_outbound": ["tcp://0.0.0.0/0:*"]},
        OUT, "tcp", "2001:db8::a01:203", 80,
        True, "allow-outbound tcp://[2001:db8::]/32:*",
    ),
    (
        "name rule with resolved entry v4",
        {"allow_outbound": ["tcp://example.com:443"]},
        OUT, "tcp", "93.184.216.34", 443,
        True, "allow-outbound tcp://example.com:443",
    ),
    (
        "name rule with resolved entry v6",
        {"allow_outbound": ["tcp://EXAMPLE.com.:443"]},
        OUT, "tcp", "2606:2800:220:1::1", 443,
        True, "allow-outbound tcp://EXAMPLE.com.:443",
    ),
    (
        "name rule, address not among resolved",
        {"allow_outbound": ["tcp://example.com:443"]},
        OUT, "tcp", "93.184.216.35", 443,
        False, None,
    ),
    (
        "name rule, wrong port",
        {"allow_outbound": ["tcp://example.com:443"]},
        OUT, "tcp", "93.184.216.34", 80,
        False, None,
    ),
    (
        "name rule without resolved entry",
        {"allow_outbound": ["tcp://other.example:443"]},
        OUT, "tcp", "93.184.216.34", 443,
        False, None,
    ),
    (
        "name rule, resolved mapped address",
        {"allow_outbound": ["tcp://mapped.test:80"]},
        OUT, "tcp", "198.51.100.7", 80,
        True, "allow-outbound tcp://mapped.test:80",
    ),
    (
        "name deny rule",
        {"allow_outbound": ["tcp://*:*"], "deny_outbound": ["tcp://example.com:*"]},
        OUT, "tcp", "93.184.216.34", 443,
        False, "deny-outbound tcp://example.com:*",
    ),
    (
        "localhost inbound v4",
        {"allow_inbound": ["tcp://localhost:8080"]},
        IN, "tcp", "127.0.0.1", 8080,
        True, "allow-inbound tcp://localhost:8080",
    ),
    (
        "localhost inbound whole /8",
        {"allow_inbound": ["tcp://localhost:8080"]},
        IN, "tcp", "127.1.2.3", 8080,
        True, "allow-inbound tcp://localhost:8080",
    ),
    (
        "localhost inbound v6",
        {"allow_inbound": ["tcp://localhost:8080"]},
        IN, "tcp", "::1", 8080,
        True, "allow-inbound tcp://localhost:8080",
    ),
    (
        "localhost inbound mapped",
        {"allow_inbound": ["tcp://localhost:8080"]},
        IN, "tcp", "::ffff:127.0.0.1", 8080,
        True, "allow-inbound tcp://localhost:8080",
    ),
    (
        "localhost not remote",
        {"allow_inbound": ["tcp://localhost:8080"]},
        IN, "tcp", "192.168.1.1", 8080,
        False, None,
    ),
    (
        "localhost outbound rule not inbound",
        {"allow_outbound": ["tcp://localhost:8080"]},
        IN, "tcp", "127.0.0.1", 8080,
        False, None,
    ),
    (
        "addr-pool outbound tcp",
        {"addr_pool": ["10.0.0.0/8,192.168.0.0/16"]},
        OUT, "tcp", "192.168.3.4", 1,
        True, "addr-pool 192.168.0.0/16",
    ),
    (
        "addr-pool inbound udp",
        {"addr_pool": ["10.0.0.0/8"]},
        IN, "udp", "10.9.9.9", 65535,
        True, "addr-pool 10.0.0.0/8",
    ),
    (
        "addr-pool outside",
        {"addr_pool": ["10.0.0.0/8"]},
        OUT, "tcp", "11.0.0.1", 80,
        False, None,
    ),
    (
        "deny beats addr-pool",
        {"addr_pool": ["10.0.0.0/8"], "deny_inbound": ["udp://10.0.0.1:*"]},
        IN, "udp", "10.0.0.1", 53,
        False, "deny-inbound udp://10.0.0.1:*",
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("flags", "direction", "protocol", "address", "port", "allowed", "rule"),
    [pytest.param(*row[1:], id=row[0]) for row in DECISIONS],
)
def test_check_address(
    flags: Flags,
    direction: Direction,
    protocol: str,
    address: str,
    port: int,
    allowed: bool,
    rule: str | None,
) -> None:
    policy = Policy.from_flags(**flags)
    decision = policy.check_address(direction, protocol, ip(address), port, RESOLVED)
    assert decision == Decision(allowed, rule)
    assert bool(decision) is allowed


def test_name_rule_without_resolved_mapping() -> None:
    policy = Policy.from_flags(allow_outbound=["tcp://example.com:443"])
    assert not policy.check_address(OUT, "tcp", ip("93.184.216.34"), 443)
    assert not policy.check_address(OUT, "tcp", ip("93.184.216.34"), 443, {})


def test_name_rule_resolved_key_not_normalized() -> None:
    policy = Policy.from_flags(allow_outbound=["tcp://example.com:443"])
    resolved = {"Example.COM.": frozenset({ip("192.0.2.1")})}
    assert policy.check_address(OUT, "tcp", ip("192.0.2.1"), 443, resolved)


def test_check_address_rejects_bad_direction() -> None:
    with pytest.raises(TypeError):
        Policy.deny_all().check_address("outbound", "tcp", ip("127.0.0.1"), 80)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("::ffff:1.2.3.4", "1.2.3.4"),
        ("::1.2.3.4", "::102:304"),
        ("1.2.3.4", "1.2.3.4"),
        ("fe80::1%eth0", "fe80::1"),
        ("::1", "::1"),
    ],
)
def test_normalize_ip(address: str, expected: str) -> None:
    assert normalize_ip(ip(address)) == ip(expected)


# ---------------------------------------------------------------------------
# Resolve decisions
# ---------------------------------------------------------------------------

RESOLVE_DECISIONS: list[tuple[str, Flags, str, bool, str | None]] = [
    ("exact", {"allow_resolve": ["example.com"]}, "example.com", True,
     "allow-resolve example.com"),
    ("exact case and dot", {"allow_resolve": ["example.com"]}, "EXAMPLE.Com.", True,
     "allow-resolve example.com"),
    ("exact not subdomain", {"allow_resolve": ["example.com"]}, "a.example.com", False, None),
    ("wildcard one level", {"allow_resolve": ["*.example.com"]}, "a.example.com", True,
     "allow-resolve *.example.com"),
    ("wildcard deep", {"allow_resolve": ["*.example.com"]}, "a.b.example.com", True,
     "allow-resolve *.example.com"),
    ("wildcard not bare", {"allow_resolve": ["*.example.com"]}, "example.com", False, None),
    ("wildcard not suffix-text", {"allow_resolve": ["*.example.com"]}, "badexample.com",
     False, None),
    ("wildcard not other tld", {"allow_resolve": ["*.example.com"]}, "a.example.org",
     False, None),
    ("star", {"allow_resolve": ["*"]}, "anything.at.all", True, "allow-resolve *"),
    ("star allows underscore names", {"allow_resolve": ["*"]}, "_srv._tcp.example.com",
     True, "allow-resolve *"),
    ("star denies NUL", {"allow_resolve": ["*"]}, "evil\x00.example.com", False, None),
    ("star denies empty", {"allow_resolve": ["*"]}, "", False, None),
    ("star denies empty label", {"allow_resolve": ["*"]}, "a..b", False, None),
    ("star denies non-ascii", {"allow_resolve": ["*"]}, "b\u00fccher.de", False, None),
    ("wildcard denies NUL trick", {"allow_resolve": ["*.example.com"]},
     "evil\x00.example.com", False, None),
    ("default deny", {}, "example.com", False, None),
    ("deny beats allow", {"allow_resolve": ["*"], "deny_resolve": ["*.evil.test"]},
     "x.evil.test", False, "deny-resolve *.evil.test"),
    ("deny elsewhere", {"allow_resolve": ["*"], "deny_resolve": ["*.evil.test"]},
     "good.test", True, "allow-resolve *"),
    ("implied by outbound name rule", {"allow_outbound": ["tcp://example.com:443"]},
     "Example.com.", True, "allow-outbound tcp://example.com:443"),
    ("implied by inbound name rule", {"allow_inbound": ["udp://peer.test:*"]},
     "peer.test", True, "allow-inbound udp://peer.test:*"),
    ("implied only exact", {"allow_outbound": ["tcp://example.com:443"]},
     "www.example.com", False, None),
    ("implied by localhost rule", {"allow_outbound": ["tcp://localhost:80"]},
     "localhost", True, "allow-outbound tcp://localhost:80"),
    ("not implied by deny rule", {"deny_outbound": ["tcp://example.com:443"]},
     "example.com", False, None),
    ("not implied by ip rule", {"allow_outbound": ["tcp://*:*"]}, "example.com", False, None),
    ("deny beats implied", {"allow_outbound": ["tcp://example.com:443"],
                            "deny_resolve": ["example.com"]},
     "example.com", False, "deny-resolve example.com"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("flags", "name", "allowed", "rule"),
    [pytest.param(*row[1:], id=row[0]) for row in RESOLVE_DECISIONS],
)
def test_check_resolve(
    flags: Flags, name: str, allowed: bool, rule: str | None
) -> None:
    assert Policy.from_flags(**flags).check_resolve(name) == Decision(allowed, rule)


# ---------------------------------------------------------------------------
# grants / deny_all / describe
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "tcp", "udp"),
    [
        ({}, False, False),
        ({"allow_outbound": ["tcp://127.0.0.1:80"]}, True, False),
        ({"allow_inbound": ["udp://*:53"]}, False, True),
        ({"addr_pool": ["10.0.0.0/8"]}, True, True),
        ({"deny_outbound": ["tcp://*:*"]}, False, False),
        (
            {"allow_outbound": ["tcp://*:80"], "deny_outbound": ["tcp://*:*"]},
            False,
            False,
        ),
        (
            {"allow_outbound": ["tcp://*:80"], "deny_outbound": ["tcp://*:1-100"]},
            True,
            False,
        ),
        (
            {"allow_outbound": ["tcp://*:80"], "deny_inbound": ["tcp://*:*"]},
            True,
            False,
        ),
        ({"allow_resolve": ["*"]}, False, False),
    ],
)
def test_grants(flags: Flags, tcp: bool, udp: bool) -> None:
    policy = Policy.from_flags(**flags)
    assert policy.grants("tcp") is tcp
    assert policy.grants("udp") is udp
    assert policy.grants("sctp") is False


def test_deny_all() -> None:
    policy = Policy.deny_all()
    assert policy == Policy.from_flags()
    assert not policy.grants("tcp")
    assert not policy.grants("udp")
    assert policy.check_resolve("localhost") == Decision(False, None)
    assert policy.describe() == []


def test_describe() -> None:
    policy = Policy.from_flags(
        allow_outbound=["tcp://127.0.0.1:80"],
        allow_inbound=["udp://*:53"],
        deny_outbound=["tcp://10.0.0.0/8:*"],
        deny_inbound=["udp://[::1]:53"],
        allow_resolve=["*.example.com"],
        deny_resolve=["bad.example.com"],
        addr_pool=["1.2.3.4/15,2.3.4.6/16"],
    )
    assert policy.describe() == [
        "allow-outbound tcp://127.0.0.1:80",
        "allow-inbound udp://*:53",
        "addr-pool 1.2.3.4/15",
        "addr-pool 2.3.4.6/16",
        "deny-outbound tcp://10.0.0.0/8:*",
        "deny-inbound udp://[::1]:53",
        "allow-resolve *.example.com",
        "deny-resolve bad.example.com",
    ]
    child = Policy.from_flags(allow_outbound=["tcp://*:*"])
    assert policy.restrict(child).describe()[-1] == "restrict: allow-outbound tcp://*:*"
    assert policy.restrict(Policy.deny_all()).describe()[-1] == "restrict: (deny all)"


def test_policy_is_immutable() -> None:
    policy = Policy.deny_all()
    with pytest.raises(AttributeError):
        policy._layers = ()  # type: ignore[misc]


# ---------------------------------------------------------------------------
# restrict (attenuation)
# ---------------------------------------------------------------------------

# (parent flags, child flags): the child is typically wider than the parent.
RESTRICT_PAIRS: list[tuple[str, Flags, Flags]] = [
    ("child allows everything", {"allow_outbound": ["tcp://127.0.0.1:80"]},
     {"allow_outbound": ["tcp://*:*", "udp://*:*"], "allow_inbound": ["tcp://*:*"]}),
    ("child wider cidr", {"allow_outbound": ["tcp://10.1.0.0/16:*"]},
     {"allow_outbound": ["tcp://10.0.0.0/8:*"]}),
    ("child other protocol", {"allow_outbound": ["tcp://*:*"]},
     {"allow_outbound": ["udp://*:*"]}),
    ("child other direction", {"allow_outbound": ["tcp://*:*"]},
     {"allow_inbound": ["tcp://*:*"]}),
    ("child narrower", {"allow_outbound": ["tcp://*:*"]},
     {"allow_outbound": ["tcp://127.0.0.1:80"]}),
    ("parent deny, child allow", {"allow_outbound": ["tcp://*:*"],
                                  "deny_outbound": ["tcp://10.0.0.0/8:*"]},
     {"allow_outbound": ["tcp://*:*"]}),
    ("child deny", {"allow_outbound": ["tcp://*:*"]},
     {"allow_outbound": ["tcp://*:*"], "deny_outbound": ["tcp://127.0.0.0/8:80"]}),
    ("child addr-pool", {"allow_outbound": ["tcp://10.0.0.1:80"]},
     {"addr_pool": ["0.0.0.0/0,::/0"]}),
    ("child mapped catch-all", {"allow_outbound": ["tcp://[::]/0:*"]},
     {"allow_outbound": ["tcp://*:*"]}),
    ("child localhost", {"allow_inbound": ["tcp://127.0.0.1:8080"]},
     {"allow_inbound": ["tcp://localhost:*"]}),
    ("child name", {"allow_outbound": ["tcp://93.184.216.34:443"]},
     {"allow_outbound": ["tcp://example.com:*"]}),
    ("child deny all", {"allow_outbound": ["tcp://*:*"]}, {}),
]  # fmt: skip

PROBES: list[tuple[Direction, str, str, int]] = [
    (direction, protocol, address, port)
    for direction in Direction
    for protocol in ("tcp", "udp")
    for address in (
        "127.0.0.1",
        "127.0.0.2",
        "10.0.0.1",
        "10.1.2.3",
        "93.184.216.34",
        "::1",
        "::ffff:10.0.0.1",
        "2001:db8::1",
    )
    for port in (53, 80, 443, 8080)
]


@pytest.mark.parametrize(
    ("parent_flags", "child_flags"),
    [pytest.param(*row[1:], id=row[0]) for row in RESTRICT_PAIRS],
)
def test_restrict_never_widens(parent_flags: Flags, child_flags: Flags) -> None:
    parent = Policy.from_flags(**parent_flags)
    child = Policy.from_flags(**child_flags)
    restricted = parent.restrict(child)
    for direction, protocol, address, port in PROBES:
        args = (direction, protocol, ip(address), port, RESOLVED)
        p, c, r = (
            parent.check_address(*args),
            child.check_address(*args),
            restricted.check_address(*args),
        )
        assert r.allowed == (p.allowed and c.allowed), args
        if not p.allowed and p.rule is not None:
            assert r == p, args  # parent's explicit deny is reported
        elif p.allowed and not c.allowed:
            assert r == c, args  # child's denial (rule or default) is reported
    for protocol in ("tcp", "udp"):
        if restricted.grants(protocol):
            assert parent.grants(protocol) and child.grants(protocol)


@pytest.mark.parametrize(
    ("parent_resolve", "child_resolve", "name", "allowed", "rule"),
    [
        (["example.com"], ["*"], "example.com", True, "allow-resolve *"),
        (["example.com"], ["*"], "other.com", False, None),
        (["*"], ["*.example.com"], "example.com", False, None),
        (
            ["*"],
            ["*.example.com"],
            "a.example.com",
            True,
            "allow-resolve *.example.com",
        ),
        ([], ["*"], "example.com", False, None),
    ],
)
def test_restrict_resolve(
    parent_resolve: list[str],
    child_resolve: list[str],
    name: str,
    allowed: bool,
    rule: str | None,
) -> None:
    parent = Policy.from_flags(allow_resolve=parent_resolve)
    child = Policy.from_flags(allow_resolve=child_resolve)
    assert parent.restrict(child).check_resolve(name) == Decision(allowed, rule)


def test_restrict_reports_child_deny_rule() -> None:
    parent = Policy.from_flags(allow_outbound=["tcp://*:*"])
    child = Policy.from_flags(
        allow_outbound=["tcp://*:*"], deny_outbound=["tcp://*:22"]
    )
    decision = parent.restrict(child).check_address(OUT, "tcp", ip("192.0.2.1"), 22)
    assert decision == Decision(False, "deny-outbound tcp://*:22")


def test_restrict_grants_requires_same_direction() -> None:
    parent = Policy.from_flags(allow_outbound=["tcp://*:*"])
    child = Policy.from_flags(allow_inbound=["tcp://*:*"])
    assert not parent.restrict(child).grants("tcp")


def test_restrict_chain() -> None:
    a = Policy.from_flags(allow_outbound=["tcp://10.0.0.0/8:*"])
    b = Policy.from_flags(allow_outbound=["tcp://10.1.0.0/16:*"])
    c = Policy.from_flags(allow_outbound=["tcp://*:443"])
    chained = a.restrict(b).restrict(c)
    assert chained.check_address(OUT, "tcp", ip("10.1.2.3"), 443)
    assert not chained.check_address(OUT, "tcp", ip("10.1.2.3"), 80)
    assert not chained.check_address(OUT, "tcp", ip("10.2.0.1"), 443)
    assert a.restrict(b.restrict(c)) == chained


# ---------------------------------------------------------------------------
# Property tests (optional dependency)
# ---------------------------------------------------------------------------

try:
    from hypothesis import given
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - hypothesis is optional
    pass
else:
    _v4 = st.builds(ipaddress.IPv4Address, st.integers(0, 2**32 - 1))
    _v6 = st.builds(ipaddress.IPv6Address, st.integers(0, 2**128 - 1))
    _addr = st.one_of(_v4, _v6)
    _port = st.integers(0, 65535)
    _direction = st.sampled_from(list(Direction))
    _protocol = st.sampled_from(["tcp", "udp"])
    _rule = st.builds(
        lambda proto, host, prefix, port: f"{proto}://{host}/{prefix}:{port}",
        _protocol,
        _v4.map(str),
        st.integers(0, 32),
        st.one_of(st.just("*"), _port.map(str)),
    )
    _flags = st.fixed_dictionaries(
        {
            "allow_outbound": st.lists(_rule, max_size=3),
            "allow_inbound": st.lists(_rule, max_size=3),
            "deny_outbound": st.lists(_rule, max_size=2),
            "deny_inbound": st.lists(_rule, max_size=2),
        }
    )

    @given(_direction, _protocol, _addr, _port)
    def test_property_deny_all_denies(
        direction: Direction, protocol: str, address: IPAddress, port: int
    ) -> None:
        assert Policy.deny_all().check_address(
            direction, protocol, address, port
        ) == Decision(False, None)

    @given(_flags, _flags, _direction, _protocol, _v4, _port)
    def test_property_restrict_is_intersection(
        parent_flags: Flags,
        child_flags: Flags,
        direction: Direction,
        protocol: str,
        address: ipaddress.IPv4Address,
        port: int,
    ) -> None:
        parent = Policy.from_flags(**parent_flags)
        child = Policy.from_flags(**child_flags)
        result = parent.restrict(child).check_address(
            direction, protocol, address, port
        )
        p = parent.check_address(direction, protocol, address, port)
        c = child.check_address(direction, protocol, address, port)
        assert result.allowed == (p.allowed and c.allowed)
        # The mapped form of an IPv4 address is always judged identically.
        mapped = ipaddress.IPv6Address(b"\0" * 10 + b"\xff\xff" + address.packed)
        assert parent.check_address(direction, protocol, mapped, port) == p

    @given(_flags, _direction, _protocol, _v4, _port)
    def test_property_restrict_by_deny_all(
        flags: Flags, direction: Direction, protocol: str, address: IPAddress, port: int
    ) -> None:
        restricted = Policy.from_flags(**flags).restrict(Policy.deny_all())
        assert not restricted.check_address(direction, protocol, address, port)
        assert (
            not Policy.deny_all()
            .restrict(Policy.from_flags(**flags))
            .check_address(direction, protocol, address, port)
        )


# Keep an explicit reference so the import of AddressRule is exercised by tests.
def test_public_types_exported() -> None:
    rule = parse_address_rule("udp://[::1]:53")
    assert isinstance(rule, AddressRule)
    assert isinstance(rule.host, NetworkHost)


# ---------------------------------------------------------------------------
# Boundary cases (issue 3's checklist), and the deny-only / resolve grants
# ---------------------------------------------------------------------------

BOUNDARIES: list[tuple[str, str, str, int, bool]] = [
    # id, rule, ip, port, allowed -- each rule as --allow-outbound
    ("/8 first address", "tcp://10.0.0.0/8:*", "10.0.0.0", 1, True),
    ("/8 last address", "tcp://10.0.0.0/8:*", "10.255.255.255", 1, True),
    ("/8 one below", "tcp://10.0.0.0/8:*", "9.255.255.255", 1, False),
    ("/8 one above", "tcp://10.0.0.0/8:*", "11.0.0.0", 1, False),
    ("/31 pair", "tcp://192.0.2.4/31:*", "192.0.2.5", 1, True),
    ("/31 next", "tcp://192.0.2.4/31:*", "192.0.2.6", 1, False),
    ("/0 any v4", "tcp://0.0.0.0/0:*", "203.0.113.9", 1, True),
    ("/0 v4 not v6", "tcp://0.0.0.0/0:*", "2001:db8::1", 1, False),
    ("/0 any v6", "tcp://[::]/0:*", "2001:db8::1", 1, True),
    ("/0 v6 not mapped v4", "tcp://[::]/0:*", "::ffff:203.0.113.9", 1, False),
    ("/32 exact", "tcp://192.0.2.1/32:*", "192.0.2.1", 1, True),
    ("/32 neighbour", "tcp://192.0.2.1/32:*", "192.0.2.2", 1, False),
    ("/128 exact", "tcp://[2001:db8::1/128]:*", "2001:db8::1", 1, True),
    ("/128 neighbour", "tcp://[2001:db8::1/128]:*", "2001:db8::2", 1, False),
    ("/64 last", "tcp://[2001:db8::/64]:*", "2001:db8::ffff:ffff:ffff:ffff", 1, True),
    ("/64 one above", "tcp://[2001:db8::/64]:*", "2001:db8:0:1::", 1, False),
    ("port * includes 0", "udp://127.0.0.1:*", "127.0.0.1", 0, True),
    ("port * includes 65535", "udp://127.0.0.1:*", "127.0.0.1", 65535, True),
    ("port 0 exact", "udp://127.0.0.1:0", "127.0.0.1", 0, True),
    ("port 0 not 1", "udp://127.0.0.1:0", "127.0.0.1", 1, False),
    ("port 65535 exact", "udp://127.0.0.1:65535", "127.0.0.1", 65535, True),
    ("range excludes 0", "udp://127.0.0.1:1-65535", "127.0.0.1", 0, False),
    ("range high end", "udp://127.0.0.1:1000-2000", "127.0.0.1", 2000, True),
    ("range one past", "udp://127.0.0.1:1000-2000", "127.0.0.1", 2001, False),
    ("mapped judged by v4 rule", "udp://127.0.0.1:53", "::ffff:127.0.0.1", 53, True),
    ("mapped other v4", "udp://127.0.0.1:53", "::ffff:127.0.0.2", 53, False),
    ("v6 loopback is not v4", "udp://127.0.0.1:53", "::1", 53, False),
    ("bracketed v6 rule", "udp://[::1]:53", "::1", 53, True),
]  # fmt: skip


@pytest.mark.parametrize(
    ("rule", "address", "port", "allowed"),
    [pytest.param(*row[1:], id=row[0]) for row in BOUNDARIES],
)
def test_boundaries(rule: str, address: str, port: int, allowed: bool) -> None:
    protocol = rule.split(":", 1)[0]
    policy = Policy.from_flags(allow_outbound=[rule])
    assert policy.check_address(OUT, protocol, ip(address), port).allowed is allowed


@pytest.mark.parametrize(("flags", "name", "allowed"), [
    ({"allow_resolve": ["*.example.com"]}, "a.b.c.d.example.com", True),
    ({"allow_resolve": ["*.example.com"]}, "EXAMPLE.COM", False),
    ({"allow_resolve": ["*.Example.COM."]}, "WWW.example.com.", True),
    ({"allow_resolve": ["example.com."]}, "Example.Com", True),
    ({"allow_resolve": ["example.com"]}, "example.com..", False),
    ({"allow_resolve": ["*"], "deny_resolve": ["EVIL.test."]}, "evil.TEST", False),
])  # fmt: skip
def test_resolve_names_case_and_dots(flags: Flags, name: str, allowed: bool) -> None:
    assert Policy.from_flags(**flags).check_resolve(name).allowed is allowed


@pytest.mark.parametrize(("flags", "address", "allowed", "rule"), [
    ({}, "0.0.0.0", True, None),
    ({"allow_inbound": ["udp://127.0.0.1:*"]}, "0.0.0.0", True, None),
    ({"deny_inbound": ["udp://*:*"]}, "0.0.0.0", False, "deny-inbound udp://*:*"),
    ({"deny_inbound": ["udp://*:*"]}, "::", False, "deny-inbound udp://*:*"),
    ({"deny_inbound": ["udp://127.0.0.1:*"]}, "0.0.0.0", True, None),
    ({"deny_inbound": ["tcp://*:*"]}, "0.0.0.0", True, None),
    ({"deny_inbound": ["udp://*:1-65535"]}, "0.0.0.0", True, None),
])  # fmt: skip
def test_check_denied_only_looks_at_deny_rules(flags: Flags, address: str, allowed: bool,
                                               rule: str | None) -> None:
    decision = Policy.from_flags(**flags).check_denied(IN, "udp", ip(address), 0)
    assert decision == Decision(allowed, rule)


def test_check_denied_in_a_restricted_layer() -> None:
    parent = Policy.from_flags(allow_outbound=["udp://*:*"])
    child = parent.restrict(Policy.from_flags(deny_inbound=["udp://*:*"]))
    assert parent.check_denied(IN, "udp", ip("0.0.0.0"), 0).allowed
    assert not child.check_denied(IN, "udp", ip("0.0.0.0"), 0).allowed


@pytest.mark.parametrize(("flags", "granted"), [
    ({}, False),
    ({"allow_outbound": ["tcp://*:*"]}, False),
    ({"allow_resolve": ["example.com"]}, True),
    ({"allow_outbound": ["tcp://svc.test:80"]}, True),
    ({"allow_inbound": ["udp://localhost:53"]}, True),
    ({"deny_outbound": ["tcp://svc.test:80"]}, False),
    ({"allow_resolve": ["*"], "deny_resolve": ["*"]}, False),
    ({"allow_resolve": ["*"], "deny_resolve": ["evil.test"]}, True),
])  # fmt: skip
def test_grants_resolve(flags: Flags, granted: bool) -> None:
    assert Policy.from_flags(**flags).grants_resolve() is granted


def test_grants_resolve_needs_every_layer() -> None:
    parent = Policy.from_flags(allow_resolve=["*"])
    assert parent.restrict(Policy.from_flags(allow_resolve=["a.test"])).grants_resolve()
    assert not parent.restrict(Policy.from_flags(deny_resolve=["x.test"])).grants_resolve()


# ---------------------------------------------------------------------------
# A name grants no more than the address written in a rule (issue 15, defect 3)
# ---------------------------------------------------------------------------

SPECIAL_ANSWERS = ["0.0.0.0", "224.0.0.1", "239.255.255.250", "255.255.255.255", "::",
                   "ff02::1", "ff05::1:3", "::ffff:0.0.0.0", "::ffff:224.0.0.1",
                   "64:ff9b::", "64:ff9b::e000:1", "2002:ffff:ffff::1"]


@pytest.mark.parametrize("answer", SPECIAL_ANSWERS)
@pytest.mark.parametrize("protocol", ["tcp", "udp"])
@pytest.mark.parametrize("direction", [IN, OUT])
def test_name_rule_never_grants_special_answers(answer: str, protocol: str,
                                                direction: Direction) -> None:
    """A DNS answer that is (or embeds) the unspecified, a multicast or the
    broadcast address grants nothing through a name rule, in either
    direction, for either protocol; the same address in an address rule
    (here `*`) is granted as written."""
    flag = "allow_inbound" if direction is IN else "allow_outbound"
    resolved = {"svc.test": frozenset({ip(answer), ip("127.0.0.1")})}
    by_name = Policy.from_flags(**{flag: [f"{protocol}://svc.test:5353"]})
    assert not by_name.check_address(direction, protocol, ip(answer), 5353, resolved)
    # the ordinary answer next to it still counts
    assert by_name.check_address(direction, protocol, ip("127.0.0.1"), 5353, resolved)
    literal = Policy.from_flags(**{flag: [f"{protocol}://*:5353"]})
    assert literal.check_address(direction, protocol, ip(answer), 5353, resolved)


def test_name_rule_matches_the_ipv4_in_a_dns64_answer() -> None:
    """DNS64 answers `64:ff9b::a.b.c.d`: the name designates both forms."""
    resolved = {"svc.test": frozenset({ip("64:ff9b::5db8:d822")})}
    policy = Policy.from_flags(allow_outbound=["tcp://svc.test:443"])
    decision = policy.check_address(OUT, "tcp", ip("64:ff9b::5db8:d822"), 443, resolved)
    assert decision == Decision(True, "allow-outbound tcp://svc.test:443")
    denied = Policy.from_flags(allow_outbound=["tcp://svc.test:443"],
                               deny_outbound=["tcp://93.184.0.0/16:*"])
    assert not denied.check_address(OUT, "tcp", ip("64:ff9b::5db8:d822"), 443, resolved)


@pytest.mark.parametrize(("address", "kind"), [
    ("0.0.0.0", "unspecified"), ("::", "unspecified"), ("::ffff:0.0.0.0", "unspecified"),
    ("::0.0.0.0", "unspecified"), ("64:ff9b::", "unspecified"), ("2002::1", "unspecified"),
    ("2001:0:a01:203::ffff:ffff", "unspecified"),       # Teredo client 0.0.0.0
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"), ("64:ff9b::e000:1", "multicast"),
    ("255.255.255.255", "broadcast"), ("::ffff:255.255.255.255", "broadcast"),
    ("127.0.0.1", None), ("::1", None), ("64:ff9b::a01:203", None),
    ("2001:db8::", None),                               # not Teredo
    # local-use: no reading is taken for the destination (a /48 address
    # reads 0.0.0.0 at the /96 position); the rules judge every reading
    ("64:ff9b:1:a01:2:300::", None), ("64:ff9b:1::", None),
])
def test_special_kind(address: str, kind: str | None) -> None:
    assert special_kind(ip(address)) == kind


def test_name_rule_grants_no_special_reading_of_a_local_use_answer() -> None:
    """`64:ff9b:1:e000:0:100::` reads 224.0.0.1 at the /48 position: the
    name rule does not grant that reading, so the answer is not allowed
    (fail closed); `*` would allow it."""
    answer = "64:ff9b:1:e000:0:100::"
    resolved = {"svc.test": frozenset({ip(answer)})}
    assert not Policy.from_flags(allow_outbound=["udp://svc.test:53"]).check_address(
        OUT, "udp", ip(answer), 53, resolved)
    assert Policy.from_flags(allow_outbound=["udp://*:53"]).check_address(
        OUT, "udp", ip(answer), 53, resolved)
