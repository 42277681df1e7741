"""Backends: what a socket really is (the OS, or an embedder's own)."""

from .base import Backend, DatagramSocket, Resolver, StreamSocket
from .os import OsBackend

__all__ = ["Backend", "DatagramSocket", "OsBackend", "Resolver", "StreamSocket"]
