"""WIT-facing implementations, one module per `capsock:net` interface.

Each class here only looks up handles, converts WIT values to core types
and calls the core (:mod:`capsock.core`). No policy, no sockets.
"""

from __future__ import annotations

from typing import Any

from ...core.context import InstanceContext
from .ip_resolve_address import IpResolveAddress
from .socket import Socket
from .socket_tcp import SocketTcp
from .socket_udp import SocketUdp


def interfaces_for(context: InstanceContext) -> dict[str, Any]:
    """The implementations of every interface for one instance."""
    return {
        "socket": Socket(context),
        "socket-tcp": SocketTcp(context),
        "socket-udp": SocketUdp(context),
        "ip-resolve-address": IpResolveAddress(context),
    }


__all__ = ["interfaces_for"]
