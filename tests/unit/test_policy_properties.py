"""Property-based tests of the policy parser and matcher (hypothesis).

The matcher is checked against a deliberately naive reference model written
here from the rule language's documentation, on plain integers (no
`ipaddress` subnet logic, no shared helpers), so that a bug would have to be
made twice, in two different ways, to go unnoticed.

CI runs a fixed budget; a longer run:
``CAPSOCK_HYPOTHESIS_EXAMPLES=20000 pytest tests/unit/test_policy_properties.py``.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from typing import NamedTuple

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capsock.policy import (
    Decision,
    Direction,
    Endpoint,
    Policy,
    PolicyError,
    Resolved,
    Use,
    embedded_ipv4,
    narrow,
    normalize_query_name,
    parse_addr_pool,
    parse_address_rule,
    parse_resolve_rule,
)

EXAMPLES = int(os.environ.get("CAPSOCK_HYPOTHESIS_EXAMPLES", "300"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
OUT = Direction.OUTBOUND
MAPPED = 0xFFFF << 32  # ::ffff:0:0/96, as an integer


# -- the reference model -------------------------------------------------------

@dataclass(frozen=True)
class Net:
    """A network in the model: family 4 or 6, base address, prefix length."""

    family: int
    base: int
    prefix: int

    def contains(self, family: int, address: int) -> bool:
        if family != self.family:
            return False
        bits = 32 if family == 4 else 128
        shift = bits - self.prefix
        return address >> shift == self.base >> shift


@dataclass(frozen=True)
class ModelRule:
    protocol: str
    host: str  # "any" | "localhost" | "net"
    net: Net | None
    low: int
    high: int
    text: str

    def matches(self, protocol: str, family: int, address: int, port: int) -> bool:
        if protocol != self.protocol or not self.low <= port <= self.high:
            return False
        if self.host == "any":
            return True
        if self.host == "localhost":
            return (family == 4 and address >> 24 == 127) or (family == 6 and address == 1)
        assert self.net is not None
        return self.net.contains(family, address)


def model_normalize(family: int, address: int) -> tuple[int, int]:
    """IPv4-mapped IPv6 is IPv4; the other embedding forms stay IPv6."""
    if family == 6 and address >> 32 == 0xFFFF:
        return 4, address & 0xFFFF_FFFF
    return family, address


def bits(address: int) -> str:
    """An IPv6 address as its 128 bits, most significant first."""
    return format(address, "0128b")


def v4_of(text: str) -> int:
    return int(text, 2)


#: (prefix bits, where the IPv4 bits are) for each form that embeds one,
#: read from the RFCs as bit ranges of the address (6052 section 2.2;
#: 8215; 3056; 4380), not as shifts.
EMBEDDINGS: dict[str, tuple[str, list[tuple[int, int]]]] = {
    "mapped": ("0" * 80 + "1" * 16, [(96, 128)]),
    "compatible": ("0" * 96, [(96, 128)]),
    "nat64": (format(0x0064FF9B, "032b") + "0" * 64, [(96, 128)]),
    # In the order the host reports them: the destination reading first.
    "local-96": (format(0x0064FF9B0001, "048b"), [(96, 128)]),
    "local-64": (format(0x0064FF9B0001, "048b"), [(72, 104)]),
    "local-56": (format(0x0064FF9B0001, "048b"), [(56, 64), (72, 96)]),
    "local-48": (format(0x0064FF9B0001, "048b"), [(48, 64), (72, 88)]),
    "6to4": (format(0x2002, "016b"), [(16, 48)]),
    "teredo-client": (format(0x20010000, "032b"), [(96, 128)]),  # inverted
    "teredo-server": (format(0x20010000, "032b"), [(32, 64)]),
}


def model_embedded(address: int) -> list[int]:
    """The IPv4 addresses an IPv6 address designates, from `EMBEDDINGS`."""
    text = bits(address)
    found: list[int] = []
    for kind, (prefix, places) in EMBEDDINGS.items():
        if not text.startswith(prefix):
            continue
        if kind == "compatible" and address <= 1:
            continue
        v4 = v4_of("".join(text[start:end] for start, end in places))
        if kind == "teredo-client":
            v4 = v4_of("".join("1" if bit == "0" else "0" for bit in format(v4, "032b")))
        if v4 not in found:
            found.append(v4)
    return found


def embed(kind: str, v4: int, filler: int) -> int:
    """An IPv6 address of `kind` carrying `v4`, other bits from `filler`
    (the u-octet, bits 64-71, stays zero in the local-use forms)."""
    prefix, places = EMBEDDINGS[kind]
    text = list(bits(filler))
    text[:len(prefix)] = prefix
    payload = format(v4, "032b")
    if kind == "teredo-client":
        payload = "".join("1" if bit == "0" else "0" for bit in payload)
    if kind.startswith("local"):
        text[64:72] = "0" * 8
    for start, end in places:
        text[start:end] = payload[:end - start]
        payload = payload[end - start:]
    return int("".join(text), 2)


def model_forms(family: int, address: int) -> list[tuple[int, int]]:
    """What the rules judge: the normalized address, then each IPv4 address
    an IPv6 one embeds (a deny on any wins; each needs an allow)."""
    family, address = model_normalize(family, address)
    if family == 4:
        return [(4, address)]
    return [(6, address)] + [(4, v4) for v4 in model_embedded(address)]


def model_net(family: int, base: int, prefix: int) -> Net:
    """A rule's network; an IPv6 one inside ::ffff:0:0/96 means IPv4."""
    if family == 6 and prefix >= 96:
        masked = base >> (128 - prefix) << (128 - prefix)
        if masked >> 32 == 0xFFFF:
            return Net(4, masked & 0xFFFF_FFFF, prefix - 96)
    return Net(family, base, prefix)


def model_decide(denies: list[ModelRule], allows: list[ModelRule], protocol: str,
                 family: int, address: int, port: int) -> tuple[bool, str | None]:
    forms = model_forms(family, address)
    for form_family, form in forms:
        for rule in denies:
            if rule.matches(protocol, form_family, form, port):
                return False, rule.text
    text = None
    for form_family, form in forms:
        match = next((rule for rule in allows
                      if rule.matches(protocol, form_family, form, port)), None)
        if match is None:
            return False, None
        text = match.text
    return True, text


# -- strategies ----------------------------------------------------------------

V4_POOL = [0x7F000001, 0x0A000001, 0xC0A80101, 0xFFFFFFFF, 0, 0xE0000001, 0xA9FE0001]
V6_POOL = [1, 0, 0xFE80 << 112 | 1, MAPPED | 0x7F000001, 0x7F000001,  # ::1, ::, fe80::1,
           MAPPED | 0x0A000001, 0xFD00 << 112 | 5, 0xFF02 << 112 | 1,  # mapped, compat, ...
           0x64FF9B << 64 | 0x0A010203, 0x2002_0A01_0203 << 80,  # NAT64, 6to4 of 10.1.2.3
           0x64FF9B << 64, 0x2001 << 112, 0x20010DB8 << 96 | 0x0A010203]  # no Teredo

v4_addresses = st.one_of(st.sampled_from(V4_POOL), st.integers(0, 2**32 - 1))
embedded_v6 = st.builds(embed, st.sampled_from(sorted(EMBEDDINGS)), v4_addresses,
                        st.integers(0, 2**128 - 1))
v6_addresses = st.one_of(st.sampled_from(V6_POOL), st.integers(0, 2**128 - 1),
                         st.integers(0, 2**32 - 1).map(lambda a: MAPPED | a), embedded_v6)
ports = st.one_of(st.sampled_from([0, 1, 53, 80, 443, 1023, 1024, 65535]),
                  st.integers(0, 65535))


@st.composite
def port_ranges(draw: st.DrawFn) -> tuple[int, int, str]:
    kind = draw(st.sampled_from(["any", "one", "range"]))
    if kind == "any":
        return 0, 65535, "*"
    low = draw(ports)
    if kind == "one":
        return low, low, str(low)
    high = draw(st.integers(low, 65535))
    return low, high, f"{low}-{high}"


@st.composite
def model_rules(draw: st.DrawFn) -> ModelRule:
    protocol = draw(st.sampled_from(["tcp", "udp"]))
    scheme = draw(st.sampled_from([protocol, protocol.upper()]))
    low, high, port_text = draw(port_ranges())
    kind = draw(st.sampled_from(["any", "localhost", "v4", "v6"]))
    net = None
    if kind == "any":
        host_text = "*"
    elif kind == "localhost":
        host_text = draw(st.sampled_from(["localhost", "LocalHost", "localhost."]))
    elif kind == "v4":
        base = draw(v4_addresses)
        prefix = draw(st.integers(0, 32))
        text = str(ipaddress.IPv4Address(base))
        host_text = text if prefix == 32 and draw(st.booleans()) else f"{text}/{prefix}"
        net = model_net(4, base, prefix)
    else:
        base = draw(v6_addresses)
        prefix = draw(st.integers(0, 128))
        text = str(ipaddress.IPv6Address(base))
        form = draw(st.sampled_from(["inside", "outside", "plain"]))
        if form == "plain":
            prefix = 128
            host_text = f"[{text}]"
        elif form == "inside":
            host_text = f"[{text}/{prefix}]"
        else:
            host_text = f"[{text}]/{prefix}"
        net = model_net(6, base, prefix)
    text = f"{scheme}://{host_text}:{port_text}"
    return ModelRule(protocol, "net" if net else kind, net, low, high, text)


@st.composite
def targets(draw: st.DrawFn) -> tuple[str, ipaddress.IPv4Address | ipaddress.IPv6Address,
                                       int, int, int]:
    protocol = draw(st.sampled_from(["tcp", "udp"]))
    port = draw(ports)
    if draw(st.booleans()):
        address = draw(v4_addresses)
        return protocol, ipaddress.IPv4Address(address), 4, address, port
    address = draw(v6_addresses)
    text = str(ipaddress.IPv6Address(address))
    if draw(st.integers(0, 3)) == 0:  # scope ids never change a decision
        text += "%" + draw(st.sampled_from(["eth0", "1", "lo"]))
    return protocol, ipaddress.IPv6Address(text), 6, address, port


RULE_ALPHABET = st.sampled_from(list("tcpudp:/[]*.-0123456789abcdefx%, \t\x00é") +
                                ["tcp://", "udp://", "::", "localhost", "127.0.0.1", "ffff"])
rule_like = st.lists(RULE_ALPHABET, max_size=20).map("".join)


# -- properties ----------------------------------------------------------------

@SETTINGS
@given(st.one_of(st.text(max_size=80), rule_like))
def test_parsers_only_raise_policy_error(text: str) -> None:
    """No input crashes a parser: it is a rule or a PolicyError."""
    for parse in (parse_address_rule, parse_resolve_rule, parse_addr_pool):
        try:
            parse(text)
        except PolicyError:
            pass


@SETTINGS
@given(st.one_of(st.text(max_size=80), rule_like, model_rules().map(lambda r: r.text)))
def test_every_accepted_rule_round_trips(text: str) -> None:
    """An accepted rule parses to the same value again from its own text."""
    try:
        rule = parse_address_rule(text)
    except PolicyError:
        return
    assert parse_address_rule(rule.text) == rule


@SETTINGS
@given(model_rules())
def test_generated_rules_are_accepted(rule: ModelRule) -> None:
    parsed = parse_address_rule(rule.text)
    assert parsed.protocols == frozenset({rule.protocol})
    assert (parsed.ports.low, parsed.ports.high) == (rule.low, rule.high)


@SETTINGS
@given(st.sampled_from(sorted(EMBEDDINGS)), v4_addresses, st.integers(0, 2**128 - 1))
def test_every_embedding_gives_its_ipv4_back(kind: str, v4: int, filler: int) -> None:
    """For any IPv4 address and any form that embeds one, the extraction
    finds it; and the extraction is the model's, reading for reading."""
    address = embed(kind, v4, filler)
    if kind == "compatible" and address <= 1:
        return  # :: and ::1 are themselves, not 0.0.0.0 and 0.0.0.1
    found = embedded_ipv4(ipaddress.IPv6Address(address))
    assert ipaddress.IPv4Address(v4) in found
    assert [int(ip) for ip in found] == model_embedded(address)


EMBEDDING_PREFIXES = [ipaddress.IPv6Network(n) for n in (
    "::ffff:0:0/96", "::/96", "64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/32")]


@SETTINGS
@given(st.one_of(st.integers(0, 2**128 - 1), st.sampled_from(V6_POOL),
                 st.integers(0, 2**32 - 1).map(lambda a: (0x64FF9B << 64 | 1 << 32) + a)))
def test_no_ipv4_outside_the_embedding_prefixes(address: int) -> None:
    """Outside these prefixes (and for :: and ::1), nothing is extracted."""
    ip = ipaddress.IPv6Address(address)
    inside = address > 1 and any(ip in prefix for prefix in EMBEDDING_PREFIXES)
    assert bool(embedded_ipv4(ip)) == inside
    assert [int(v4) for v4 in embedded_ipv4(ip)] == model_embedded(address)


@SETTINGS
@given(v4_addresses)
def test_an_ipv4_address_embeds_nothing(v4: int) -> None:
    assert embedded_ipv4(ipaddress.IPv4Address(v4)) == ()


@SETTINGS
@given(st.lists(model_rules(), max_size=4), st.lists(model_rules(), max_size=4),
       st.lists(targets(), min_size=1, max_size=8))
def test_decision_equals_the_model(allows: list[ModelRule], denies: list[ModelRule],
                                   checks: list[tuple[str, ipaddress.IPv4Address |
                                                      ipaddress.IPv6Address, int, int, int]]
                                   ) -> None:
    policy = Policy.from_flags(allow_outbound=[r.text for r in allows],
                               deny_outbound=[r.text for r in denies])
    for protocol, ip, family, address, port in checks:
        decision = policy.check_address(OUT, protocol, ip, port)
        allowed, rule = model_decide(denies, allows, protocol, family, address, port)
        assert decision.allowed == allowed, (ip, port, decision)
        label = "deny-outbound" if not allowed else "allow-outbound"
        assert decision.rule == (None if rule is None else f"{label} {rule.strip()}")
        # the other direction has no rules at all: default deny
        assert not policy.check_address(Direction.INBOUND, protocol, ip, port).allowed


@SETTINGS
@given(st.lists(model_rules(), max_size=3), st.lists(model_rules(), max_size=3),
       st.lists(targets(), min_size=1, max_size=8))
def test_restrict_never_widens(parent: list[ModelRule], child: list[ModelRule],
                               checks: list[tuple[str, ipaddress.IPv4Address |
                                                  ipaddress.IPv6Address, int, int, int]]
                               ) -> None:
    """A restricted policy allows exactly what both parent and child allow."""
    outer = Policy.from_flags(allow_outbound=[r.text for r in parent])
    inner = Policy.from_flags(allow_outbound=[r.text for r in child])
    narrowed = outer.restrict(inner)
    for protocol, ip, _, _, port in checks:
        both = (outer.check_address(OUT, protocol, ip, port).allowed
                and inner.check_address(OUT, protocol, ip, port).allowed)
        assert narrowed.check_address(OUT, protocol, ip, port).allowed == both


class Target(NamedTuple):
    """An `Endpoint` (the policy needs nothing more of an address)."""

    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    port: int


class Opaque:
    """Some embedder's checker: here it happens to ask a Policy."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def check(self, use: Use, target: Endpoint | str, resolved: Resolved) -> Decision:
        return self.policy.check(use, target, resolved)


OUT_USES = {"tcp": (Use.TCP_CONNECT,),
            "udp": (Use.UDP_CONNECT, Use.UDP_SEND, Use.UDP_RECEIVE, Use.UDP_REPLY)}


@SETTINGS
@given(st.lists(model_rules(), max_size=4), st.lists(model_rules(), max_size=4),
       st.lists(targets(), min_size=1, max_size=8))
def test_typed_uses_ask_the_rules_of_their_direction(
        allows: list[ModelRule], denies: list[ModelRule],
        checks: list[tuple[str, ipaddress.IPv4Address | ipaddress.IPv6Address, int, int, int]]
        ) -> None:
    """`Policy.check` is `check_address` in the use's direction, and deny
    rules alone for a reply (the model's deny half)."""
    policy = Policy.from_flags(allow_outbound=[r.text for r in allows],
                               deny_outbound=[r.text for r in denies])
    for protocol, ip, family, address, port in checks:
        target = Target(ip, port)
        connect = Use.TCP_CONNECT if protocol == "tcp" else Use.UDP_CONNECT
        assert policy.check(connect, target, {}) == policy.check_address(OUT, protocol, ip, port)
        if protocol == "udp":
            for use in (Use.UDP_SEND, Use.UDP_RECEIVE):
                assert policy.check(use, target, {}) == policy.check_address(
                    OUT, "udp", ip, port)
            reply = policy.check(Use.UDP_REPLY, target, {})
            denied = model_decide(denies, [], "udp", family, address, port)[1] is not None
            assert reply.allowed == (not denied)
            assert reply.rule == ("reply" if not denied else reply.rule)
        bind = Use.TCP_BIND if protocol == "tcp" else Use.UDP_BIND
        assert not policy.check(bind, target, {}).allowed  # no inbound rule


@SETTINGS
@given(st.lists(model_rules(), max_size=3), st.lists(model_rules(), max_size=3),
       st.lists(model_rules(), max_size=2), st.lists(targets(), min_size=1, max_size=8))
def test_restrict_over_any_checker_equals_restrict_over_a_policy(
        parent: list[ModelRule], child: list[ModelRule], child_denies: list[ModelRule],
        checks: list[tuple[str, ipaddress.IPv4Address | ipaddress.IPv6Address, int, int, int]]
        ) -> None:
    """A layer over an opaque checker decides exactly as over the Policy it
    hides (the same decision, rule included): never wider than the parent."""
    outer = Policy.from_flags(allow_outbound=[r.text for r in parent])
    inner = Policy.from_flags(allow_outbound=[r.text for r in child],
                              deny_outbound=[r.text for r in child_denies])
    stacked, wrapped = narrow(outer, inner), narrow(Opaque(outer), inner)
    assert isinstance(stacked, Policy) and not isinstance(wrapped, Policy)
    for protocol, ip, _, _, port in checks:
        for use in OUT_USES[protocol]:
            target = Target(ip, port)
            decision = wrapped.check(use, target, {})
            assert decision == stacked.check(use, target, {})
            assert decision.allowed <= outer.check(use, target, {}).allowed


LABELS = st.sampled_from(["a", "b", "svc", "x-1", "example", "com", "test", "0a"])
names = st.lists(LABELS, min_size=1, max_size=4).map(".".join)


@st.composite
def resolve_rules(draw: st.DrawFn) -> tuple[str, str | None, bool]:
    kind = draw(st.sampled_from(["any", "exact", "sub"]))
    if kind == "any":
        return "*", None, False
    name = draw(names)
    return (name if kind == "exact" else f"*.{name}"), name, kind == "sub"


def model_resolve_match(rule: tuple[str, str | None, bool], name: str) -> bool:
    _, base, sub = rule
    if base is None:
        return True
    labels, base_labels = name.split("."), base.split(".")
    if sub:
        return len(labels) > len(base_labels) and labels[-len(base_labels):] == base_labels
    return labels == base_labels


@SETTINGS
@given(st.lists(resolve_rules(), max_size=4), st.lists(resolve_rules(), max_size=3),
       names, st.sampled_from(["", ".", "UPPER"]))
def test_resolve_decision_equals_the_model(allows: list[tuple[str, str | None, bool]],
                                           denies: list[tuple[str, str | None, bool]],
                                           name: str, variant: str) -> None:
    policy = Policy.from_flags(allow_resolve=[r[0] for r in allows],
                               deny_resolve=[r[0] for r in denies])
    query = name.upper() if variant == "UPPER" else name + variant
    expected = (not any(model_resolve_match(r, name) for r in denies)
                and any(model_resolve_match(r, name) for r in allows))
    assert normalize_query_name(query) == name
    assert policy.check_resolve(query).allowed == expected


@SETTINGS
@given(st.text(max_size=300))
def test_hostile_query_names_never_match_a_wildcard_by_accident(name: str) -> None:
    """Any name `*.example.com` allows normalizes to a real subdomain of it."""
    policy = Policy.from_flags(allow_resolve=["*.example.com"])
    if policy.check_resolve(name).allowed:
        normalized = normalize_query_name(name)
        assert normalized is not None and normalized.endswith(".example.com")
        assert all(0x20 < ord(c) < 0x7F for c in normalized)
