"""Everything one guest instance's sockets share."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from ..addresses import IPAddress, SocketAddress
from ..backends.base import Backend, StreamSocket
from ..errors import ErrorCode, NetError
from ..policy import Decision, Direction, Policy

log = logging.getLogger("capsock")


@dataclass
class Preopen:
    """A socket the operator opened for the guest (`--tcplisten`)."""

    name: str
    protocol: str  # "tcp" | "udp"
    ipv6: bool
    socket: StreamSocket


@dataclass
class InstanceContext:
    """Per-instance state: the policy, the backend, what it resolved."""

    policy: Policy
    backend: Backend
    preopens: list[Preopen] = field(default_factory=list)
    resolved: dict[str, frozenset[IPAddress]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, policy: Policy, direction: Direction, protocol: str,
              address: SocketAddress) -> Decision:
        """Ask `policy` (this handle's, maybe narrowed) and log denials."""
        decision = policy.check_address(direction, protocol, address.ip, address.port,
                                        self.resolved)
        if not decision.allowed:
            log.info("capsock: denied %s %s://%s (%s)", direction.value, protocol, address,
                     decision.rule or "no rule allows it")
        return decision

    def require(self, policy: Policy, direction: Direction, protocol: str,
                address: SocketAddress) -> None:
        """Raise `access-denied` unless allowed; no syscall happens before."""
        if not self.check(policy, direction, protocol, address).allowed:
            raise NetError(ErrorCode.ACCESS_DENIED, f"{direction.value} {protocol}://{address}")

    def take_preopens(self) -> list[Preopen]:
        with self.lock:
            taken, self.preopens = self.preopens, []
        return taken
