"""Backends: what a socket really is (the OS, a virtual network, or an
embedder's own). Every backend implements :class:`Backend`; the core and
the binding layer never know which one they run on.

The memory backend is imported on first use (PEP 562 ``__getattr__``):
``capsock run`` never needs it, and importing it is ~10 % of a warm start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import Backend, DatagramSocket, Resolver, StreamSocket
from .os import OsBackend
from .resolvers import DictResolver, DnsResolver, SystemResolver

if TYPE_CHECKING:
    from .memory import (
        MemoryBackend,
        MemoryResolver,
        VirtualConnection,
        VirtualDatagram,
        VirtualListener,
        VirtualNetwork,
    )

#: The names that import the memory backend on first use (capsock's
#: package namespace re-exports them through this same set).
MEMORY_NAMES = {"MemoryBackend", "MemoryResolver", "VirtualConnection", "VirtualDatagram",
                "VirtualListener", "VirtualNetwork"}

__all__ = ["Backend", "DatagramSocket", "DictResolver", "DnsResolver", "MemoryBackend",
           "MemoryResolver", "OsBackend", "Resolver", "StreamSocket", "SystemResolver",
           "VirtualConnection", "VirtualDatagram", "VirtualListener", "VirtualNetwork"]


def __getattr__(name: str) -> Any:
    if name in MEMORY_NAMES:
        from . import memory
        return getattr(memory, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
