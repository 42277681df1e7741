"""The one question the core asks before every socket operation.

Like wasmtime's ``socket_addr_check`` (an ``(address, SocketAddrUse)``
predicate checked before any syscall), the core asks a single *checker*
with a typed :class:`Use` and a target: the socket address for the socket
uses, the normalized domain name for :attr:`Use.RESOLVE`. capsock's
rule-based :class:`~capsock.policy.Policy` is the default checker; an
embedder may pass any object with a matching ``check`` method
(:class:`Checker`, structural: no base class to inherit), and it then
decides every socket operation of every guest that host runs.

`restrict` (a guest narrowing its capability) stacks a rule layer over
whichever checker the capability had (``policy.narrow``): something is
allowed only if the parent checker and the layer both allow it, so a
restriction can never widen a custom checker either.

This module is the vocabulary both sides share (the core asks, the
policy answers); like the rest of the policy it imports nothing else of
capsock.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import NamedTuple, Protocol, TypeAlias

from .rules import IPAddress

__all__ = ["DEFAULT_DENY", "Checker", "Decision", "Endpoint", "Resolved", "Use", "combine",
           "decision_of"]


class Decision(NamedTuple):
    """The outcome of a check, with the rule that caused it.

    ``rule`` is ``"<flag> <rule text>"`` (e.g.
    ``"allow-outbound tcp://127.0.0.1:80"``) so that logs and error messages
    can tell the user *which* rule to change; it is ``None`` when no rule
    matched and the default deny applied (or a checker said only yes or no).

    ``bool(decision)`` is ``decision.allowed``: without this a (non-empty)
    tuple is always truthy, and ``if policy.check_address(...):`` would
    silently allow everything.

    A NamedTuple rather than a frozen dataclass: cheaper to create at
    import (see the note in rules.py), cheaper to build per decision.
    """

    allowed: bool
    rule: str | None

    def __bool__(self) -> bool:
        """Truthiness follows :attr:`allowed` (see the class docstring)."""
        return self.allowed


DEFAULT_DENY = Decision(False, None)


class Use(enum.Enum):
    """What the guest is about to do with a target (the typed use).

    The value is the use's name in documentation and logs; `protocol`
    (``tcp``, ``udp`` or ``dns``) and `operation` (``bind``, ``connect``,
    ``send``, ``implicit-bind``, ``receive`` or ``resolve``) are what the
    audit log says of it.
    """

    protocol: str
    operation: str

    def __new__(cls, name: str, protocol: str, operation: str) -> Use:
        use = object.__new__(cls)
        use._value_ = name
        use.protocol = protocol
        use.operation = operation
        return use

    #: `tcp-socket.bind` (and the bind of `listen` on an unbound socket):
    #: the local address.
    TCP_BIND = ("tcp-bind", "tcp", "bind")
    #: `tcp-socket.connect`: the remote address.
    TCP_CONNECT = ("tcp-connect", "tcp", "connect")
    #: The ephemeral bind of a `connect` on an unbound TCP socket: the
    #: unspecified address of the socket's family, port 0.
    TCP_IMPLICIT_BIND = ("tcp-implicit-bind", "tcp", "implicit-bind")
    #: `udp-socket.bind`: the local address.
    UDP_BIND = ("udp-bind", "udp", "bind")
    #: `udp-socket.connect`: the remote address.
    UDP_CONNECT = ("udp-connect", "udp", "connect")
    #: `udp-socket.send` to an explicit address: the destination.
    UDP_SEND = ("udp-send", "udp", "send")
    #: A `send` to an address the socket recently received from (a reply).
    UDP_REPLY = ("udp-reply", "udp", "send")
    #: The ephemeral bind of a UDP `connect`/`send` on an unbound socket.
    UDP_IMPLICIT_BIND = ("udp-implicit-bind", "udp", "implicit-bind")
    #: A datagram from this sender, on a socket that was neither pre-opened
    #: nor bound by an allowed `udp-bind`: denied means dropped unseen.
    UDP_RECEIVE = ("udp-receive", "udp", "receive")
    #: `resolve-addresses`: the target is the normalized name.
    RESOLVE = ("resolve", "dns", "resolve")


class Endpoint(Protocol):
    """A socket address as a checker reads it: capsock's ``SocketAddress``
    (``capsock.addresses``) is one; so is any object with these two."""

    @property
    def ip(self) -> IPAddress: ...

    @property
    def port(self) -> int: ...


#: The names this instance resolved, each with every address it got for it
#: (read-only): what a rule naming a host (``tcp://svc.test:80``) matches.
Resolved: TypeAlias = Mapping[str, frozenset[IPAddress]]


class Checker(Protocol):
    """Decides each use of a target; the core asks it before any syscall.

    `target` is an :class:`Endpoint` for every use but
    :attr:`Use.RESOLVE`, whose target is the name (lower case, no
    trailing dot). IPv4-mapped IPv6 addresses arrive as the guest gave
    them: normalising them is the checker's job (``Policy`` judges them
    as IPv4). Return a :class:`Decision` (its ``rule`` goes to the audit
    log) or a plain ``bool``; anything else is refused as an error, so a
    returned tuple can never allow by being truthy. An exception denies
    the operation (the guest sees `unknown`) and is logged.

    A checker is shared by every instance a host runs, possibly from
    several threads at once.
    """

    def check(self, use: Use, target: Endpoint | str, resolved: Resolved) -> Decision | bool:
        ...


def decision_of(result: object) -> Decision:
    """A checker's answer as a :class:`Decision` (fails closed)."""
    if isinstance(result, Decision):
        return result
    if isinstance(result, bool):
        return Decision(result, None)
    raise TypeError(f"a checker must return a Decision or a bool, not {type(result).__name__}")


def combine(decisions: list[Decision]) -> Decision:
    """Intersect the decisions of layers that must all allow.

    Any denial denies; the first explicit deny rule is reported (an explicit
    rule explains more than "nothing matched").  If every layer allows, the
    innermost (most recently added, most specific) layer's rule is reported.
    """
    denials = [decision for decision in decisions if not decision.allowed]
    if denials:
        for decision in denials:
            if decision.rule is not None:
                return decision
        return DEFAULT_DENY
    return decisions[-1]
