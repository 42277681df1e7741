"""The capsock network policy: pure matching, decisions and attenuation.

A :class:`Policy` answers two questions for the host, without doing any I/O:

* may the guest connect to / bind to / receive from ``(protocol, ip, port)``
  in a given :class:`Direction`?  (:meth:`Policy.check_address`)
* may the guest resolve a domain name?  (:meth:`Policy.check_resolve`)

It is the host's default checker (``checker.py``): :meth:`Policy.check`
maps each typed use of the core to one of those two questions.

Semantics, chosen to fail closed:

* **Deny by default.**  Nothing is allowed unless an allow rule matches.
* **Deny wins.**  A matching deny rule beats any allow rule, whatever the
  order the flags were given in.
* **IPv4-mapped IPv6 is IPv4.**  ``::ffff:a.b.c.d`` is normalized to
  ``a.b.c.d`` *before* matching and is then judged only by IPv4 rules (and
  ``*``).  So ``allow-outbound tcp://[::]/0:*`` cannot be used to reach an
  IPv4 host, and a denied IPv4 host cannot be reached through its mapped
  form.  IPv6 rules that lie inside ``::ffff:0:0/96`` are rewritten to IPv4 at
  parse time so they keep their meaning.
* **An IPv6 address that embeds an IPv4 address is judged as both.**  The
  IPv4-compatible, NAT64 (well-known and local-use), 6to4 and Teredo forms
  (:func:`~capsock.policy.rules.embedded_ipv4`) reach the IPv4 host on a
  network with the matching translator or tunnel.  Such an address is
  denied if a deny rule matches it *or* any IPv4 address it embeds, and
  allowed only if an allow rule matches it *and* each IPv4 address it
  embeds: ``tcp://[::]/0:*`` alone reaches no IPv4 host through NAT64, and
  ``deny-outbound tcp://10.0.0.0/8:*`` covers ``[64:ff9b::a01:203]``.
* **Names match resolved addresses only.**  A rule such as
  ``tcp://example.com:443`` matches exactly the addresses the caller obtained
  by resolving ``example.com`` for this instance (the ``resolved`` mapping);
  an unresolved name matches nothing.  Such an allow rule also implies
  permission to resolve that exact name.  ``localhost`` is fixed to
  127.0.0.0/8 and ::1.
* **Attenuation only narrows.**  :meth:`Policy.restrict` stacks another rule
  set as a further layer; something is allowed only if every layer allows it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from .checker import DEFAULT_DENY as _DEFAULT_DENY
from .checker import Checker, Decision, Endpoint, Resolved, Use, combine, decision_of
from .rules import (
    MAX_PORT,
    PROTOCOLS,
    AddressRule,
    AnyHost,
    IPAddress,
    LocalhostHost,
    NameHost,
    ResolveRule,
    SubdomainHost,
    embedded_ipv4,
    normalize_ip,
    normalize_query_name,
    parse_addr_pool,
    parse_address_rule,
    parse_resolve_rule,
)

__all__ = ["Decision", "Direction", "Narrowed", "Policy", "narrow", "restrict_depth"]


class Direction(enum.Enum):
    """Who initiates: the guest (outbound) or a remote peer (inbound)."""

    OUTBOUND = "outbound"
    INBOUND = "inbound"


# NamedTuples rather than frozen dataclasses: cheaper to create at import
# (see the note in rules.py).


class _Entry(NamedTuple):
    """An address rule together with the flag it came from (for reporting)."""

    label: str
    rule: AddressRule

    @property
    def text(self) -> str:
        """The stable ``"<flag> <rule>"`` form used in decisions."""
        return f"{self.label} {self.rule.text}"


class _ResolveEntry(NamedTuple):
    """A resolve rule together with the flag it came from (for reporting)."""

    label: str
    rule: ResolveRule

    @property
    def text(self) -> str:
        """The stable ``"<flag> <rule>"`` form used in decisions."""
        return f"{self.label} {self.rule.text}"


class _RuleSet(NamedTuple):
    """One flat layer of rules, as given by one set of command-line flags.

    ``addr_pool`` entries are kept apart (instead of being copied into both
    allow lists) so :meth:`describe` shows each of them once.
    """

    allow_outbound: tuple[_Entry, ...] = ()
    allow_inbound: tuple[_Entry, ...] = ()
    deny_outbound: tuple[_Entry, ...] = ()
    deny_inbound: tuple[_Entry, ...] = ()
    addr_pool: tuple[_Entry, ...] = ()
    allow_resolve: tuple[_ResolveEntry, ...] = ()
    deny_resolve: tuple[_ResolveEntry, ...] = ()

    def allows(self, direction: Direction) -> tuple[_Entry, ...]:
        """Allow rules that apply to *direction* (addr-pool applies to both)."""
        own = (
            self.allow_outbound
            if direction is Direction.OUTBOUND
            else self.allow_inbound
        )
        return own + self.addr_pool

    def denies(self, direction: Direction) -> tuple[_Entry, ...]:
        """Deny rules that apply to *direction*."""
        return (
            self.deny_outbound if direction is Direction.OUTBOUND else self.deny_inbound
        )

    def check_address(
        self,
        direction: Direction,
        protocol: str,
        forms: tuple[IPAddress, ...],
        port: int,
        resolved: Mapping[str, frozenset[IPAddress]] | None,
    ) -> Decision:
        """Deny rules first (deny wins), then allow rules, else default deny.

        `forms` are the address and the IPv4 addresses it embeds
        (:func:`_forms`): a deny rule matching any of them denies; each
        needs an allow rule (the last one found is reported).
        """
        denied = self.check_denied(direction, protocol, forms, port, resolved)
        if not denied.allowed:
            return denied
        decision = _DEFAULT_DENY
        for ip in forms:
            for entry in self.allows(direction):
                if entry.rule.matches(protocol, ip, port, resolved):
                    decision = Decision(True, entry.text)
                    break
            else:
                return _DEFAULT_DENY
        return decision

    def check_denied(
        self,
        direction: Direction,
        protocol: str,
        forms: tuple[IPAddress, ...],
        port: int,
        resolved: Mapping[str, frozenset[IPAddress]] | None,
    ) -> Decision:
        """Only the deny rules: denied if one matches any of `forms`, else
        allowed (no rule)."""
        for ip in forms:
            for entry in self.denies(direction):
                if entry.rule.matches(protocol, ip, port, resolved):
                    return Decision(False, entry.text)
        return Decision(True, None)

    def grants_resolve(self) -> bool:
        """Whether some name could be allowed: an allow-resolve rule, or an
        allow rule naming a host, and no ``deny-resolve=*``."""
        if any(entry.rule.name is None for entry in self.deny_resolve):
            return False
        if self.allow_resolve:
            return True
        return any(
            isinstance(entry.rule.host, NameHost | LocalhostHost | SubdomainHost)
            for entry in self.allow_outbound + self.allow_inbound
        )

    def check_resolve(self, name: str) -> Decision:
        """Resolve decision for an already-normalized *name*.

        Allow rules for a name (``tcp://example.com:80`` or ``localhost``)
        imply ``--allow-resolve`` for exactly that name: without it such a rule
        could never match anything.  Explicit deny-resolve rules still win.
        """
        for resolve_entry in self.deny_resolve:
            if resolve_entry.rule.matches(name):
                return Decision(False, resolve_entry.text)
        for resolve_entry in self.allow_resolve:
            if resolve_entry.rule.matches(name):
                return Decision(True, resolve_entry.text)
        for entry in self.allow_outbound + self.allow_inbound:
            host = entry.rule.host
            if (isinstance(host, NameHost) and host.name == name) or (
                isinstance(host, LocalhostHost) and name == "localhost"
            ) or (isinstance(host, SubdomainHost) and host.covers(name)):
                return Decision(True, entry.text)
        return _DEFAULT_DENY

    def grants(self, protocol: str, direction: Direction) -> bool:
        """Whether some allow rule could allow *protocol* in *direction*.

        An allow rule is ignored if a deny rule for the same direction covers
        every host and port of that protocol (it could never take effect).
        """
        blanket_deny = any(
            protocol in entry.rule.protocols
            and isinstance(entry.rule.host, AnyHost)
            and entry.rule.ports.is_any
            for entry in self.denies(direction)
        )
        if blanket_deny:
            return False
        return any(protocol in entry.rule.protocols for entry in self.allows(direction))

    def describe(self) -> list[str]:
        """The rules as ``"<flag> <rule>"`` lines, in a fixed order."""
        groups: tuple[tuple[_Entry, ...] | tuple[_ResolveEntry, ...], ...] = (
            self.allow_outbound,
            self.allow_inbound,
            self.addr_pool,
            self.deny_outbound,
            self.deny_inbound,
            self.allow_resolve,
            self.deny_resolve,
        )
        return [entry.text for group in groups for entry in group]


def _forms(ip: IPAddress) -> tuple[IPAddress, ...]:
    """A normalized address and every IPv4 address it embeds: what the
    rules judge (see "judged as both" in the module docstring)."""
    return (ip, *embedded_ipv4(ip))


def _strings(value: Iterable[str], flag: str) -> list[str]:
    """Materialize a flag's values, refusing a bare ``str``.

    A ``str`` is itself an ``Iterable[str]``; passing ``"tcp://x:1"`` instead
    of ``["tcp://x:1"]`` would otherwise be parsed one character at a time.
    """
    if isinstance(value, str):
        raise TypeError(f"{flag} expects an iterable of rule strings, not a single str")
    return list(value)


class Policy:
    """An immutable network policy: one or more layers of rules.

    A policy built by :meth:`from_flags` has one layer; :meth:`restrict` adds
    layers.  Every check must be allowed by all layers, so a restricted policy
    is never wider than the policy it was derived from.  Build instances with
    :meth:`from_flags` or :meth:`deny_all`, not the constructor.
    """

    # A linked chain, innermost layer first: `restrict` links one node per
    # layer to the parent it shares, so a chain of n restrictions holds n
    # nodes (a tuple per policy held 1 + 2 + ... + n layers: 12,000 nested
    # restricts cost 573 MiB), and a check walks it once, O(depth).
    __slots__ = ("_depth", "_layer", "_parent")
    _layer: _RuleSet
    _parent: Policy | None
    _depth: int

    def __init__(self, _layers: tuple[_RuleSet, ...] = (_RuleSet(),)) -> None:
        if not _layers:
            raise ValueError("a policy has at least one layer")
        parent: Policy | None = None
        for layer in _layers[:-1]:
            parent = Policy._link(layer, parent)
        self._set(_layers[-1], parent)

    def _set(self, layer: _RuleSet, parent: Policy | None) -> None:
        object.__setattr__(self, "_layer", layer)
        object.__setattr__(self, "_parent", parent)
        object.__setattr__(self, "_depth", 1 if parent is None else parent._depth + 1)

    @staticmethod
    def _link(layer: _RuleSet, parent: Policy | None) -> Policy:
        """A policy that is `parent` narrowed by `layer` (shares `parent`)."""
        node = object.__new__(Policy)
        node._set(layer, parent)
        return node

    @property
    def _layers(self) -> tuple[_RuleSet, ...]:
        """Every layer, outermost (the host's own) first."""
        layers = []
        node: Policy | None = self
        while node is not None:
            layers.append(node._layer)
            node = node._parent
        layers.reverse()
        return tuple(layers)

    @property
    def depth(self) -> int:
        """How many layers: 1, plus one per layer `restrict` stacked."""
        return self._depth

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Policy is immutable (cannot set {name!r}); use restrict()")

    def __eq__(self, other: object) -> bool:
        return type(other) is Policy and other._layers == self._layers

    def __hash__(self) -> int:
        return hash(self._layers)

    def __repr__(self) -> str:
        return f"Policy(_layers={self._layers!r})"

    @classmethod
    def from_flags(
        cls,
        *,
        allow_outbound: Iterable[str] = (),
        allow_inbound: Iterable[str] = (),
        deny_outbound: Iterable[str] = (),
        deny_inbound: Iterable[str] = (),
        allow_resolve: Iterable[str] = (),
        deny_resolve: Iterable[str] = (),
        addr_pool: Iterable[str] = (),
    ) -> Policy:
        """Parse command-line style rule lists into a policy.

        Each ``addr_pool`` item is one ``--addr-pool`` value (itself a
        comma-separated list).  Raises :class:`PolicyError` naming the first
        bad rule and its flag; no partially parsed policy is ever returned.
        """

        def address(values: Iterable[str], name: str) -> tuple[_Entry, ...]:
            flag = f"--{name}"
            return tuple(
                _Entry(name, parse_address_rule(text, flag))
                for text in _strings(values, flag)
            )

        def resolve(values: Iterable[str], name: str) -> tuple[_ResolveEntry, ...]:
            flag = f"--{name}"
            return tuple(
                _ResolveEntry(name, parse_resolve_rule(text, flag))
                for text in _strings(values, flag)
            )

        pool = tuple(
            _Entry("addr-pool", rule)
            for text in _strings(addr_pool, "--addr-pool")
            for rule in parse_addr_pool(text)
        )
        layer = _RuleSet(
            allow_outbound=address(allow_outbound, "allow-outbound"),
            allow_inbound=address(allow_inbound, "allow-inbound"),
            deny_outbound=address(deny_outbound, "deny-outbound"),
            deny_inbound=address(deny_inbound, "deny-inbound"),
            addr_pool=pool,
            allow_resolve=resolve(allow_resolve, "allow-resolve"),
            deny_resolve=resolve(deny_resolve, "deny-resolve"),
        )
        return cls((layer,))

    def granting(self, *, allow_outbound: Iterable[AddressRule] = (),
                 allow_inbound: Iterable[AddressRule] = (),
                 allow_resolve: Iterable[ResolveRule] = ()) -> Policy:
        """This policy with more allow rules in its host (outermost) layer:
        what the host's mapping rules (``policy/mapping.py``) allow.
        Restriction layers are kept as they are, so nothing they narrowed
        widens."""
        layers = self._layers
        first = layers[0]
        first = first._replace(
            allow_outbound=first.allow_outbound + tuple(
                _Entry("allow-outbound", rule) for rule in allow_outbound),
            allow_inbound=first.allow_inbound + tuple(
                _Entry("allow-inbound", rule) for rule in allow_inbound),
            allow_resolve=first.allow_resolve + tuple(
                _ResolveEntry("allow-resolve", rule) for rule in allow_resolve))
        return Policy((first, *layers[1:]))

    @classmethod
    def deny_all(cls) -> Policy:
        """A policy that allows nothing (the default for a guest with no flags)."""
        return cls((_RuleSet(),))

    def check(self, use: Use, target: Endpoint | str, resolved: Resolved) -> Decision:
        """The :class:`~capsock.policy.checker.Checker` method: judge `use`
        of `target` by the rules.

        Each use maps to a direction and to whether allow rules apply
        (:data:`_RULES_FOR`); the ephemeral bind of a connect or send and
        a reply to a recent sender need no allow rule, only no deny rule.
        """
        if use is Use.RESOLVE:
            if not isinstance(target, str):
                raise TypeError(f"resolve takes a name, not {type(target).__name__}")
            return self.check_resolve(target)
        if isinstance(target, str):
            raise TypeError(f"{use.value} takes a socket address, not a name")
        port = target.port
        if not 0 <= port <= MAX_PORT:
            return _DEFAULT_DENY
        direction, deny_rules_only = _RULES_FOR[use]
        decision = self._decide(direction, use.protocol, normalize_ip(target.ip), port,
                                resolved, deny_rules_only)
        if use is Use.UDP_REPLY and decision.allowed:
            return Decision(True, "reply")
        return decision

    def check_address(
        self,
        direction: Direction,
        protocol: str,
        ip: IPAddress,
        port: int,
        resolved: Mapping[str, frozenset[IPAddress]] | None = None,
    ) -> Decision:
        """Decide whether ``(protocol, ip, port)`` is reachable in *direction*.

        *ip* is normalized first (IPv4-mapped IPv6 becomes IPv4, zone ids are
        dropped); an address that embeds an IPv4 address is judged as both.
        *resolved* maps names to the addresses this instance got when
        resolving them; it is what name rules match against.  An unknown
        protocol or an out-of-range port is simply denied (no rule can match).
        """
        if not isinstance(direction, Direction):
            raise TypeError(
                f"direction must be a Direction, not {type(direction).__name__}"
            )
        normalized = normalize_ip(ip)
        proto = protocol.lower()
        if proto not in PROTOCOLS or not 0 <= port <= MAX_PORT:
            return _DEFAULT_DENY
        return self._decide(direction, proto, normalized, port, resolved, False)

    def check_resolve(self, name: str) -> Decision:
        """Decide whether the guest may resolve *name*.

        Names are compared case-insensitively with one trailing dot removed.
        A syntactically invalid name is denied even under ``*``, so that a
        resolver cannot read it differently from how the rules matched it.
        """
        normalized = normalize_query_name(name)
        if normalized is None:
            return _DEFAULT_DENY
        return combine([layer.check_resolve(normalized) for layer in self._layers])

    def check_denied(
        self,
        direction: Direction,
        protocol: str,
        ip: IPAddress,
        port: int,
        resolved: Mapping[str, frozenset[IPAddress]] | None = None,
    ) -> Decision:
        """Whether an explicit deny rule (of any layer) matches.

        For operations that need no allow rule but must still honour a deny
        rule: the ephemeral bind a TCP ``connect`` or a UDP ``send`` makes
        on an unbound socket.  Allowed (with rule ``None``) when no deny
        rule matches.
        """
        normalized = normalize_ip(ip)
        proto = protocol.lower()
        if proto not in PROTOCOLS or not 0 <= port <= MAX_PORT:
            return _DEFAULT_DENY
        return self._decide(direction, proto, normalized, port, resolved, True)

    def _decide(self, direction: Direction, protocol: str, ip: IPAddress, port: int,
                resolved: Resolved | None, deny_rules_only: bool) -> Decision:
        """Every layer's answer, combined, for arguments already checked
        and an address already normalized (once, by the caller)."""
        forms = _forms(ip)
        if self._parent is None:
            layer = self._layer
            return (layer.check_denied if deny_rules_only else layer.check_address)(
                direction, protocol, forms, port, resolved)
        return combine([
            (layer.check_denied if deny_rules_only else layer.check_address)(
                direction, protocol, forms, port, resolved)
            for layer in self._layers
        ])

    def grants_resolve(self) -> bool:
        """Whether some name could be resolved (every layer must allow one).

        Used to decide whether to hand the guest a resolver at all.
        """
        return all(layer.grants_resolve() for layer in self._layers)

    def grants(self, protocol: str) -> bool:
        """Whether any rule could allow *protocol* in some direction.

        Used to decide whether to hand the guest a network capability at all.
        With several layers, one direction must be granted by every layer.
        """
        proto = protocol.lower()
        if proto not in PROTOCOLS:
            return False
        return any(
            all(layer.grants(proto, direction) for layer in self._layers)
            for direction in Direction
        )

    def restrict(self, child: Policy) -> Policy:
        """Attenuate: allow only what both this policy and *child* allow.

        The child's layers are appended, never merged, so a wide child rule
        (``tcp://*:*``) cannot widen anything: the parent's layer still has to
        allow each request on its own.  The result shares this policy's
        layers (one new node per child layer, nothing copied).
        """
        node = self
        for layer in child._layers:
            node = Policy._link(layer, node)
        return node

    def describe(self) -> list[str]:
        """The rules as text for ``--help``/debug output.

        Lines of restriction layers are prefixed with ``"restrict: "``; a
        restriction that allows nothing is shown as ``"restrict: (deny all)"``.
        """
        lines = self._layers[0].describe()
        for layer in self._layers[1:]:
            layer_lines = layer.describe() or ["(deny all)"]
            lines.extend(f"restrict: {line}" for line in layer_lines)
        return lines



#: How the rules judge each address use: the direction of the rules that
#: apply, and whether only deny rules do (no allow rule is needed).
_RULES_FOR: dict[Use, tuple[Direction, bool]] = {
    Use.TCP_BIND: (Direction.INBOUND, False),
    Use.TCP_CONNECT: (Direction.OUTBOUND, False),
    Use.TCP_IMPLICIT_BIND: (Direction.INBOUND, True),
    Use.UDP_BIND: (Direction.INBOUND, False),
    Use.UDP_CONNECT: (Direction.OUTBOUND, False),
    Use.UDP_SEND: (Direction.OUTBOUND, False),
    # A reply: the outbound rules' denials, without their allows.
    Use.UDP_REPLY: (Direction.OUTBOUND, True),
    Use.UDP_IMPLICIT_BIND: (Direction.INBOUND, True),
    # A datagram is accepted from whom the socket may send to.
    Use.UDP_RECEIVE: (Direction.OUTBOUND, False),
}


class Narrowed:
    """A checker restricted by a rule layer: both must allow.

    The parent is asked first, then the layer; the answers combine as the
    layers of one :class:`Policy` do (any denial denies; the first explicit
    deny rule is reported, else the layer's allow rule). :func:`narrow`
    keeps one `Narrowed` over the embedder's checker and stacks further
    restrictions into `layer`, so a chain is never a chain of wrappers
    (each check one call to the parent, whatever the depth).
    """

    __slots__ = ("layer", "parent")

    def __init__(self, parent: Checker, layer: Policy) -> None:
        self.parent = parent
        self.layer = layer

    @property
    def depth(self) -> int:
        """Layers stacked over the parent checker (see :func:`restrict_depth`)."""
        return self.layer.depth + restrict_depth(self.parent)

    def __repr__(self) -> str:
        return f"Narrowed({self.parent!r}, {self.layer!r})"

    def check(self, use: Use, target: Endpoint | str, resolved: Resolved) -> Decision:
        return combine([decision_of(self.parent.check(use, target, resolved)),
                        self.layer.check(use, target, resolved)])


def narrow(parent: Checker, layer: Policy) -> Checker:
    """`parent` restricted by `layer` (what `restrict` hands the guest):
    never wider than `parent`, whatever `parent` is.

    A :class:`Policy` parent stacks the layer (:meth:`Policy.restrict`,
    which keeps :meth:`Policy.describe` and equality); any other checker
    is wrapped in :class:`Narrowed`.
    """
    if isinstance(parent, Policy):
        return parent.restrict(layer)
    if isinstance(parent, Narrowed):  # combine() is associative: same decisions
        return Narrowed(parent.parent, parent.layer.restrict(layer))
    return Narrowed(parent, layer)


def restrict_depth(checker: Checker) -> int:
    """How many layers `restrict` stacked on the checker a host was given:
    what ``Limits.max_restrict_depth`` bounds. A :class:`Policy`'s layers
    beyond its first, a :class:`Narrowed`'s own; 0 for any other checker."""
    if isinstance(checker, Policy):
        return checker.depth - 1
    if isinstance(checker, Narrowed):
        return checker.depth
    return 0
