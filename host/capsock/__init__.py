"""capsock: capability-based networking for WebAssembly components.

The embedder API (see docs/embedding.md): build a :class:`Policy` (or
write a :class:`Checker` of your own: one ``check(use, target, resolved)``
method deciding each :class:`Use`), choose a
:class:`Backend` (:class:`OsBackend`, the default, or a
:class:`MemoryBackend` over a :class:`VirtualNetwork`) and a
:class:`Resolver`, give them to a :class:`Host`, run a component. Any
backend or resolver is plain Python implementing the protocols in
:mod:`capsock.backends.base`; the binding layer never changes for it.
"""


from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import backends
from .addresses import IPAddress, SocketAddress
from .backends import (
    Backend,
    DatagramSocket,
    DictResolver,
    DnsResolver,
    OsBackend,
    Resolver,
    StreamSocket,
    SystemResolver,
)
from .core.audit import AuditLog
from .core.context import Preopen
from .core.limits import Limits
from .errors import ErrorCode, NetError
from .policy import Checker, Decision, Endpoint, MappingTable, Policy, PolicyError, Use
from .runtime import GuestKilled, Host, KillSwitch, RunError, TcpListenSpec, UdpBindSpec

if TYPE_CHECKING:
    from .backends import (
        MemoryBackend,
        MemoryResolver,
        VirtualConnection,
        VirtualDatagram,
        VirtualListener,
        VirtualNetwork,
    )

__all__ = ["AuditLog", "Backend", "Checker", "DatagramSocket", "Decision", "DictResolver",
           "DnsResolver", "Endpoint", "ErrorCode", "GuestKilled", "Host", "IPAddress",
           "KillSwitch", "Limits", "MappingTable", "MemoryBackend", "MemoryResolver", "NetError",
           "OsBackend",
           "Policy", "PolicyError", "Preopen", "Resolver", "RunError", "SocketAddress",
           "StreamSocket", "SystemResolver", "TcpListenSpec", "UdpBindSpec", "Use",
           "VirtualConnection", "VirtualDatagram", "VirtualListener", "VirtualNetwork"]


def __getattr__(name: str) -> Any:
    """The memory backend's names, imported on first use (`capsock run`
    never needs them; see capsock.backends)."""
    if name in backends.MEMORY_NAMES:
        return getattr(backends, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
