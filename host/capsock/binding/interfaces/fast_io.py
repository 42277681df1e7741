"""`capsock:net/fast-io`: the byte lanes and `splice`, an extension.

Every function takes the socket as a borrowed handle (the registrar hands
over the resource object behind it) and delegates to that resource's core
function: the lanes only change how the bytes are spelled, so the state,
limit and policy checks are the core's own. `splice` takes its target as
a second borrowed handle, so a guest can name only a socket it holds
(the rule that makes two borrows in one call work is in
:mod:`capsock.binding.handles`).
"""

from __future__ import annotations

from typing import Any

from ...addresses import SocketAddress
from ...core.context import InstanceContext
from ..wit_values import bytes_from_hex, bytes_from_latin1, bytes_to_hex, bytes_to_latin1
from .socket_tcp import TcpSocketResource
from .socket_udp import UdpSocketResource


class FastIo:
    """The `fast-io` interface for one instance."""

    resources: dict[str, type] = {}  # its resources are the core's (`use`d)

    def __init__(self, context: InstanceContext) -> None:
        self.context = context

    # -- TCP lanes ----------------------------------------------------------
    # The receives spell the bytes themselves (`bytes_to_latin1`,
    # `bytes_to_hex`, written out: one frame less on every byte a guest's
    # BSD layer reads).
    @staticmethod
    def tcp_receive_latin1(socket: TcpSocketResource, max_len: int) -> str:
        return socket.core.receive(max_len).decode("latin-1")

    @staticmethod
    def tcp_send_latin1(socket: TcpSocketResource, data: str) -> int:
        return socket.core.send(bytes_from_latin1(data))

    @staticmethod
    def tcp_receive_hex(socket: TcpSocketResource, max_len: int) -> str:
        return socket.core.receive(max_len).hex()

    @staticmethod
    def tcp_send_hex(socket: TcpSocketResource, data: str) -> int:
        return socket.core.send(bytes_from_hex(data))

    # -- UDP lanes ----------------------------------------------------------
    @staticmethod
    def udp_receive_latin1(socket: UdpSocketResource, max_len: int) -> dict[str, Any]:
        datagram = socket.receive(max_len)
        datagram["data"] = bytes_to_latin1(datagram["data"])
        return datagram

    @staticmethod
    def udp_send_latin1(socket: UdpSocketResource, data: str,
                        remote_address: SocketAddress | None) -> int:
        return socket.send(bytes_from_latin1(data), remote_address)

    @staticmethod
    def udp_receive_hex(socket: UdpSocketResource, max_len: int) -> dict[str, Any]:
        datagram = socket.receive(max_len)
        datagram["data"] = bytes_to_hex(datagram["data"])
        return datagram

    @staticmethod
    def udp_send_hex(socket: UdpSocketResource, data: str,
                     remote_address: SocketAddress | None) -> int:
        return socket.send(bytes_from_hex(data), remote_address)

    # -- splice -------------------------------------------------------------
    @staticmethod
    def splice(source: TcpSocketResource, target: TcpSocketResource, max_len: int) -> int:
        return source.core.splice(target.core, max_len)
