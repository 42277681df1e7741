"""Everything one guest instance's sockets share."""

from __future__ import annotations

import ipaddress
import itertools
import os
import threading
from typing import NamedTuple

from .._log import log
from ..addresses import IPAddress, SocketAddress
from ..backends.base import Backend, DatagramSocket, Resolver, StreamSocket
from ..errors import ErrorCode, NetError
from ..policy import Decision, Direction, Policy
from .audit import AuditLog
from .limits import Limits, TokenBucket

#: The stand-in peers of `--peer-address=hidden` (documented in the WIT):
#: 192.0.0.8 is IANA's IPv4 dummy address (RFC 7600), 100:: the IPv6
#: discard-only prefix (RFC 6666). Port 0: nothing can be sent back to it.
HIDDEN_PEER_V4 = SocketAddress(ipaddress.IPv4Address("192.0.0.8"), 0)
HIDDEN_PEER_V6 = SocketAddress(ipaddress.IPv6Address("100::"), 0)

_INSTANCE_IDS = itertools.count(1)


def new_instance_id() -> str:
    """`<pid>-<n>`: unique among the instances of all capsock processes
    writing to one audit log."""
    return f"{os.getpid()}-{next(_INSTANCE_IDS)}"


class Preopen(NamedTuple):
    """A socket the operator opened for the guest (`--tcplisten`, `--udpbind`)."""

    name: str
    protocol: str  # "tcp" | "udp"
    ipv6: bool
    socket: StreamSocket | DatagramSocket


class InstanceContext:
    """Per-instance state: the policy, the backends, what it resolved.

    `resolved` maps each name this instance resolved (normalized) to every
    address it got for it: name rules (`tcp://svc.test:80`) match exactly
    those. `hide_peers` is `--peer-address=hidden`; `audit` the audit log.

    A plain class, not a dataclass: see the note in policy/rules.py.
    """

    def __init__(self, policy: Policy, backend: Backend,
                 preopens: list[Preopen] | None = None, *,
                 resolver: Resolver | None = None, hide_peers: bool = False,
                 audit: AuditLog | None = None, instance_id: str | None = None,
                 limits: Limits | None = None) -> None:
        self.policy = policy
        self.backend = backend
        self.preopens: list[Preopen] = preopens if preopens is not None else []
        self.resolved: dict[str, frozenset[IPAddress]] = {}
        self.lock = threading.Lock()
        self.resolver = resolver
        self.hide_peers = hide_peers
        self.audit = audit
        self.instance_id = instance_id if instance_id is not None else new_instance_id()
        #: What this instance may take from the host (core/limits.py).
        self.limits = limits if limits is not None else Limits()
        #: Sockets the guest holds now (counted against `limits.max_sockets`).
        self.open_sockets = 0
        self.resolve_bucket = TokenBucket(self.limits.resolves_per_second)

    def __repr__(self) -> str:
        return f"<InstanceContext {self.instance_id} ({self.open_sockets} sockets open)>"

    def limit_reached(self, operation: str, protocol: str, target: str, name: str) -> NetError:
        """Audit a refused request and return the `limit-reached` error.

        The audit line (operation ``limit``) lets an operator tell a guest
        hitting its limits from one denied by the policy.
        """
        value = getattr(self.limits, name)
        self.record("limit", protocol, f"{operation} {target}",
                    Decision(False, f"limit {name}={value}"))
        return NetError(ErrorCode.LIMIT_REACHED, f"{operation}: {name}={value} reached")

    def acquire_socket(self, operation: str, protocol: str) -> None:
        """Count one more open socket, or refuse (before any syscall)."""
        with self.lock:
            if self.open_sockets < self.limits.max_sockets:
                self.open_sockets += 1
                return
        raise self.limit_reached(operation, protocol, "socket", "max_sockets")

    def release_socket(self) -> None:
        """A counted socket was closed."""
        with self.lock:
            self.open_sockets = max(0, self.open_sockets - 1)

    def check(self, policy: Policy, direction: Direction, protocol: str,
              address: SocketAddress, operation: str | None = None) -> Decision:
        """Ask `policy` (this handle's, maybe narrowed); audit and log it."""
        decision = policy.check_address(direction, protocol, address.ip, address.port,
                                        self.resolved)
        self.record(operation or _default_operation(direction), protocol, str(address), decision)
        return decision

    def require(self, policy: Policy, direction: Direction, protocol: str,
                address: SocketAddress, operation: str | None = None) -> None:
        """Raise `access-denied` unless allowed; no syscall happens before."""
        if not self.check(policy, direction, protocol, address, operation).allowed:
            raise NetError(ErrorCode.ACCESS_DENIED, f"{direction.value} {protocol}://{address}")

    def require_implicit_bind(self, policy: Policy, protocol: str, ipv6: bool) -> None:
        """The ephemeral bind of a connect/send on an unbound socket.

        It needs no allow rule (the outbound rule that allows the peer is
        what matters), but a deny-inbound rule covering the unspecified
        address and port 0 (e.g. `udp://*:*`) still forbids it.
        """
        address = SocketAddress(ipaddress.ip_address("::" if ipv6 else "0.0.0.0"), 0)
        decision = policy.check_denied(Direction.INBOUND, protocol, address.ip, address.port,
                                       self.resolved)
        if not decision.allowed:
            self.record("implicit-bind", protocol, str(address), decision)
            raise NetError(ErrorCode.ACCESS_DENIED, f"implicit bind {protocol}://{address}")

    def record(self, operation: str, protocol: str, target: str, decision: Decision) -> None:
        """Write a decision to the audit log, and log denials (`-v`)."""
        if self.audit is not None:
            self.audit.record(self.instance_id, operation, protocol, target, decision)
        if not decision.allowed:
            log.info("capsock: denied %s %s://%s (%s)", operation, protocol, target,
                     decision.rule or "no rule allows it")

    def peer(self, address: SocketAddress) -> SocketAddress:
        """What the guest may learn of a peer's address."""
        if not self.hide_peers:
            return address
        return HIDDEN_PEER_V6 if address.is_ipv6 else HIDDEN_PEER_V4

    def remember_resolved(self, name: str, addresses: list[IPAddress]) -> None:
        """Record addresses obtained for `name` (union: never forgets one)."""
        with self.lock:
            self.resolved[name] = self.resolved.get(name, frozenset()) | frozenset(addresses)

    def take_preopens(self) -> list[Preopen]:
        with self.lock:
            taken, self.preopens = self.preopens, []
        return taken


def _default_operation(direction: Direction) -> str:
    return "connect" if direction is Direction.OUTBOUND else "bind"
