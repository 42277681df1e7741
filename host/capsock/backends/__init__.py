"""Backends: what a socket really is (the OS, a virtual network, or an
embedder's own). Every backend implements :class:`Backend`; the core and
the binding layer never know which one they run on."""

from .base import Backend, DatagramSocket, Resolver, StreamSocket
from .memory import (
    MemoryBackend,
    MemoryResolver,
    VirtualConnection,
    VirtualDatagram,
    VirtualListener,
    VirtualNetwork,
)
from .os import OsBackend
from .resolvers import DictResolver, DnsResolver, SystemResolver

__all__ = ["Backend", "DatagramSocket", "DictResolver", "DnsResolver", "MemoryBackend",
           "MemoryResolver", "OsBackend", "Resolver", "StreamSocket", "SystemResolver",
           "VirtualConnection", "VirtualDatagram", "VirtualListener", "VirtualNetwork"]
