"""Backends: what a socket really is (the OS, or an embedder's own)."""

from .base import Backend, StreamSocket
from .os import OsBackend

__all__ = ["Backend", "OsBackend", "StreamSocket"]
