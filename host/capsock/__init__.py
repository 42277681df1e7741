"""capsock: capability-based networking for WebAssembly components.

The embedder API: build a :class:`Policy`, give it to a :class:`Host`, run
a component. See README.md.
"""

from .addresses import SocketAddress
from .backends.resolvers import DnsResolver, SystemResolver
from .core.audit import AuditLog
from .errors import ErrorCode, NetError
from .policy import Policy, PolicyError
from .runtime import Host, RunError, TcpListenSpec, UdpBindSpec

__all__ = ["AuditLog", "DnsResolver", "ErrorCode", "Host", "NetError", "Policy", "PolicyError",
           "RunError", "SocketAddress", "SystemResolver", "TcpListenSpec", "UdpBindSpec"]
