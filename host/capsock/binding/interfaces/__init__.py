"""WIT-facing implementations, one module per `capsock:net` interface.

Each class here only looks up handles, converts WIT values to core types
and calls the core (:mod:`capsock.core`). No policy, no sockets.

The four core interfaces are what every host of `capsock:net` implements;
:data:`EXTENSIONS` names the extension interfaces this host implements
beside them (the conformance harness runs their cases only where a host
says it implements them).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ...backends.base import DatagramSocket, StreamSocket
from ...backends.tls import transport_of
from ...core.context import InstanceContext
from .common import SocketResource
from .fast_io import FastIo
from .ip_resolve_address import IpResolveAddress
from .socket import Pollable, PreopenedSocket, Socket
from .socket_tcp import SocketTcp
from .socket_udp import SocketUdp
from .tls import Tls

#: The core interfaces, which every host implements.
CORE = ("socket", "socket-tcp", "socket-udp", "ip-resolve-address")

#: The extension interfaces this host implements too.
EXTENSIONS = ("fast-io", "tls")


def interfaces_for(context: InstanceContext) -> dict[str, Any]:
    """The implementations of every interface for one instance."""
    return {
        "socket": Socket(context),
        "socket-tcp": SocketTcp(context),
        "socket-udp": SocketUdp(context),
        "ip-resolve-address": IpResolveAddress(context),
        "fast-io": FastIo(context),
        "tls": Tls(context),
    }


def held_sockets(context: InstanceContext,
                 handles: Iterable[object]) -> list[StreamSocket | DatagramSocket]:
    """Every backend socket the instance could be blocked on: its unclaimed
    pre-opens, and what its live handles hold (a socket resource's core
    socket, a claimed pre-open, a pollable's or a WASI stream's socket),
    each once. The kill
    switch asks the backend to interrupt these."""
    with context.lock:
        found = [preopen.socket for preopen in context.preopens]
    for obj in handles:
        if isinstance(obj, SocketResource):
            found.append(obj.core.sock)
        elif isinstance(obj, PreopenedSocket):
            found.append(obj.preopen.socket)
        elif isinstance(obj, Pollable):
            found.append(obj.sock)
        else:  # the WASI host's streams and pollables say what they wait on
            held = getattr(obj, "held_socket", None)
            sock = held() if callable(held) else None
            if sock is not None:
                found.append(sock)
    unique: dict[int, StreamSocket | DatagramSocket] = {}
    for sock in found:
        sock = transport_of(sock)  # a TLS layer: the backend socket beneath
        unique.setdefault(id(sock), sock)
    return list(unique.values())


__all__ = ["CORE", "EXTENSIONS", "held_sockets", "interfaces_for"]
