"""WIT methods every socket resource shares: modes, buffers, lifetime.

`tcp-socket` and `udp-socket` spell these the same way in the contract,
so one mixin implements them over the core's `SocketCore`.
"""

from __future__ import annotations

from ...core.tcp import TcpSocket
from ...core.udp import UdpSocket
from ..wit_values import duration_to_seconds
from .socket import Pollable


class SocketResource:
    """Mixin for resource classes holding a core socket in `self.core`."""

    core: TcpSocket | UdpSocket

    def set_blocking(self, value: bool) -> None:
        self.core.set_blocking(value)

    def set_timeout(self, timeout: int | None) -> None:
        self.core.set_timeout(duration_to_seconds(timeout))

    def subscribe(self, readiness: str) -> Pollable:
        return Pollable(self.core.context, self.core.sock, readable=readiness == "readable")

    def receive_buffer_size(self) -> int:
        return self.core.get_option("receive-buffer-size")

    def set_receive_buffer_size(self, value: int) -> None:
        self.core.set_option("receive-buffer-size", value)

    def send_buffer_size(self) -> int:
        return self.core.get_option("send-buffer-size")

    def set_send_buffer_size(self, value: int) -> None:
        self.core.set_option("send-buffer-size", value)

    def reuse_address(self) -> bool:
        return bool(self.core.get_option("reuse-address"))

    def set_reuse_address(self, value: bool) -> None:
        self.core.set_option("reuse-address", int(value))

    def drop(self) -> None:
        self.core.close()
