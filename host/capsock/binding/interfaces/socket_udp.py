"""`capsock:net/socket-udp`: the UDP capability and sockets."""

from __future__ import annotations

from typing import Any, cast

from ...addresses import SocketAddress
from ...backends.base import DatagramSocket
from ...core.context import InstanceContext
from ...core.udp import UdpSocket, UdpState, open_udp
from ...errors import ErrorCode, NetError
from ...policy import Checker, narrow
from ..restriction import parse_restriction
from ..wit_values import (
    family_is_ipv6,
)
from .common import SocketResource
from .socket import PreopenedSocket


class UdpCapableNetwork:
    """`resource udp-capable-network`: creates sockets under a checker."""

    def __init__(self, context: InstanceContext, checker: Checker) -> None:
        self.context = context
        self.checker = checker

    def create_udp_socket(self, family: str) -> UdpSocketResource:
        ipv6 = family_is_ipv6(family)
        return UdpSocketResource(open_udp(self.context, self.checker, ipv6))

    def restrict(self, rules: list[str]) -> UdpCapableNetwork:
        narrower = narrow(self.checker, parse_restriction(rules, "udp"))
        return UdpCapableNetwork(self.context, narrower)


class UdpSocketResource(SocketResource, protocol="udp"):
    """`resource udp-socket`: WIT conversions around a core UdpSocket."""

    def __init__(self, core: UdpSocket) -> None:
        self.core: UdpSocket = core

    def address_family(self) -> str:
        return "ipv6" if self.core.ipv6 else "ipv4"

    def bind(self, local_address: SocketAddress) -> None:
        self.core.bind(local_address)

    def local_address(self) -> SocketAddress:
        return self.core.local_address()

    def connect(self, remote_address: SocketAddress) -> None:
        self.core.connect(remote_address)

    def disconnect(self) -> None:
        self.core.disconnect()

    def remote_address(self) -> SocketAddress:
        return self.core.remote_address()

    def send(self, data: bytes, remote_address: SocketAddress | None) -> int:
        return self.core.send(data, remote_address)

    def receive(self, max_len: int) -> dict[str, Any]:
        data, sender = self.core.receive(max_len)
        return {"data": data, "remote-address": sender}

    def peek(self, max_len: int) -> dict[str, Any]:
        data, sender = self.core.receive(max_len, peek=True)
        return {"data": data, "remote-address": sender}


class SocketUdp:
    """The `socket-udp` interface for one instance."""

    resources: dict[str, type] = {
        "udp-capable-network": UdpCapableNetwork,
        "udp-socket": UdpSocketResource,
    }

    def __init__(self, context: InstanceContext) -> None:
        self.context = context

    def network(self) -> UdpCapableNetwork | None:
        if not self.context.grants("udp"):
            return None
        return UdpCapableNetwork(self.context, self.context.checker)

    def udp_socket_from_socket(self, socket: Any) -> UdpSocketResource:
        assert isinstance(socket, PreopenedSocket)
        preopen = socket.preopen
        if preopen.protocol != "udp":
            socket.drop()
            raise NetError(ErrorCode.INVALID_ARGUMENT, f"{preopen.name} is not a UDP socket")
        # protocol "udp" means the host made it with backend.adopt_udp.
        datagram = cast(DatagramSocket, preopen.socket)
        core = UdpSocket(self.context, self.context.checker, datagram, preopen.ipv6,
                         UdpState.BOUND, preopened=True)
        return UdpSocketResource(core)
