"""`capsock:net/socket-tcp`: the TCP capability and sockets."""

from __future__ import annotations

from typing import Any, cast

from ...addresses import SocketAddress
from ...backends.base import StreamSocket
from ...core.context import InstanceContext
from ...core.tcp import TcpSocket, TcpState, open_tcp
from ...errors import ErrorCode, NetError
from ...policy import Checker, narrow
from ..restriction import parse_restriction
from ..wit_values import (
    family_is_ipv6,
)
from .common import SocketResource
from .socket import PreopenedSocket


class TcpCapableNetwork:
    """`resource tcp-capable-network`: creates sockets under a checker."""

    def __init__(self, context: InstanceContext, checker: Checker) -> None:
        self.context = context
        self.checker = checker

    def create_tcp_socket(self, family: str) -> TcpSocketResource:
        ipv6 = family_is_ipv6(family)
        return TcpSocketResource(open_tcp(self.context, self.checker, ipv6))

    def restrict(self, rules: list[str]) -> TcpCapableNetwork:
        narrower = narrow(self.checker, parse_restriction(rules, "tcp"))
        return TcpCapableNetwork(self.context, narrower)


class TcpSocketResource(SocketResource, protocol="tcp"):
    """`resource tcp-socket`: WIT conversions around a core TcpSocket."""

    def __init__(self, core: TcpSocket) -> None:
        self.core: TcpSocket = core

    def address_family(self) -> str:
        return "ipv6" if self.core.ipv6 else "ipv4"

    def bind(self, local_address: SocketAddress) -> None:
        self.core.bind(local_address)

    def listen(self, backlog: int) -> None:
        self.core.listen(backlog)

    def accept(self) -> tuple[TcpSocketResource, SocketAddress]:
        child, peer = self.core.accept()
        return TcpSocketResource(child), peer

    def connect(self, remote_address: SocketAddress) -> None:
        self.core.connect(remote_address)

    def receive(self, max_len: int) -> bytes:
        return self.core.receive(max_len)

    def peek(self, max_len: int) -> bytes:
        return self.core.receive(max_len, peek=True)

    def send(self, data: bytes) -> int:
        return self.core.send(data)

    def local_address(self) -> SocketAddress:
        return self.core.local_address()

    def remote_address(self) -> SocketAddress:
        return self.core.remote_address()

    def is_listening(self) -> bool:
        return self.core.state is TcpState.LISTENING

    def shutdown(self, shutdown_type: str) -> None:
        self.core.shutdown(shutdown_type in ("receive", "both"), shutdown_type in ("send", "both"))


class SocketTcp:
    """The `socket-tcp` interface for one instance."""

    resources: dict[str, type] = {
        "tcp-capable-network": TcpCapableNetwork,
        "tcp-socket": TcpSocketResource,
    }

    def __init__(self, context: InstanceContext) -> None:
        self.context = context

    def network(self) -> TcpCapableNetwork | None:
        if not self.context.grants("tcp"):
            return None
        return TcpCapableNetwork(self.context, self.context.checker)

    def tcp_socket_from_socket(self, socket: Any) -> TcpSocketResource:
        assert isinstance(socket, PreopenedSocket)
        preopen = socket.preopen
        if preopen.protocol != "tcp":
            socket.drop()
            raise NetError(ErrorCode.INVALID_ARGUMENT, f"{preopen.name} is not a TCP socket")
        # protocol "tcp" means the host made it with backend.adopt_tcp.
        stream = cast(StreamSocket, preopen.socket)
        core = TcpSocket(self.context, self.context.checker, stream, preopen.ipv6,
                         TcpState.LISTENING)
        return TcpSocketResource(core)
