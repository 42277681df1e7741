"""WIT-facing implementations, one module per `capsock:net` interface.

Each class here only looks up handles, converts WIT values to core types
and calls the core (:mod:`capsock.core`). No policy, no sockets.

The four core interfaces are what every host of `capsock:net` implements;
:data:`EXTENSIONS` names the extension interfaces this host implements
beside them (the conformance harness runs their cases only where a host
says it implements them).
"""

from __future__ import annotations

from typing import Any

from ...core.context import InstanceContext
from .fast_io import FastIo
from .ip_resolve_address import IpResolveAddress
from .socket import Socket
from .socket_tcp import SocketTcp
from .socket_udp import SocketUdp

#: The core interfaces, which every host implements.
CORE = ("socket", "socket-tcp", "socket-udp", "ip-resolve-address")

#: The extension interfaces this host implements too.
EXTENSIONS = ("fast-io",)


def interfaces_for(context: InstanceContext) -> dict[str, Any]:
    """The implementations of every interface for one instance."""
    return {
        "socket": Socket(context),
        "socket-tcp": SocketTcp(context),
        "socket-udp": SocketUdp(context),
        "ip-resolve-address": IpResolveAddress(context),
        "fast-io": FastIo(context),
    }


__all__ = ["CORE", "EXTENSIONS", "interfaces_for"]
