"""The observer seam: what core tells whoever counts (metrics), and nothing else.

Core calls an `InstanceObserver` at the points where something countable
happens to one instance: a policy decision, a refused request over a limit,
a TCP connection opened or closed, bytes moved, a TLS handshake. It never
asks anything back and never depends on who listens: the default is
`NULL_OBSERVER` (no-ops, one method call each), and the Prometheus
implementation lives above core (runtime/metrics.py), so core imports no
metrics library and arrows keep pointing down.

Labels an observer may use, with their bounded sets:

- `operation`, `protocol`: the audit log's (core/audit.py);
- `rule`: the rule that decided (`"<flag> <rule>"`, or None for the
  default deny), taken from the operator's policy, so bounded by it;
- `origin`: for a socket's traffic, the rule that let it exist: the rule
  of its `connect` (TCP), of its `bind`, of the listener it was accepted
  from, `preopen <name>` for a pre-open, or `implicit` for a UDP socket
  that only ever sent (its sends are judged one by one).

Every method must return quickly and must not raise: core calls them on
the guest's calls, with locks of its own held in some cases.
"""

from __future__ import annotations

from typing import Protocol

from ..policy import Decision


class InstanceObserver(Protocol):
    """What one instance reports. All methods are fire-and-forget."""

    def decision(self, operation: str, protocol: str, decision: Decision) -> None:
        """A policy decision (allowed or denied) about `operation`."""

    def limit(self, name: str) -> None:
        """A request refused by the per-instance limit `name` (a Limits field)."""

    def connection(self, protocol: str, origin: str, delta: int) -> None:
        """A connection opened (+1) or closed (-1)."""

    def transferred(self, protocol: str, origin: str, received: int, sent: int) -> None:
        """Bytes the guest received and sent on a socket of `origin`."""

    def tls_handshake(self, outcome: str) -> None:
        """A TLS handshake ended (`ok`, or the error's name): for the TLS
        layer when there is one; nothing in core calls it today."""


class NullObserver:
    """Counts nothing: the default when no one observes."""

    def decision(self, operation: str, protocol: str, decision: Decision) -> None:
        pass

    def limit(self, name: str) -> None:
        pass

    def connection(self, protocol: str, origin: str, delta: int) -> None:
        pass

    def transferred(self, protocol: str, origin: str, received: int, sent: int) -> None:
        pass

    def tls_handshake(self, outcome: str) -> None:
        pass


NULL_OBSERVER: InstanceObserver = NullObserver()

__all__ = ["NULL_OBSERVER", "InstanceObserver", "NullObserver"]
