"""Everything one guest instance's sockets share."""

from __future__ import annotations

import ipaddress
import itertools
import os
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

from .._log import LineBudget, log
from ..addresses import IPAddress, SocketAddress
from ..backends.base import Backend, DatagramSocket, Resolver, StreamSocket
from ..errors import ErrorCode, NetError
from ..policy import (
    Checker,
    Decision,
    MappingTable,
    Policy,
    Use,
    decision_of,
    narrow,
    restrict_depth,
)
from .audit import AuditLog
from .limits import Limits, QuotaState, TokenBucket
from .observe import NULL_OBSERVER, InstanceObserver

#: The stand-in peers of `--peer-address=hidden` (documented in the WIT):
#: 192.0.0.8 is IANA's IPv4 dummy address (RFC 7600), 100:: the IPv6
#: discard-only prefix (RFC 6666). Port 0: no TCP connection can go to it;
#: a UDP send to it is a reply to the socket's last sender (core/udp.py).
HIDDEN_PEER_V4 = SocketAddress(ipaddress.IPv4Address("192.0.0.8"), 0)
HIDDEN_PEER_V6 = SocketAddress(ipaddress.IPv6Address("100::"), 0)
#: What the ephemeral bind of a connect or send binds to (`Use.*_IMPLICIT_BIND`).
UNSPECIFIED_V4 = SocketAddress(ipaddress.IPv4Address("0.0.0.0"), 0)
UNSPECIFIED_V6 = SocketAddress(ipaddress.IPv6Address("::"), 0)

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



def _quota_key(peer: SocketAddress | None) -> tuple[IPAddress, int] | None:
    """The destination a byte-rate quota counts `peer` under (its address
    and port, not flow or scope), or None for the instance's bucket alone."""
    return None if peer is None else (peer.ip, peer.port)

class InstanceContext:
    """Per-instance state: the checker, the backends, what it resolved.

    `checker` decides every socket operation and lookup (the host's
    `Policy`, or an embedder's own; capabilities narrowed by `restrict`
    carry a narrower one, passed to `check`/`require`). `resolved` maps
    each name this instance resolved (normalized) to every address it got
    for it: name rules (`tcp://svc.test:80`) match exactly those.
    `hide_peers` is `--peer-address=hidden`; `audit` the audit log.

    A plain class, not a dataclass: see the note in policy/rules.py.
    """

    def __init__(self, checker: Checker, backend: Backend,
                 preopens: list[Preopen] | None = None, *,
                 resolver: Resolver | None = None, hide_peers: bool = False,
                 audit: AuditLog | None = None, instance_id: str | None = None,
                 limits: Limits | None = None, mappings: MappingTable | None = None,
                 audit_mode: bool = False,
                 observer: InstanceObserver = NULL_OBSERVER) -> None:
        self.checker = checker
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
        #: Whether `record` printed this instance's first denial (without -v).
        self.denial_reported = False
        #: How many denial lines this instance may cause (`record`).
        self.denial_lines = LineBudget()
        #: Who counts what this instance does (core/observe.py; metrics).
        self.observer = observer
        #: The host's `->` rules (None: none); core/translate.py applies them.
        self.mappings = mappings if mappings else None
        #: Real addresses the host got for the real names of mappings, each
        #: with its name: a sender there is shown by its guest-side address.
        self.named_real: dict[IPAddress, str] = {}
        #: `--policy-mode=audit`: what the checker denies is allowed and
        #: audited as `would-deny` (`require`), nothing else changes.
        self.audit_mode = audit_mode
        #: Connections and bytes per destination (core/limits.py).
        self.quotas = QuotaState(self.limits)

    def __repr__(self) -> str:
        return f"<InstanceContext {self.instance_id} ({self.open_sockets} sockets open)>"

    def call_too_large(self, size: int) -> NetError:
        """The error (and audit line) of an argument over `max_call_bytes`."""
        return self.limit_reached("call", "-", f"argument of {size} bytes", "max_call_bytes")

    def limit_reached(self, operation: str, protocol: str, target: str, name: str,
                      value: object = None) -> NetError:
        """Audit a refused request and return the `limit-reached` error.

        The audit line (operation ``limit``) lets an operator tell a guest
        hitting its limits from one denied by the policy.
        """
        value = getattr(self.limits, name) if value is None else value
        self.observer.limit(name)
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

    def narrow(self, checker: Checker, protocol: str, layer: Callable[[], Policy]) -> Checker:
        """`restrict`: `checker` narrowed by the rule layer `layer()` makes,
        or `limit-reached` (audited, before the rules are even parsed) if
        it already carries `limits.max_restrict_depth` layers."""
        if restrict_depth(checker) >= self.limits.max_restrict_depth:
            raise self.limit_reached("restrict", protocol, "capability", "max_restrict_depth")
        return narrow(checker, layer())

    def release_socket(self) -> None:
        """A counted socket was closed."""
        with self.lock:
            self.open_sockets = max(0, self.open_sockets - 1)

    def grants(self, protocol: str) -> bool:
        """Whether to hand the guest a capability for `protocol` ("tcp",
        "udp", or "dns" for the resolver) at all.

        A `Policy` grants one only if some rule could allow something with
        it; any other checker is asked about each operation instead, so
        its capabilities are always handed out.
        """
        checker = self.checker
        if self.audit_mode or not isinstance(checker, Policy):
            return True
        return checker.grants_resolve() if protocol == "dns" else checker.grants(protocol)

    def check(self, checker: Checker, use: Use, target: SocketAddress | str) -> Decision:
        """Ask `checker` (this handle's, maybe narrowed) about `use` of `target`."""
        return decision_of(checker.check(use, target, self.resolved))

    def require(self, checker: Checker, use: Use, target: SocketAddress | str,
                real: object = None) -> Decision:
        """Audit the decision; raise `access-denied` unless allowed (no
        syscall toward `target` happens before). `real`: what the host
        really uses for `target` (a mapping's real side), for the audit.
        Returns the decision (its rule is what per-rule quotas count by,
        and labels the socket's traffic for the observer, `observe.py`)."""
        decision = decision_of(checker.check(use, target, self.resolved))
        if not decision.allowed:
            return self.refuse(use, target, decision, real)
        if self.audit is not None:
            self.record(use.operation, use.protocol, target, decision, real=real)
        else:  # record would do nothing with it but count it
            self.observer.decision(use.operation, use.protocol, decision)
        return decision

    def refuse(self, use: Use, target: object, decision: Decision,
               real: object = None) -> Decision:
        """What a denied `decision` does: audited, then `access-denied`; in
        audit mode it goes ahead instead (`would_deny`). Every denial of a
        guest's operation comes here, mapped targets' real sides included
        (core/translate.py)."""
        if self.audit_mode:
            return self.would_deny(use.operation, use.protocol, target, decision, real)
        self.record(use.operation, use.protocol, target, decision, real=real)
        raise NetError(ErrorCode.ACCESS_DENIED, f"{use.value} {target}")

    def would_deny(self, operation: str, protocol: str, target: object,
                   decision: Decision, real: object = None) -> Decision:
        """Audit mode: let a denied operation go ahead, logged as
        `would-deny` (core/audit.py) and, once, on the host's log. The
        observer counts it as the denial the policy decided."""
        self.observer.decision(operation, protocol, decision)
        if self.audit is not None:
            self.audit.record(self.instance_id, operation, protocol, str(target),
                              Decision(True, decision.rule),
                              real=None if real is None else str(real), would_deny=True)
        if not self.denial_reported:
            self.denial_reported = True
            log.warning("capsock: audit mode: %s %s://%s would be denied (%s) "
                        "[instance %s; see the audit log]", operation, protocol, target,
                        decision.rule or "no rule allows it", self.instance_id)
        return Decision(True, decision.rule)

    def open_connection(self, address: SocketAddress, rule: str | None) -> None:
        """Count a connection to `address` allowed by `rule`, or refuse
        with `limit-reached` (audited) when a connection quota is full."""
        if not self.quotas.counts_connections:
            return
        refused = self.quotas.open_connection((address.ip, address.port), rule)
        if refused is not None:
            name, value = refused
            raise self.limit_reached("connect", "tcp", str(address), name, value)

    def close_connection(self, address: SocketAddress, rule: str | None) -> None:
        if self.quotas.counts_connections:
            self.quotas.close_connection((address.ip, address.port), rule)

    def meter(self, peer: SocketAddress | None, wanted: int, blocking: bool) -> int:
        """How many of `wanted` bytes a send or receive may move now under
        the byte-rate quotas (all of them when there are none); the caller
        `charge`s what it moved.

        Spent buckets: `would-block` on a non-blocking socket; a blocking
        one waits for the first byte (under a second: a bucket refills
        within one). Never 0 for `wanted` > 0.
        """
        quotas = self.quotas
        if not quotas.meters_bytes or wanted <= 0:
            return wanted
        key = _quota_key(peer)
        for _ in range(100):  # each round waits for a refill (< 1 s): bounded in time too
            allowed = quotas.allowance(key, wanted)
            if allowed:
                return allowed
            self._wait_for_bytes(key, blocking)
        raise NetError(ErrorCode.WOULD_BLOCK, "byte rate quota spent")

    def quota_hold(self, peer: SocketAddress | None) -> float:
        """Seconds until the byte-rate buckets of `peer` (and the
        instance's) hold a byte again: 0.0 when they do, or when no byte
        quota is set. Readiness waits leave a socket out for that long, so
        a non-blocking guest whose quota is spent waits in `poll` instead
        of polling, getting `would-block` and polling again at full speed."""
        if not self.quotas.meters_bytes:
            return 0.0
        return self.quotas.wait_time(_quota_key(peer))

    def charge(self, peer: SocketAddress | None, used: int) -> None:
        """Spend `used` bytes a call moved to or from `peer`."""
        if self.quotas.meters_bytes and used > 0:
            self.quotas.charge(_quota_key(peer), used)

    def _wait_for_bytes(self, key: tuple[IPAddress, int] | None, blocking: bool) -> None:
        if not blocking:
            raise NetError(ErrorCode.WOULD_BLOCK, "byte rate quota spent")
        time.sleep(min(1.0, max(0.001, self.quotas.wait_time(key))))

    def meter_datagram(self, peer: SocketAddress | None, blocking: bool) -> None:
        """Before a UDP send or receive: wait (blocking) or `would-block`
        until the buckets hold a byte; `charge` then takes the datagram's
        whole size (a datagram is never cut)."""
        if not self.quotas.meters_bytes:
            return
        key = _quota_key(peer)
        for _ in range(100):
            if self.quotas.wait_time(key) == 0.0:
                return
            self._wait_for_bytes(key, blocking)
        raise NetError(ErrorCode.WOULD_BLOCK, "byte rate quota spent")

    def require_implicit_bind(self, checker: Checker, use: Use, ipv6: bool) -> None:
        """The ephemeral bind of a connect/send on an unbound socket.

        `Policy` needs no allow rule for it (the outbound rule that allows
        the peer is what matters), but a deny-inbound rule covering the
        unspecified address and port 0 (e.g. `udp://*:*`) still forbids it.
        Audited only when denied.
        """
        self.require_quietly(checker, use, UNSPECIFIED_V6 if ipv6 else UNSPECIFIED_V4)

    def require_quietly(self, checker: Checker, use: Use, address: SocketAddress) -> None:
        """`require`, audited only when denied: for checks that repeat one
        already audited (the port the kernel picked for a port-0 bind, see
        `SocketCore.bind_checked`) or that no allow rule is needed for."""
        decision = self.check(checker, use, address)
        if not decision.allowed:
            self.refuse(use, address, decision)

    def record_allowed(self, operation: str, protocol: str, target: object,
                       decision: Decision, real: object = None) -> None:
        """`record` for a decision known to allow (a line only with an audit
        log; always counted by the observer)."""
        self.observer.decision(operation, protocol, decision)
        if self.audit is not None:
            self._audit(operation, protocol, target, decision, real)

    def _audit(self, operation: str, protocol: str, target: object, decision: Decision,
               real: object) -> None:
        """One audit line; `real` only when there is one (an audit log
        written before mappings existed takes no such argument)."""
        assert self.audit is not None
        if real is None:
            self.audit.record(self.instance_id, operation, protocol, str(target), decision)
        else:
            self.audit.record(self.instance_id, operation, protocol, str(target), decision,
                              real=str(real))

    def record(self, operation: str, protocol: str, target: object, decision: Decision,
               real: object = None) -> None:
        """Write a decision to the audit log, and log denials (`-v`).

        `target` (an address or a name) becomes text only for an audit
        line or a denial that is logged: most checks write neither. `real`
        is the real side of a mapped target (`core/translate.py`): audit
        lines carry it, the guest never sees it.

        Allowed decisions are always written (each is something the guest
        did). Denials, which a guest can repeat as fast as it calls, go
        through `denial_lines`: the first ones whole, then a sample, and a
        summary line ("N more denials suppressed") for the rest, in the
        audit log and on the log alike (`flush_denials` writes the last).
        """
        if operation != "limit":  # counted by `limit_reached` as a limit
            self.observer.decision(operation, protocol, decision)
        if decision.allowed:
            if self.audit is not None:
                self._audit(operation, protocol, target, decision, real)
            return
        write, suppressed = self.denial_lines.admit()
        if suppressed:
            self._summarise(suppressed)
        if not write:
            return
        if self.audit is not None:
            self._audit(operation, protocol, target, decision, real)
        if operation != "limit" and not self.denial_reported:
            # The first denial is printed even without -v: an operator whose
            # guest fails on a denied connect learns which rule is missing.
            self.denial_reported = True
            log.warning("capsock: %s %s://%s denied by the host's policy (%s) "
                        "[instance %s; -v logs every denial]", operation, protocol, target,
                        decision.rule or "no rule allows it", self.instance_id)
        else:
            log.info("capsock: denied %s %s://%s (%s)", operation, protocol, target,
                     decision.rule or "no rule allows it")

    def flush_denials(self) -> None:
        """Write the summary of denials suppressed since the last one (at
        the instance's end)."""
        suppressed = self.denial_lines.flush()
        if suppressed:
            self._summarise(suppressed)

    def _summarise(self, count: int) -> None:
        if self.audit is not None:
            self.audit.summarise(self.instance_id, count)
        log.info("capsock: %d more denials suppressed (instance %s)", count, self.instance_id)

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

