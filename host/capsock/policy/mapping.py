"""Virtual addresses: the `->` rules (seed 002's "CIDR mount-points").

A mapping rule says what the guest sees on the left of `->` and what the
host really uses on the right; the host translates between them like a
NAT, so the guest only ever learns guest-side addresses. Pure: no I/O,
like the rest of the policy (a real *name* on the right is resolved by
the core, at connect time, never here).

Syntax (each is one value of the flag; the part without `->` is the same
on both sides):

* ``--allow-resolve=NAME->ADDRESS``: the guest resolving NAME gets
  ADDRESS (the one given: a DNS alias, no translation).
* ``--allow-resolve=NAME->REALNAME[:PORT]``: the guest resolving NAME gets
  a virtual address the host allocates from the virtual range (default
  :data:`DEFAULT_VIRTUAL_RANGE`); a connection or datagram to it (on PORT
  only, if given) goes to what the host resolves REALNAME to at that
  moment, same port. Grants resolving NAME only: a connection to it still
  needs an outbound rule (``tcp://NAME:5432`` matches the virtual address,
  since that is what NAME resolved to).
* ``--allow-outbound=PROTO://GUEST->REAL:GPORT->RPORT`` (either arrow may
  be left out): GUEST is an address, a CIDR range or a name (the guest
  resolves it to an allocated virtual address, or to the address an
  ``--allow-resolve=NAME->ADDRESS`` gave it); REAL is an address, a range
  of the same prefix length (offset-preserving: ``10.225.0.32/29->
  192.168.225.8/29`` maps .33 to .9) or a real name (GUEST then one
  address or a name). Ports: one port, a range of the same size, or ``*``
  (the same port). ``PROTO://*:80->8080`` maps a port on every address.
* ``--allow-inbound=PROTO://GUEST->REAL:GPORT->RPORT``: the guest binds
  GUEST:GPORT, the host binds REAL:RPORT; GUEST is an address, a range or
  ``*`` (``tcp://*:80->8888``: the guest binds port 80 on any address, the
  host listens on 8888 on that address).

Each rule is a bijection between its guest side and its real side. Within
the remote table (outbound and resolve mappings) and within the local
table (inbound), no two rules of a common protocol may overlap on their
guest sides or on their real sides (addresses *and* ports): an overlap is
a start-up :class:`PolicyError` naming both rules. A real *name*'s
addresses are known only when the core resolves it, so they cannot be
checked against the other rules at start-up: when they coincide with
another rule's real address, that rule decides how a peer there is shown.
Anything outside every rule passes through unchanged (a guest that reaches
a real address another rule's real side covers, by an ordinary allow rule,
sees replies from it under that rule's guest side).

A mapping is also an allow rule for exactly its guest side (outbound:
connect/send to it and receive from it; inbound: bind; a name on the guest
side: resolving it). Deny rules judge both sides (see
:mod:`capsock.core.translate`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from .rules import (
    AddressRule,
    AnyHost,
    HostMatcher,
    IPAddress,
    IPNetwork,
    NameHost,
    NetworkHost,
    PolicyError,
    PortRange,
    ResolveRule,
    normalize_ip,
    parse_address_rule,
    parse_resolve_rule,
)

__all__ = ["DEFAULT_VIRTUAL_RANGE", "Mapping", "MappingTable", "Side", "is_mapping",
           "parse_mapping"]

#: Where names mapped to a real name get their guest-side address, unless
#: `--virtual-range` says otherwise: seed 002's example mounts a range at
#: 10.225.0.32/29, inside it. Private (RFC 1918) space: never reached,
#: the host translates every address it hands out.
DEFAULT_VIRTUAL_RANGE = "10.225.0.0/16"

ARROW = "->"
_FLAGS = {"--allow-outbound": "outbound", "--allow-inbound": "inbound",
          "--allow-resolve": "resolve"}


def is_mapping(text: str) -> bool:
    """Whether a rule value is a mapping (has an arrow)."""
    return ARROW in text


class Side(NamedTuple):
    """One side of a mapping: addresses (None: any, ``*``) or a real name,
    and ports."""

    network: IPNetwork | None
    name: str | None
    ports: PortRange

    def covers(self, ip: IPAddress, port: int) -> bool:
        """Whether (ip, port) is on this side (*ip* normalized); a name side
        covers no address (it has none until resolved)."""
        if self.name is not None or port not in self.ports:
            return False
        return self.network is None or (ip.version == self.network.version
                                        and ip in self.network)

    def overlaps(self, other: Side) -> bool:
        """Whether some (address, port) could be on both sides."""
        if self.ports.high < other.ports.low or other.ports.high < self.ports.low:
            return False
        if self.name is not None or other.name is not None:
            return self.name == other.name
        if self.network is None or other.network is None:
            return True
        return (self.network.version == other.network.version
                and self.network.overlaps(other.network))

    def text(self) -> str:
        host = (self.name if self.name is not None else "*" if self.network is None
                else _network_text(self.network))
        ports = "*" if self.ports.is_any else (
            str(self.ports.low) if self.ports.low == self.ports.high
            else f"{self.ports.low}-{self.ports.high}")
        return f"{host}:{ports}"


class Mapping(NamedTuple):
    """One mapping rule, its guest side resolved to addresses.

    `kind` is ``outbound``, ``inbound`` or ``resolve``; `text` is
    ``"<flag> <rule>"`` as decisions name rules (``allow-outbound
    tcp://db.internal->127.0.0.2:5432``). `guest_name` is the name the
    guest resolves to get `guest` (None if it names an address).
    """

    text: str
    kind: str
    protocols: frozenset[str]
    guest_name: str | None
    guest: Side
    real: Side

    def to_real(self, ip: IPAddress, port: int) -> tuple[IPAddress | None, int]:
        """The real (address, port) of a guest-side one it covers; the
        address is None when the real side is a name (the core resolves it)."""
        real_port = self.real.ports.low + (port - self.guest.ports.low)
        if self.real.name is not None:
            return None, real_port
        return _shift(ip, self.guest.network, self.real.network), real_port

    def to_guest(self, ip: IPAddress, port: int) -> tuple[IPAddress, int]:
        """The guest-side (address, port) of a real one: the inverse of
        `to_real`. For a real name, *ip* is one of its addresses and the
        guest side is a single address."""
        guest_port = self.guest.ports.low + (port - self.real.ports.low)
        if self.real.name is not None:
            assert self.guest.network is not None
            return self.guest.network.network_address, guest_port
        return _shift(ip, self.real.network, self.guest.network), guest_port


def _shift(ip: IPAddress, source: IPNetwork | None, target: IPNetwork | None) -> IPAddress:
    """*ip*, at the same offset from `target`'s start as from `source`'s
    (None, the ``*`` side, is the identity)."""
    if source is None or target is None:
        return ip
    offset = int(ip) - int(source.network_address)
    # By the target's class: ip_address(7) would be IPv4 whatever the family.
    return type(target.network_address)(int(target.network_address) + offset)


def _network_text(network: IPNetwork) -> str:
    if network.prefixlen == network.max_prefixlen:
        address = str(network.network_address)
        return f"[{address}]" if network.version == 6 else address
    return f"[{network}]" if network.version == 6 else str(network)


# --------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------


class _BadMapping(Exception):
    pass


def _reason(error: PolicyError) -> str:
    """The reason part of a rules.py error (after the quoted rule)."""
    text = str(error)
    marker = "': "
    return text.split(marker, 1)[1] if marker in text else text


def _has_port(piece: str) -> bool:
    """Whether `HOST:PORT` text has its port (a colon outside brackets)."""
    if piece.startswith("["):
        close = piece.find("]")
        return close >= 0 and ":" in piece[close:]
    return ":" in piece


def _host_and_ports(protocol: str, host: str, ports: str) -> tuple[HostMatcher, PortRange]:
    try:
        rule = parse_address_rule(f"{protocol}://{host}:{ports}")
    except PolicyError as error:
        raise _BadMapping(_reason(error)) from None
    return rule.host, rule.ports


def _split_host_port(piece: str) -> tuple[str, str]:
    if piece.startswith("["):
        close = piece.find("]")
        rest = piece[close + 1:]
        if rest.startswith("/"):  # [fd00::]/64:PORT
            prefix, _, port = rest[1:].partition(":")
            return f"{piece[:close + 1]}/{prefix}", port
        return piece[:close + 1], rest[1:]
    host, _, port = piece.rpartition(":")
    return host, port


class _Parsed(NamedTuple):
    kind: str
    protocols: frozenset[str]
    guest_host: HostMatcher
    guest_ports: PortRange
    real_host: HostMatcher
    real_ports: PortRange


def _parse_address_mapping(kind: str, rule: str) -> _Parsed:
    scheme, sep, rest = rule.partition("://")
    if not sep:
        raise _BadMapping("expected PROTO://GUEST->REAL:PORT[->PORT]")
    protocol = scheme.lower()
    if protocol not in ("tcp", "udp"):
        raise _BadMapping(f"unsupported protocol '{scheme}' (expected 'tcp' or 'udp')")
    pieces = rest.split(ARROW)
    if len(pieces) == 2 and _has_port(pieces[1]):   # GUEST->REAL:PORT
        guest_host, (real_host, guest_port) = pieces[0], _split_host_port(pieces[1])
        real_port = guest_port
    elif len(pieces) == 2:                            # HOST:GPORT->RPORT
        guest_host, guest_port = _split_host_port(pieces[0])
        real_host, real_port = guest_host, pieces[1]
    elif len(pieces) == 3:                            # GUEST->REAL:GPORT->RPORT
        guest_host = pieces[0]
        real_host, guest_port = _split_host_port(pieces[1])
        real_port = pieces[2]
        if not _has_port(pieces[1]):
            raise _BadMapping("expected PROTO://GUEST->REAL:GPORT->RPORT")
    else:
        raise _BadMapping("at most one '->' for the host and one for the port")
    if not guest_host or not real_host:
        raise _BadMapping("missing host on one side of '->'")
    guest, gports = _host_and_ports(protocol, guest_host, guest_port)
    real, rports = _host_and_ports(protocol, real_host, real_port)
    return _Parsed(kind, frozenset({protocol}), guest, gports, real, rports)


def _parse_resolve_mapping(rule: str) -> _Parsed:
    name_text, _, target = rule.partition(ARROW)
    if ARROW in target:
        raise _BadMapping("one '->' only: NAME->ADDRESS or NAME->REALNAME[:PORT]")
    try:
        name_rule = parse_resolve_rule(name_text)
    except PolicyError as error:
        raise _BadMapping(_reason(error)) from None
    if name_rule.name is None or name_rule.subdomains:
        raise _BadMapping("the guest-side name must be one name (no '*')")
    if not target:
        raise _BadMapping("missing target after '->'")
    host_text, port_text = _split_host_port(target) if _has_port(target) else (target, "*")
    real, ports = _host_and_ports("tcp", host_text, port_text)
    if isinstance(real, NetworkHost) and not ports.is_any:
        raise _BadMapping("a port only narrows a mapping to a real name (an address target "
                       "is what the guest sees: no translation)")
    return _Parsed("resolve", frozenset({"tcp", "udp"}), NameHost(name_rule.name), ports,
                   real, ports)


def _check(parsed: _Parsed) -> None:
    """The shapes a bijection can have (see the module docstring)."""
    guest, real = parsed.guest_host, parsed.real_host
    if not isinstance(guest, (NetworkHost, NameHost, AnyHost)):
        raise _BadMapping("the guest side must be an address, a range, a name or '*' "
                       "(for localhost write 127.0.0.1)")
    if not isinstance(real, (NetworkHost, NameHost, AnyHost)):
        raise _BadMapping("the real side must be an address, a range or a name "
                       "(for localhost write 127.0.0.1)")
    if parsed.kind == "inbound" and (isinstance(guest, NameHost) or isinstance(real, NameHost)):
        raise _BadMapping("an inbound mapping binds addresses: no names")
    if isinstance(guest, AnyHost) != isinstance(real, AnyHost):
        raise _BadMapping("'*' maps only to itself (PROTO://*:GPORT->RPORT)")
    if isinstance(guest, NetworkHost) and isinstance(real, NetworkHost):
        if guest.network.version != real.network.version:
            raise _BadMapping("both sides must be of one family (IPv4 or IPv6)")
        if guest.network.prefixlen != real.network.prefixlen:
            raise _BadMapping(f"ranges of different sizes (/{guest.network.prefixlen} -> "
                           f"/{real.network.prefixlen}): a range maps to one of the same "
                           "prefix length")
    if isinstance(real, NameHost) and isinstance(guest, NetworkHost) \
            and guest.network.prefixlen != guest.network.max_prefixlen:
        raise _BadMapping("a range cannot map to a name (one address or a name can)")
    gports, rports = parsed.guest_ports, parsed.real_ports
    if gports.is_any != rports.is_any or (gports.high - gports.low != rports.high - rports.low):
        raise _BadMapping("port ranges of different sizes (a port maps to a port, a range to "
                       "a range of the same size, '*' to '*')")
    if not gports.is_any and (gports.low == 0 or rports.low == 0):
        raise _BadMapping("port 0 cannot be mapped")


def parse_mapping(text: str, flag: str) -> _Parsed:
    """Parse one mapping value of `flag` (``--allow-outbound``,
    ``--allow-inbound`` or ``--allow-resolve``); a PolicyError quotes it."""
    rule = text.strip()
    try:
        kind = _FLAGS.get(flag)
        if kind is None:
            raise _BadMapping(f"{flag} takes no '->' (only --allow-outbound, --allow-inbound "
                           "and --allow-resolve map)")
        parsed = (_parse_resolve_mapping(rule) if kind == "resolve"
                  else _parse_address_mapping(kind, rule))
        _check(parsed)
    except _BadMapping as error:
        raise PolicyError(f"invalid rule '{text}' for {flag}: {error}") from None
    return parsed


# --------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------


class MappingTable:
    """Every mapping of a host, with its virtual addresses allocated.

    Built once at start-up by :meth:`build` (which refuses overlaps);
    immutable after. `remote` holds outbound and resolve mappings (they
    translate peers: connect and send targets, accept peers, UDP
    senders), `local` the inbound ones (bind addresses, local-address).
    `names` is what each mapped name resolves to for the guest.
    """

    __slots__ = ("local", "name_rules", "names", "remote", "virtual_range")

    def __init__(self, remote: tuple[Mapping, ...] = (), local: tuple[Mapping, ...] = (),
                 names: dict[str, tuple[IPAddress, ...]] | None = None,
                 name_rules: dict[str, str] | None = None,
                 virtual_range: IPNetwork | None = None) -> None:
        self.remote = remote
        self.local = local
        self.names: dict[str, tuple[IPAddress, ...]] = dict(names or {})
        #: The rule that gave each name its address (for audit lines).
        self.name_rules: dict[str, str] = dict(name_rules or {})
        self.virtual_range = virtual_range or ipaddress.ip_network(DEFAULT_VIRTUAL_RANGE)

    def __bool__(self) -> bool:
        return bool(self.remote or self.local or self.names)

    def __repr__(self) -> str:
        return f"MappingTable({self.describe()!r})"

    @classmethod
    def build(cls, *, outbound: Iterable[str] = (), inbound: Iterable[str] = (),
              resolve: Iterable[str] = (),
              virtual_range: str = DEFAULT_VIRTUAL_RANGE) -> MappingTable:
        """Parse the mapping values of each flag, allocate virtual
        addresses in rule order (resolve mappings first, then outbound),
        and refuse overlaps. Raises PolicyError naming the rule(s)."""
        try:
            vrange = ipaddress.ip_network(virtual_range, strict=True)
        except ValueError as error:
            raise PolicyError(f"invalid --virtual-range '{virtual_range}': {error}") from None
        if vrange.num_addresses < 4:
            raise PolicyError(f"invalid --virtual-range '{virtual_range}': too small "
                              "(at least a /30 or /126)")
        parsed: list[tuple[str, _Parsed]] = []
        for flag, values in (("--allow-resolve", resolve), ("--allow-outbound", outbound),
                             ("--allow-inbound", inbound)):
            if isinstance(values, str):
                raise TypeError(f"{flag} expects an iterable of rule strings, not a str")
            for text in values:
                parsed.append((f"{flag[2:]} {text.strip()}", parse_mapping(text, flag)))
        used = [p.guest_host.network for _, p in parsed if isinstance(p.guest_host, NetworkHost)]
        used += [p.real_host.network for _, p in parsed if isinstance(p.real_host, NetworkHost)]
        free = _free_addresses(vrange, used)
        names: dict[str, tuple[IPAddress, ...]] = {}
        name_rules: dict[str, str] = {}
        remote: list[Mapping] = []
        local: list[Mapping] = []
        for text, p in parsed:
            guest_name: str | None = None
            if isinstance(p.guest_host, NameHost):
                guest_name = p.guest_host.name
                if guest_name not in names:
                    if p.kind == "resolve" and isinstance(p.real_host, NetworkHost):
                        names[guest_name] = (p.real_host.network.network_address,)
                        name_rules[guest_name] = text
                        continue  # an alias: the guest sees the address given
                    try:
                        names[guest_name] = (next(free),)
                    except StopIteration:
                        raise PolicyError(f"invalid rule '{text.split(' ', 1)[1]}': the "
                                          f"virtual range {vrange} is full") from None
                    name_rules[guest_name] = text
                elif p.kind == "resolve":
                    raise PolicyError(f"rules '{name_rules[guest_name]}' and '{text}' both "
                                      f"give the name {guest_name} an address")
                guest_net: IPNetwork | None = ipaddress.ip_network(names[guest_name][0])
            else:
                guest_net = (p.guest_host.network if isinstance(p.guest_host, NetworkHost)
                             else None)
            real = Side(p.real_host.network if isinstance(p.real_host, NetworkHost) else None,
                        p.real_host.name if isinstance(p.real_host, NameHost) else None,
                        p.real_ports)
            mapping = Mapping(text, p.kind, p.protocols, guest_name,
                              Side(guest_net, None, p.guest_ports), real)
            (local if p.kind == "inbound" else remote).append(mapping)
        for table in (remote, local):
            _refuse_overlaps(table)
        return cls(tuple(remote), tuple(local), names, name_rules, vrange)

    # -- lookups (all addresses normalized first) ---------------------------

    def remote_to_real(self, protocol: str, ip: IPAddress,
                       port: int) -> tuple[Mapping, IPAddress | None, int] | None:
        """Where a guest's connect/send to (ip, port) really goes: the
        mapping, the real address (None: resolve ``mapping.real.name``) and
        port; None when no mapping covers it (it goes where it says)."""
        return _forward(self.remote, protocol, normalize_ip(ip), port)

    def remote_to_guest(self, protocol: str, ip: IPAddress,
                        port: int) -> tuple[Mapping, IPAddress, int] | None:
        """How the guest sees a real peer (ip, port) (accept, a UDP
        sender); None when no mapping's real side covers it."""
        return _backward(self.remote, protocol, normalize_ip(ip), port)

    def named_to_guest(self, protocol: str, name: str,
                       port: int) -> tuple[Mapping, IPAddress, int] | None:
        """How the guest sees a peer the host reached by resolving the
        real name `name`, at real `port`."""
        for mapping in self.remote:
            if (protocol in mapping.protocols and mapping.real.name == name
                    and port in mapping.real.ports):
                guest_ip, guest_port = mapping.to_guest(ipaddress.IPv4Address(0), port)
                return mapping, guest_ip, guest_port
        return None

    def local_to_real(self, protocol: str, ip: IPAddress,
                      port: int) -> tuple[Mapping, IPAddress, int] | None:
        """What the host binds for a guest's bind to (ip, port)."""
        found = _forward(self.local, protocol, normalize_ip(ip), port)
        if found is None:
            return None
        mapping, real_ip, real_port = found
        assert real_ip is not None  # inbound mappings have no names
        return mapping, real_ip, real_port

    def local_to_guest(self, protocol: str, ip: IPAddress,
                       port: int) -> tuple[Mapping, IPAddress, int] | None:
        """How the guest sees a real local address (local-address)."""
        return _backward(self.local, protocol, normalize_ip(ip), port)

    def resolve(self, name: str) -> tuple[IPAddress, ...] | None:
        """The guest-side addresses of a mapped name (normalized), or None."""
        return self.names.get(name)

    def real_of(self, name: str) -> str:
        """What a mapped name leads to on the real side, for audit lines:
        the alias address, or each mapping's real side."""
        addresses = self.names.get(name, ())
        reals = [m.real.text() for m in self.remote if m.guest_name == name]
        if not reals and addresses:
            return ", ".join(str(a) for a in addresses)
        return ", ".join(reals)

    # -- what the mappings allow -------------------------------------------

    def allow_rules(self) -> tuple[list[AddressRule], list[AddressRule], list[ResolveRule]]:
        """The allow rules the mappings imply, for the host's policy:
        (outbound, inbound, resolve), each naming its mapping rule."""
        outbound: list[AddressRule] = []
        inbound: list[AddressRule] = []
        for mapping in (*self.remote, *self.local):
            if mapping.kind == "resolve":
                continue
            net = mapping.guest.network
            host: HostMatcher = AnyHost() if net is None else NetworkHost(net)
            rule = AddressRule(mapping.text.split(" ", 1)[1], mapping.protocols, host,
                               mapping.guest.ports)
            (inbound if mapping.kind == "inbound" else outbound).append(rule)
        resolve = [ResolveRule(_resolve_text(name, text), name)
                   for name, text in self.name_rules.items()]
        return outbound, inbound, resolve

    def describe(self) -> list[str]:
        """One line per mapping, with the addresses it was given."""
        lines = []
        for name, addresses in self.names.items():
            lines.append(f"{self.name_rules[name]}  [{name} = "
                         f"{', '.join(str(a) for a in addresses)}]")
        for mapping in (*self.remote, *self.local):
            if mapping.guest_name is None or mapping.kind != "resolve":
                lines.append(f"{mapping.text}  [{'/'.join(sorted(mapping.protocols))} "
                             f"{mapping.guest.text()} <-> {mapping.real.text()}]")
        return lines


def _resolve_text(name: str, text: str) -> str:
    """How a decision names the rule that lets the guest resolve `name`:
    the resolve mapping itself, or the address mapping that named it."""
    flag, rule = text.split(" ", 1)
    return rule if flag == "allow-resolve" else f"{name} (by {text})"


def _forward(table: tuple[Mapping, ...], protocol: str, ip: IPAddress,
             port: int) -> tuple[Mapping, IPAddress | None, int] | None:
    for mapping in table:
        if protocol in mapping.protocols and mapping.guest.covers(ip, port):
            real_ip, real_port = mapping.to_real(ip, port)
            return mapping, real_ip, real_port
    return None


def _backward(table: tuple[Mapping, ...], protocol: str, ip: IPAddress,
              port: int) -> tuple[Mapping, IPAddress, int] | None:
    for mapping in table:
        if protocol in mapping.protocols and mapping.real.covers(ip, port):
            guest_ip, guest_port = mapping.to_guest(ip, port)
            return mapping, guest_ip, guest_port
    return None


def _refuse_overlaps(table: list[Mapping]) -> None:
    for index, first in enumerate(table):
        for second in table[index + 1:]:
            if not first.protocols & second.protocols:
                continue
            for side, a, b in (("guest", first.guest, second.guest),
                               ("real", first.real, second.real)):
                if a.overlaps(b):
                    raise PolicyError(
                        f"mappings overlap on their {side} sides ({a.text()} and {b.text()}): "
                        f"'{first.text}' and '{second.text}' (each address and port may be "
                        "mapped by one rule only)")


def _free_addresses(vrange: IPNetwork, used: list[IPNetwork]) -> Iterator[IPAddress]:
    """The addresses of `vrange` to allocate, lowest first: not its first
    (network) or, for IPv4, last (broadcast) address, nor any address a
    mapping names."""
    last = int(vrange.broadcast_address) - (1 if vrange.version == 4 else 0)
    value = int(vrange.network_address) + 1
    while value <= min(last, int(vrange.network_address) + 2**24):
        ip = type(vrange.network_address)(value)
        value += 1
        if not any(ip.version == net.version and ip in net for net in used):
            yield ip

