"""Parsing of capsock policy rule strings into immutable values.

This module is deliberately pure: it performs no I/O, no DNS resolution and
no logging.  A rule string is turned into an immutable value once, at start-up,
so that every later decision is made against a validated, normalized value and
never against user text.  Any rule that cannot be understood is rejected with a
:class:`PolicyError` that quotes the rule verbatim, because a silently ignored
(or silently widened) rule is a security bug in a capability system.

Rule language (WASI-Networking proposal / WAMR):

* address rules: ``PROTO://HOST:PORT`` -- see :func:`parse_address_rule`;
* resolve rules: ``example.com``, ``*.example.com``, ``*`` -- see
  :func:`parse_resolve_rule`;
* WAMR address pools: ``ADDRESS/MASK[,ADDRESS/MASK...]`` -- see
  :func:`parse_addr_pool`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import NamedTuple, TypeAlias

from .groups import GROUP_NAMES, group_network

__all__ = [
    "MAX_PORT",
    "PROTOCOLS",
    "AddressRule",
    "AnyHost",
    "GroupHost",
    "HostMatcher",
    "IPAddress",
    "IPNetwork",
    "LocalhostHost",
    "NameHost",
    "NetworkHost",
    "PolicyError",
    "PortRange",
    "ResolveRule",
    "SubdomainHost",
    "embedded_ipv4",
    "normalize_ip",
    "special_kind",
    "normalize_query_name",
    "parse_addr_pool",
    "parse_address_rule",
    "parse_resolve_rule",
]

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
# What the caller learned by resolving names: name -> addresses.
_Resolved: TypeAlias = Mapping[str, frozenset[IPAddress]] | None

#: The transport protocols a rule may name.
PROTOCOLS: frozenset[str] = frozenset({"tcp", "udp"})

MAX_PORT = 65535
_MAX_NAME_LENGTH = 253

# One LDH label (RFC 1123): letters, digits and hyphens, 1..63 characters, not
# starting or ending with a hyphen.  Input is lower-cased before matching.
_LDH_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", re.ASCII)
# Names *queried* by a guest may also contain underscores (e.g. SRV-style
# ``_service._tcp`` labels or legacy host names); rules stay strict LDH.
_QUERY_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?", re.ASCII)
# A label that inet_aton() would read as a number (decimal, octal or hex).
_NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+", re.ASCII)
_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_DIGITS_AND_DOTS = re.compile(r"[0-9.]+", re.ASCII)

_LOOPBACK_V4 = ipaddress.IPv4Network("127.0.0.0/8")
_LOOPBACK_V6 = ipaddress.IPv6Address("::1")
_MAPPED_V6 = ipaddress.IPv6Network("::ffff:0:0/96")
_BROADCAST_V4 = ipaddress.IPv4Address("255.255.255.255")

# The IPv6 prefixes that embed an IPv4 address (see `embedded_ipv4`), as the
# integers their addresses start with, compared after a shift.
_MAPPED_TOP96 = 0xFFFF                        # ::ffff:0:0/96
_NAT64_TOP96 = 0x64_FF9B << 64                # 64:ff9b::/96 (RFC 6052)
_NAT64_LOCAL_TOP48 = 0x64_FF9B_0001           # 64:ff9b:1::/48 (RFC 8215)
_SIX_TO_FOUR_TOP16 = 0x2002                   # 2002::/16 (RFC 3056)
_TEREDO_TOP32 = 0x2001_0000                   # 2001::/32 (RFC 4380)
_V4_MASK = 0xFFFF_FFFF


class PolicyError(ValueError):
    """A policy rule could not be parsed.

    The message always quotes the offending rule verbatim (and the flag it
    came from, when known) so that a user with many rules can find the bad one.
    """


class _Invalid(Exception):
    """Internal: a reason why (part of) a rule is invalid.

    Helpers raise this with just the reason; the public parse functions wrap it
    into a :class:`PolicyError` that also names the whole rule and the flag.
    """


def _error(text: str, flag: str, reason: str) -> PolicyError:
    """Build the user-facing error; the rule is quoted verbatim, not repr()'d."""
    where = "" if flag == "rule" else f" for {flag}"
    return PolicyError(f"invalid rule '{text}'{where}: {reason}")


# --------------------------------------------------------------------------
# Addresses
# --------------------------------------------------------------------------


def embedded_ipv4(ip: IPAddress) -> tuple[ipaddress.IPv4Address, ...]:
    """Every IPv4 address that the IPv6 address *ip* may designate.

    The one place that knows the IPv6 forms carrying an IPv4 address; a
    network with the matching translator or tunnel delivers a packet sent to
    such an address to the IPv4 host, so the policy judges it by the IPv4
    rules as well (``Policy``) and the core refuses it where it refuses the
    IPv4 address (`special_kind`).  Empty for an IPv4 address and for every
    IPv6 address outside these prefixes:

    * ``::ffff:0:0/96`` IPv4-mapped: the last 32 bits;
    * ``::/96`` IPv4-compatible (deprecated; automatic tunnels), except
      ``::`` and ``::1``: the last 32 bits;
    * ``64:ff9b::/96`` NAT64 well-known prefix (RFC 6052): the last 32 bits;
    * ``64:ff9b:1::/48`` NAT64 local-use prefix (RFC 8215): the operator
      may use it whole or split into longer prefixes, and the host cannot
      know which, so every RFC 6052 position a prefix inside it could use:
      /96 (bits 96-127), /64 (bits 72-103), /56 (bits 56-63 and 72-95) and
      /48 (bits 48-63 and 72-87), the u-octet (bits 64-71) always skipped;
    * ``2002::/16`` 6to4 (RFC 3056): bits 16-47, the relay's IPv4 endpoint;
    * ``2001::/32`` Teredo (RFC 4380): the client, the bitwise NOT of bits
      96-127, then the server, bits 32-63.

    The first address is the destination (for the local-use prefix, the
    /96 reading, that of the well-known prefix); the others are judged too.
    Each address appears once.
    """
    if not isinstance(ip, ipaddress.IPv6Address):
        return ()
    value = int(ip)
    top96 = value >> 32
    if top96 == _MAPPED_TOP96 or top96 == _NAT64_TOP96 or (top96 == 0 and value > 1):
        return (ipaddress.IPv4Address(value & _V4_MASK),)
    if value >> 80 == _NAT64_LOCAL_TOP48:
        readings = (
            value & _V4_MASK,                                              # /96
            (value >> 24) & _V4_MASK,                                      # /64
            ((value >> 64) & 0xFF) << 24 | (value >> 32) & 0xFF_FFFF,      # /56
            ((value >> 64) & 0xFFFF) << 16 | (value >> 40) & 0xFFFF,       # /48
        )
        return tuple(ipaddress.IPv4Address(v4) for v4 in dict.fromkeys(readings))
    if value >> 112 == _SIX_TO_FOUR_TOP16:
        return (ipaddress.IPv4Address((value >> 80) & _V4_MASK),)
    if value >> 96 == _TEREDO_TOP32:
        client = ~value & _V4_MASK
        server = (value >> 64) & _V4_MASK
        return tuple(ipaddress.IPv4Address(v4) for v4 in dict.fromkeys((client, server)))
    return ()


def special_kind(ip: IPAddress) -> str | None:
    """``"unspecified"``, ``"multicast"`` or ``"broadcast"`` if *ip* is one
    of these, or designates one (the first address `embedded_ipv4` gives:
    ``::ffff:0.0.0.0`` is unspecified, ``64:ff9b::e000:1`` multicast);
    else None.  Not through the NAT64 local-use prefix: which of its
    readings is the destination depends on the operator's prefix length
    (a /48 or /56 address reads 0.0.0.0 at the /96 position), so there
    the rules judge every reading and a name grants none that is special.

    No rule written as an address range can mean these by accident: the
    core refuses them as destinations (TCP: all three; UDP: unspecified)
    and a name rule never grants them (`NameHost`).
    """
    local_use = isinstance(ip, ipaddress.IPv6Address) and int(ip) >> 80 == _NAT64_LOCAL_TOP48
    for candidate in (ip,) if local_use else (ip, *embedded_ipv4(ip)[:1]):
        if candidate.is_unspecified:
            return "unspecified"
        if candidate.is_multicast:
            return "multicast"
        if candidate == _BROADCAST_V4:
            return "broadcast"
    return None


def normalize_ip(ip: IPAddress) -> IPAddress:
    """Return the canonical form of *ip* used for every policy comparison.

    * An IPv4-mapped IPv6 address (``::ffff:a.b.c.d``) becomes its IPv4
      address.  A dual-stack socket reaches the IPv4 host for such an address,
      so it must be judged by IPv4 rules; otherwise ``[::]/0`` could be used to
      reach an IPv4 address that an IPv4 rule denies.  (IPv4-*compatible*
      ``::a.b.c.d`` is deprecated, is not routed to IPv4, and stays IPv6.)
    * An IPv6 scope/zone id (``fe80::1%eth0``) is dropped: rules never carry
      one, and it must not make an address compare unequal to a rule.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped
        if mapped is not None:
            return mapped
        if ip.scope_id is not None:
            return ipaddress.IPv6Address(ip.packed)
        return ip
    if isinstance(ip, ipaddress.IPv4Address):
        return ip
    raise TypeError(f"expected an IPv4Address or IPv6Address, got {type(ip).__name__}")


def _normalize_network(network: IPNetwork) -> IPNetwork:
    """Rewrite an IPv6 network that lies inside ``::ffff:0:0/96`` as IPv4.

    Addresses are normalized by :func:`normalize_ip` before matching, so a rule
    written as ``[::ffff:10.0.0.0/104]`` must become ``10.0.0.0/8`` to keep its
    meaning.  Wider IPv6 networks that merely *contain* the mapped range (such
    as ``[::]/0``) stay IPv6 and therefore never match an IPv4 address.
    """
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED_V6):
        base = network.network_address.ipv4_mapped
        assert base is not None  # guaranteed by subnet_of(_MAPPED_V6)
        return ipaddress.IPv4Network((base, network.prefixlen - 96))
    return network


def _parse_prefix(text: str, maximum: int, family: str) -> int:
    """Parse a CIDR prefix length; only plain decimal is accepted.

    ``ipaddress`` would also accept netmask forms such as ``/255.0.0.0``; those
    are rejected to keep the rule language small and unambiguous.
    """
    if not _DIGITS.fullmatch(text) or len(text) > 3:
        raise _Invalid(f"'{text}' is not a valid prefix length (expected 0-{maximum})")
    value = int(text)
    if value > maximum:
        raise _Invalid(
            f"prefix length /{value} is out of range for {family} (0-{maximum})"
        )
    return value


def _parse_ipv4(text: str) -> ipaddress.IPv4Address:
    """Parse a dotted-quad IPv4 address (no shorthand, no leading zeros)."""
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        raise _Invalid(f"'{text}' is not a valid IPv4 address") from None


def _parse_ipv6(text: str) -> ipaddress.IPv6Address:
    """Parse an IPv6 address; zone ids are refused (rules are host-wide)."""
    if "%" in text:
        raise _Invalid(f"'{text}': IPv6 zone/scope ids are not supported in rules")
    try:
        return ipaddress.IPv6Address(text)
    except ValueError:
        raise _Invalid(f"'{text}' is not a valid IPv6 address") from None


def _parse_cidr(text: str, version: int | None) -> IPNetwork:
    """Parse ``ADDRESS/PREFIX`` for the given family (``None``: either).

    Host bits are allowed and masked off (``strict=False``), as WAMR does for
    ``--addr-pool 1.2.3.4/15``.
    """
    address_text, _, prefix_text = text.partition("/")
    if version is None:
        version = 6 if ":" in address_text else 4
    network: IPNetwork
    if version == 4:
        v4 = _parse_ipv4(address_text)
        prefix = _parse_prefix(prefix_text, 32, "IPv4")
        network = ipaddress.IPv4Network((v4, prefix), strict=False)
    else:
        v6 = _parse_ipv6(address_text)
        prefix = _parse_prefix(prefix_text, 128, "IPv6")
        network = ipaddress.IPv6Network((v6, prefix), strict=False)
    return _normalize_network(network)


# --------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------


def _normalize_name(text: str, label: re.Pattern[str]) -> str:
    """Validate and normalize a domain name (lower-case, one trailing dot off).

    Non-ASCII input is refused *before* lower-casing: ``str.lower()`` maps
    some non-ASCII characters (e.g. KELVIN SIGN) onto ASCII letters, which
    would let a look-alike name match a rule.  IDNs must be given in punycode.
    """
    if not text.isascii():
        raise _Invalid(f"'{text}' is not a valid domain name (non-ASCII; use punycode)")
    name = text.lower()
    name = name.removesuffix(".")
    if not name:
        raise _Invalid("empty domain name")
    if len(name) > _MAX_NAME_LENGTH:
        raise _Invalid(f"domain name is longer than {_MAX_NAME_LENGTH} characters")
    labels = name.split(".")
    for part in labels:
        if not part:
            raise _Invalid(f"'{text}' is not a valid domain name (empty label)")
        if len(part) > 63:
            raise _Invalid(
                f"'{text}' is not a valid domain name (label longer than 63)"
            )
        if not label.fullmatch(part):
            raise _Invalid(f"'{text}' is not a valid domain name (bad label '{part}')")
    if all(_NUMERIC_LABEL.fullmatch(part) for part in labels):
        # e.g. "0x7f000001" or "127.1": inet_aton() would read these as an
        # IPv4 address, so they must not be treated as (unresolved) names.
        raise _Invalid(f"'{text}' looks like a numeric IPv4 address, not a domain name")
    if _DIGITS.fullmatch(labels[-1]):
        raise _Invalid(
            f"'{text}' is not a valid domain name (all-numeric top-level label)"
        )
    return name


def normalize_query_name(name: str) -> str | None:
    """Normalize a name a guest asks to resolve, or ``None`` if it is invalid.

    Queries are compared case-insensitively with one trailing dot stripped.
    Invalid names (NUL bytes, empty labels, ...) return ``None`` so they can
    be denied outright: a resolver might interpret them differently from the
    suffix match (``evil\\0.example.com`` must not match ``*.example.com``).
    """
    try:
        return _normalize_name(name, _QUERY_LABEL)
    except _Invalid:
        return None


# --------------------------------------------------------------------------
# Address rules
# --------------------------------------------------------------------------


# The rule values are NamedTuples and small plain classes, not frozen
# dataclasses: creating a frozen dataclass execs six generated methods
# (~1 ms per class on this project's CI machine; ~20 ms of every `capsock
# run` start across the host's value types); a NamedTuple costs a sixth of
# that and is just as immutable, hashable and comparable.


class PortRange(NamedTuple):
    """An inclusive range of ports; a single port is ``PortRange(p, p)``."""

    low: int
    high: int

    def __contains__(self, port: object) -> bool:
        """Membership test, so callers can write ``port in rule.ports``."""
        return isinstance(port, int) and self.low <= port <= self.high

    @property
    def is_any(self) -> bool:
        """True for the full range ``0-65535`` (the ``*`` port)."""
        return self.low == 0 and self.high == MAX_PORT


class _Singular:
    """A host matcher without fields: every instance equals every other of
    its class (and no instance of another class)."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(type(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class AnyHost(_Singular):
    """The ``*`` host: any IPv4 or IPv6 address."""

    __slots__ = ()

    def matches(self, ip: IPAddress, resolved: _Resolved) -> bool:
        """Every address matches."""
        return True


class NetworkHost(NamedTuple):
    """A literal address (a /32 or /128 network) or a CIDR range."""

    network: IPNetwork

    def matches(self, ip: IPAddress, resolved: _Resolved) -> bool:
        """Match by family and membership (*ip* is already normalized)."""
        return ip.version == self.network.version and ip in self.network


class LocalhostHost(_Singular):
    """The name ``localhost``: 127.0.0.0/8 and ::1, without any resolution.

    Treating it as a fixed set (rather than resolving it) means a hostile
    ``/etc/hosts`` or resolver cannot turn a ``localhost`` rule into access to
    a remote host.
    """

    __slots__ = ()

    def matches(self, ip: IPAddress, resolved: _Resolved) -> bool:
        """Match the loopback networks only."""
        if isinstance(ip, ipaddress.IPv4Address):
            return ip in _LOOPBACK_V4
        return ip == _LOOPBACK_V6


class NameHost(NamedTuple):
    """A domain name: matches only addresses this instance resolved it to.

    The policy module never resolves names itself; the caller passes the
    results of the lookups it performed on the guest's behalf.  A name that
    was never resolved therefore matches nothing (fail closed).  An answer
    that embeds an IPv4 address (DNS64's ``64:ff9b::a.b.c.d``) designates
    that IPv4 address too, so the name matches it as well: the policy
    judges such an address as both (`embedded_ipv4`).

    An answer that is (or embeds) the unspecified, a multicast or the
    broadcast address (`special_kind`) matches nothing: a name grants no
    more than the same address written in a rule would, and no rule names
    "every local address" or a group by accident.  Only an address rule
    written for them (or ``*``) grants those.
    """

    name: str

    def matches(self, ip: IPAddress, resolved: _Resolved) -> bool:
        """Match *ip* against ``resolved[name]`` (keys compared normalized)."""
        if resolved is None or special_kind(ip) is not None:
            return False
        addresses = resolved.get(self.name)
        if addresses is None:
            for key, value in resolved.items():
                if normalize_query_name(key) == self.name:
                    addresses = value
                    break
            else:
                return False
        return _answers_hold(ip, addresses)


def _answers_hold(ip: IPAddress, addresses: frozenset[IPAddress]) -> bool:
    """Whether one of a name's resolved `addresses` is (or embeds) `ip`,
    leaving out the special ones (see `NameHost`)."""
    return any((ip == normalize_ip(address) or ip in embedded_ipv4(address))
               and special_kind(address) is None
               for address in addresses)


class SubdomainHost(NamedTuple):
    """``*.NAME``: the addresses this instance resolved for any strict
    subdomain of NAME, at any depth (not NAME itself: list both).

    The address-rule counterpart of the resolve rule ``*.NAME`` (and of
    Spin's ``*.example.com`` allowed host); like `NameHost` it matches only
    what the instance resolved, and an allow rule with it implies resolving
    those names.
    """

    suffix: str

    def covers(self, name: str) -> bool:
        """Whether the normalized `name` is a strict subdomain of `suffix`."""
        return name.endswith("." + self.suffix)

    def matches(self, ip: IPAddress, resolved: _Resolved) -> bool:
        """Match *ip* against the answers of every resolved subdomain."""
        if resolved is None or special_kind(ip) is not None:
            return False
        for key, addresses in resolved.items():
            name = key if key.islower() and not key.endswith(".") else normalize_query_name(key)
            if name is not None and self.covers(name) and _answers_hold(ip, addresses):
                return True
        return False


class GroupHost(NamedTuple):
    """A network group (``private``, ``loopback``, ``metadata``,
    ``multicast``, ``special``: `groups.py` holds the tables).

    An IPv6 address is a member when it is in the group's networks or when
    an IPv4 address it embeds (`embedded_ipv4`: NAT64, 6to4, Teredo,
    IPv4-compatible) is: ``64:ff9b::a9fe:a9fe`` is in ``metadata``.
    """

    group: str

    def matches(self, ip: IPAddress, resolved: _Resolved) -> bool:
        """Membership of *ip* (already normalized) or of an IPv4 it embeds."""
        return self.member(ip) is not None

    def member(self, ip: IPAddress) -> tuple[IPAddress, IPNetwork] | None:
        """The address (*ip* or one it embeds) and the group network that
        holds it, or None: what `policy explain` shows."""
        for candidate in (ip, *embedded_ipv4(ip)):
            network = group_network(self.group, candidate)
            if network is not None:
                return candidate, network
        return None


HostMatcher: TypeAlias = (AnyHost | NetworkHost | LocalhostHost | NameHost | SubdomainHost
                          | GroupHost)


class AddressRule(NamedTuple):
    """One parsed address rule.

    ``protocols`` is a set because a WAMR ``--addr-pool`` entry covers both
    TCP and UDP; a ``PROTO://HOST:PORT`` rule has exactly one protocol.
    ``text`` is the rule as written (surrounding whitespace removed), used to
    explain decisions.
    """

    text: str
    protocols: frozenset[str]
    host: HostMatcher
    ports: PortRange

    def matches(
        self,
        protocol: str,
        ip: IPAddress,
        port: int,
        resolved: Mapping[str, frozenset[IPAddress]] | None = None,
    ) -> bool:
        """Whether this rule covers a ``(protocol, ip, port)`` endpoint."""
        return (
            protocol in self.protocols
            and port in self.ports
            and self.host.matches(normalize_ip(ip), resolved)
        )


def _parse_port(text: str) -> PortRange:
    """Parse ``N``, ``LO-HI`` or ``*`` (ASCII decimal only, 0..65535)."""
    if text == "*":
        return PortRange(0, MAX_PORT)
    if not text:
        raise _Invalid("missing port (use '*' for any port)")
    low_text, dash, high_text = text.partition("-")
    low = _parse_port_number(low_text, text)
    high = _parse_port_number(high_text, text) if dash else low
    if low > high:
        raise _Invalid(f"port range '{text}' is empty (low end above high end)")
    return PortRange(low, high)


def _parse_port_number(text: str, whole: str) -> int:
    """Parse one port number; ``int()`` alone would accept ``+1``, `` 1``, and
    non-ASCII digits."""
    if not _DIGITS.fullmatch(text) or len(text) > 5 or int(text) > MAX_PORT:
        raise _Invalid(
            f"'{whole}' is not a valid port (expected 0-65535, LO-HI or '*')"
        )
    return int(text)


def _parse_bracketed_host(inner: str) -> HostMatcher:
    """Parse the inside of ``[...]``: an IPv6 address or IPv6 CIDR."""
    if not inner:
        raise _Invalid("empty IPv6 address in brackets")
    if "/" in inner:
        return NetworkHost(_parse_cidr(inner, 6))
    address = normalize_ip(_parse_ipv6(inner))
    return NetworkHost(ipaddress.ip_network(address))


def _parse_plain_host(host: str) -> HostMatcher:
    """Parse an unbracketed host: ``*``, IPv4, IPv4 CIDR or a domain name."""
    if not host:
        raise _Invalid("missing host")
    if host == "*":
        return AnyHost()
    if "/" in host:
        return NetworkHost(_parse_cidr(host, 4))
    if _DIGITS_AND_DOTS.fullmatch(host):
        # Never fall back to "it's a name" for things like 1.2.3 or 256.1.1.1.
        return NetworkHost(ipaddress.IPv4Network(_parse_ipv4(host)))
    if host.startswith("*."):
        suffix = host[2:]
        if "*" in suffix:
            raise _Invalid(f"'*' is only allowed alone or as a leading '*.' label in '{host}'")
        return SubdomainHost(_normalize_name(suffix, _LDH_LABEL))
    if "*" in host:
        raise _Invalid(f"wildcards are not allowed in host '{host}' (only '*' or a "
                       "leading '*.' label)")
    name = _normalize_name(host, _LDH_LABEL)
    if name == "localhost":
        return LocalhostHost()
    if name in GROUP_NAMES:
        # A group name shadows a single-label host of that name: rules
        # for such a host use its address (README, "Network groups").
        return GroupHost(name)
    return NameHost(name)


def _split_address_rule(rest: str) -> tuple[HostMatcher, str]:
    """Split ``HOST:PORT`` (after ``PROTO://``) into a host matcher and port text."""
    if rest.startswith("["):
        close = rest.find("]")
        if close < 0:
            raise _Invalid("missing ']' after IPv6 address")
        inner, after = rest[1:close], rest[close + 1 :]
        if after.startswith("/"):  # also accept "[fd00::]/8:PORT"
            prefix, colon, port_text = after[1:].partition(":")
            if "/" in inner:
                raise _Invalid("prefix length given twice")
            host = _parse_bracketed_host(f"{inner}/{prefix}")
        elif after.startswith(":"):
            host, colon, port_text = _parse_bracketed_host(inner), ":", after[1:]
        else:
            colon, port_text = "", ""
            if after:
                raise _Invalid(f"unexpected '{after}' after ']' (expected ':PORT')")
        if not colon:
            raise _Invalid(
                "missing port (expected PROTO://HOST:PORT, '*' for any port)"
            )
        return host, port_text
    host_text, colon, port_text = rest.rpartition(":")
    if not colon:
        raise _Invalid("missing port (expected PROTO://HOST:PORT, '*' for any port)")
    if ":" in host_text:
        raise _Invalid(
            f"IPv6 address '{host_text}' must be enclosed in brackets, e.g. tcp://[::1]:80"
        )
    return _parse_plain_host(host_text), port_text


def parse_address_rule(text: str, flag: str = "rule") -> AddressRule:
    """Parse ``PROTO://HOST:PORT`` into an :class:`AddressRule`.

    * PROTO: ``tcp`` or ``udp`` (case-insensitive).
    * HOST: IPv4 literal, ``[IPv6]`` literal, CIDR (``10.0.0.0/8``,
      ``[fd00::/8]`` or ``[fd00::]/8``), ``*``, ``localhost``, a network
      group (``private``, ``loopback``, ``metadata``, ``multicast``,
      ``special``: `groups.py`), a domain name, or ``*.NAME`` (the
      addresses resolved for NAME's subdomains).
    * PORT: ``0``..``65535``, ``LO-HI`` or ``*``; it is mandatory so that a
      rule can never be accidentally wider than intended.

    *flag* (e.g. ``"--allow-outbound"``) only appears in error messages.
    """
    try:
        rule = text.strip()
        if not rule:
            raise _Invalid("empty rule (expected PROTO://HOST:PORT)")
        scheme, sep, rest = rule.partition("://")
        if not sep:
            raise _Invalid("expected PROTO://HOST:PORT, e.g. tcp://127.0.0.1:8080")
        protocol = scheme.lower()
        if protocol not in PROTOCOLS:
            raise _Invalid(f"unsupported protocol '{scheme}' (expected 'tcp' or 'udp')")
        host, port_text = _split_address_rule(rest)
        ports = _parse_port(port_text)
    except _Invalid as exc:
        raise _error(text, flag, str(exc)) from None
    return AddressRule(rule, frozenset({protocol}), host, ports)


def parse_addr_pool(text: str) -> list[AddressRule]:
    """Parse a WAMR ``--addr-pool`` value: comma-separated ``ADDRESS/MASK``.

    Each entry becomes a rule for TCP and UDP on every port; the caller
    (:class:`~capsock.policy.Policy`) applies it to both directions, matching
    WAMR's semantics.  IPv6 entries may be bare (``::1/128``) or bracketed
    (``[::1]/128``, ``[::1/128]``).  An entry without a mask is refused, as
    WAMR does, rather than guessed to mean a single host.
    """
    flag = "--addr-pool"
    if not text.strip():
        raise _error(
            text, flag, "empty address pool (expected ADDRESS/MASK[,ADDRESS/MASK...])"
        )
    rules: list[AddressRule] = []
    for raw in text.split(","):
        entry = raw.strip()
        try:
            if not entry:
                raise _Invalid(f"empty entry in address pool '{text}'")
            if "/" not in entry:
                raise _Invalid(
                    f"address pool entry '{entry}' must be in the form of ADDRESS/MASK"
                )
            version: int | None = None
            cidr = entry
            if entry.startswith("["):  # "[v6]/N" or "[v6/N]"
                version = 6
                close = entry.find("]")
                if close < 0:
                    raise _Invalid("missing ']' after IPv6 address")
                inner, after = entry[1:close], entry[close + 1 :]
                if ("/" in inner) == bool(after) or (
                    after and not after.startswith("/")
                ):
                    raise _Invalid(f"'{entry}' must be in the form of ADDRESS/MASK")
                cidr = inner + after
            network = _parse_cidr(cidr, version)
        except _Invalid as exc:
            raise _error(raw if raw else text, flag, str(exc)) from None
        rules.append(
            AddressRule(entry, PROTOCOLS, NetworkHost(network), PortRange(0, MAX_PORT))
        )
    return rules


# --------------------------------------------------------------------------
# Resolve rules
# --------------------------------------------------------------------------


class ResolveRule(NamedTuple):
    """One parsed name-resolution rule.

    ``name`` is ``None`` for ``*`` (any name).  With ``subdomains`` set the rule
    is ``*.name`` and matches strict subdomains of ``name`` at any depth, but
    not ``name`` itself (list both if both are wanted).
    """

    text: str
    name: str | None
    subdomains: bool = False

    def matches(self, name: str) -> bool:
        """Match an already-normalized name (see :func:`normalize_query_name`)."""
        if self.name is None:
            return True
        if self.subdomains:
            return name.endswith("." + self.name)
        return name == self.name


def parse_resolve_rule(text: str, flag: str = "rule") -> ResolveRule:
    """Parse ``example.com``, ``*.example.com`` or ``*``.

    Only a single leading ``*.`` label is a wildcard; ``a*.com`` or
    ``a.*.com`` are refused rather than interpreted as globs.
    """
    try:
        rule = text.strip()
        if not rule:
            raise _Invalid("empty rule (expected NAME, *.NAME or *)")
        if rule == "*":
            return ResolveRule(rule, None)
        subdomains = rule.startswith("*.")
        body = rule[2:] if subdomains else rule
        if "*" in body:
            raise _Invalid("'*' is only allowed alone or as a leading '*.' label")
        name = _normalize_name(body, _LDH_LABEL)
    except _Invalid as exc:
        raise _error(text, flag, str(exc)) from None
    return ResolveRule(rule, name, subdomains)
