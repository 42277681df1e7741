"""capsock: capability-based networking for WebAssembly components.

The embedder API (see docs/embedding.md): build a :class:`Policy`, choose a
:class:`Backend` (:class:`OsBackend`, the default, or a
:class:`MemoryBackend` over a :class:`VirtualNetwork`) and a
:class:`Resolver`, give them to a :class:`Host`, run a component. Any
backend or resolver is plain Python implementing the protocols in
:mod:`capsock.backends.base`; the binding layer never changes for it.
"""

from .addresses import IPAddress, SocketAddress
from .backends import (
    Backend,
    DatagramSocket,
    DictResolver,
    DnsResolver,
    MemoryBackend,
    MemoryResolver,
    OsBackend,
    Resolver,
    StreamSocket,
    SystemResolver,
    VirtualConnection,
    VirtualDatagram,
    VirtualListener,
    VirtualNetwork,
)
from .core.audit import AuditLog
from .core.context import Preopen
from .core.limits import Limits
from .errors import ErrorCode, NetError
from .policy import Policy, PolicyError
from .runtime import Host, RunError, TcpListenSpec, UdpBindSpec

__all__ = ["AuditLog", "Backend", "DatagramSocket", "DictResolver", "DnsResolver", "ErrorCode",
           "Host", "IPAddress", "Limits", "MemoryBackend", "MemoryResolver", "NetError",
           "OsBackend",
           "Policy", "PolicyError", "Preopen", "Resolver", "RunError", "SocketAddress",
           "StreamSocket", "SystemResolver", "TcpListenSpec", "UdpBindSpec", "VirtualConnection",
           "VirtualDatagram", "VirtualListener", "VirtualNetwork"]
