"""What stream and datagram sockets of the virtual network share.

A :class:`MemoryEndpoint` is one socket's address, mode (blocking, timeout) and
options; its waits go through the network's one condition variable, so
every change anywhere on the network wakes every waiter to re-check.
"""

from __future__ import annotations

import errno
import ipaddress
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ...addresses import IPAddress, SocketAddress
from ...errors import ErrorCode, NetError
from ..errno_map import ERRNO_TO_CODE
from ..options import OPTIONS, RECEIVE_BUFFER_SIZE, SEND_BUFFER_SIZE, SocketOption

if TYPE_CHECKING:
    from .network import VirtualNetwork


def fail(code: int, detail: str) -> NetError:
    """The error the OS backend would return for errno `code`."""
    return NetError(ERRNO_TO_CODE.get(code, ErrorCode.UNKNOWN), detail)


def unspecified(ipv6: bool) -> IPAddress:
    return ipaddress.IPv6Address("::") if ipv6 else ipaddress.IPv4Address("0.0.0.0")


class MemoryEndpoint:
    """A virtual socket's address, mode and options (lock: `network.cond`)."""

    def __init__(self, network: VirtualNetwork, ipv6: bool, peer: bool) -> None:
        self.network = network
        self.ipv6 = ipv6
        #: An in-process peer's socket: may bind addresses that are not local.
        self.peer = peer
        self.local: SocketAddress | None = None
        self.remote: SocketAddress | None = None
        self.port_locked = False
        self.blocking = True
        self.timeout: float | None = None
        #: Option values: the registry's defaults, buffer sizes from the network.
        self.options: dict[SocketOption, int] = {
            option: option.default for option in OPTIONS.values() if option.default is not None}
        self.options[SEND_BUFFER_SIZE] = network.send_buffer
        self.options[RECEIVE_BUFFER_SIZE] = network.receive_buffer

    @property
    def closed(self) -> bool:
        raise NotImplementedError

    def _check_family(self, address: SocketAddress) -> None:
        if address.is_ipv6 != self.ipv6:
            raise fail(errno.EINVAL, "address family does not match the socket's")

    def _wait_until(self, ready: Callable[[], bool], what: str) -> None:
        """Block (lock held) until `ready()`, within this socket's mode:
        would-block when non-blocking, timeout when the timeout passes."""
        if ready():
            return
        if not self.blocking:
            raise fail(errno.EAGAIN, what)
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while not ready():
            if deadline is None:
                self.network.cond.wait()
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise fail(errno.ETIMEDOUT, f"{what}: timed out")
            self.network.cond.wait(remaining)

    def local_address(self) -> SocketAddress:
        with self.network.cond:
            if self.local is None:
                return SocketAddress(unspecified(self.ipv6), 0)
            return self.local

    def remote_address(self) -> SocketAddress:
        with self.network.cond:
            if self.remote is None:
                raise fail(errno.ENOTCONN, "not connected")
            return self.remote

    def set_blocking(self, blocking: bool) -> None:
        with self.network.cond:
            self.blocking = blocking
            self.timeout = None

    def set_timeout(self, seconds: float | None) -> None:
        """Python `socket` semantics: a timeout (or None) means blocking."""
        with self.network.cond:
            self.blocking = True
            self.timeout = seconds

    def get_option(self, option: SocketOption) -> int:
        """What was set, else the default (stored only: nothing here sends
        keep-alives or counts hops)."""
        with self.network.cond:
            value = self.options.get(option)
        if value is None:
            raise NetError(ErrorCode.NOT_SUPPORTED, f"option {option.name}")
        return value

    def set_option(self, option: SocketOption, value: int) -> None:
        with self.network.cond:
            self.options[option] = int(value)
            self.network.cond.notify_all()  # a bigger buffer may unblock a sender

    def fileno(self) -> int:
        """No descriptor: readiness goes through `MemoryBackend.poll`."""
        return -1

    def readable_now(self) -> bool:
        """Whether a read-side wait would return at once (lock held)."""
        raise NotImplementedError

    def writable_now(self) -> bool:
        """Whether a write-side wait would return at once (lock held)."""
        raise NotImplementedError
