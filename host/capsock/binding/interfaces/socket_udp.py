"""`capsock:net/socket-udp`: not granted by this host yet.

The contract is complete, but this release implements no UDP backend:
`network()` returns none and there is no `--udpbind`, so no guest can hold
a UDP handle. The methods below exist so the registrar can link guests
that import the interface; each reports `not-supported` if ever reached.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

from ...core.context import InstanceContext
from ...errors import ErrorCode, NetError


def _not_supported(name: str) -> Callable[..., NoReturn]:
    def method(*_args: Any) -> NoReturn:
        raise NetError(ErrorCode.NOT_SUPPORTED, f"udp {name} is not implemented by this host")
    method.__name__ = name
    return method


class UdpCapableNetwork:
    """`resource udp-capable-network` (never handed out yet)."""

    create_udp_socket = _not_supported("create_udp_socket")
    restrict = _not_supported("restrict")


class UdpSocketResource:
    """`resource udp-socket` (never handed out yet)."""

    def address_family(self) -> str:
        return "ipv4"

    def subscribe(self, readiness: str) -> Any:
        raise NetError(ErrorCode.NOT_SUPPORTED, "udp subscribe")


for _name in ("bind", "local_address", "connect", "disconnect", "remote_address", "send",
              "receive", "peek", "set_blocking", "set_timeout", "unicast_hop_limit",
              "set_unicast_hop_limit", "receive_buffer_size", "set_receive_buffer_size",
              "send_buffer_size", "set_send_buffer_size", "reuse_address", "set_reuse_address"):
    setattr(UdpSocketResource, _name, _not_supported(_name))


class SocketUdp:
    """The `socket-udp` interface for one instance."""

    resources: dict[str, type] = {
        "udp-capable-network": UdpCapableNetwork,
        "udp-socket": UdpSocketResource,
    }

    def __init__(self, context: InstanceContext) -> None:
        self.context = context

    def network(self) -> None:
        return None

    def udp_socket_from_socket(self, socket: Any) -> NoReturn:
        socket.drop()
        raise NetError(ErrorCode.INVALID_ARGUMENT, "not a UDP socket")
