"""`capsock:net/socket-tcp`: the TCP capability and sockets."""

from __future__ import annotations

from typing import Any, cast

from ...backends.base import StreamSocket
from ...core.context import InstanceContext
from ...core.tcp import TcpSocket, TcpState, open_tcp
from ...errors import ErrorCode, NetError
from ...policy import Policy
from ..codec import Case
from ..restriction import parse_restriction
from ..wit_values import (
    address_from_wit,
    address_to_wit,
    family_is_ipv6,
)
from .common import SocketResource
from .socket import PreopenedSocket


class TcpCapableNetwork:
    """`resource tcp-capable-network`: creates sockets under a policy."""

    def __init__(self, context: InstanceContext, policy: Policy) -> None:
        self.context = context
        self.policy = policy

    def create_tcp_socket(self, family: str) -> TcpSocketResource:
        ipv6 = family_is_ipv6(family)
        return TcpSocketResource(open_tcp(self.context, self.policy, ipv6))

    def restrict(self, rules: list[str]) -> TcpCapableNetwork:
        narrower = self.policy.restrict(parse_restriction(rules, "tcp"))
        return TcpCapableNetwork(self.context, narrower)


class TcpSocketResource(SocketResource, protocol="tcp"):
    """`resource tcp-socket`: WIT conversions around a core TcpSocket."""

    def __init__(self, core: TcpSocket) -> None:
        self.core: TcpSocket = core

    def address_family(self) -> str:
        return "ipv6" if self.core.ipv6 else "ipv4"

    def bind(self, local_address: Case) -> None:
        self.core.bind(address_from_wit(local_address))

    def listen(self, backlog: int) -> None:
        self.core.listen(backlog)

    def accept(self) -> tuple[TcpSocketResource, Case]:
        child, peer = self.core.accept()
        return TcpSocketResource(child), address_to_wit(peer)

    def connect(self, remote_address: Case) -> None:
        self.core.connect(address_from_wit(remote_address))

    def receive(self, max_len: int) -> bytes:
        return self.core.receive(max_len)

    def peek(self, max_len: int) -> bytes:
        return self.core.receive(max_len, peek=True)

    def send(self, data: bytes) -> int:
        return self.core.send(data)

    def local_address(self) -> Case:
        return address_to_wit(self.core.local_address())

    def remote_address(self) -> Case:
        return address_to_wit(self.core.remote_address())

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
        if not self.context.policy.grants("tcp"):
            return None
        return TcpCapableNetwork(self.context, self.context.policy)

    def tcp_socket_from_socket(self, socket: Any) -> TcpSocketResource:
        assert isinstance(socket, PreopenedSocket)
        preopen = socket.preopen
        if preopen.protocol != "tcp":
            socket.drop()
            raise NetError(ErrorCode.INVALID_ARGUMENT, f"{preopen.name} is not a TCP socket")
        # protocol "tcp" means the host made it with backend.adopt_tcp.
        stream = cast(StreamSocket, preopen.socket)
        core = TcpSocket(self.context, self.context.policy, stream, preopen.ipv6,
                         TcpState.LISTENING)
        return TcpSocketResource(core)
