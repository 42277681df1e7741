"""What TCP and UDP sockets of the core share: modes, options, closing.

Both state machines have an ``UNBOUND`` and a ``CLOSED`` state; the rest
of their states and transitions stay in `tcp.py` and `udp.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from ..errors import ErrorCode, NetError
from .context import InstanceContext

_Made = TypeVar("_Made")


def make_counted(context: InstanceContext, protocol: str, make: Callable[[], _Made]) -> _Made:
    """Make a guest socket's backend socket, counted against `max_sockets`
    before the backend is asked (so a refused create costs nothing)."""
    context.acquire_socket("create", protocol)
    try:
        return make()
    except BaseException:
        context.release_socket()
        raise


def cap_option(context: InstanceContext, name: str, value: int) -> int:
    """Validate an option value; cap buffer sizes at `max_buffer_bytes`."""
    if name in ("hop-limit", "receive-buffer-size", "send-buffer-size") and value <= 0:
        raise NetError(ErrorCode.INVALID_ARGUMENT, f"{name} must be positive")
    if name in ("receive-buffer-size", "send-buffer-size"):
        return min(value, context.limits.max_buffer_bytes)
    return value


class _ModalSocket(Protocol):
    """The part of a backend socket (stream or datagram) used here."""

    def set_blocking(self, blocking: bool) -> None: ...
    def set_timeout(self, seconds: float | None) -> None: ...
    def get_option(self, name: str) -> int: ...
    def set_option(self, name: str, value: int) -> None: ...
    def close(self) -> None: ...


class SocketCore:
    """Blocking mode, timeouts, options and close for a core socket.

    Subclasses set `context`, `sock` (the backend socket), `state` (an enum
    with UNBOUND and CLOSED), `blocking`, `timeout` and `counted`.
    """

    context: InstanceContext
    sock: _ModalSocket
    state: Any
    blocking: bool
    timeout: float | None
    counted: bool

    def set_blocking(self, blocking: bool) -> None:
        self.blocking = blocking
        self._apply_timeout()

    def set_timeout(self, seconds: float | None) -> None:
        if seconds is not None and seconds <= 0:
            raise NetError(ErrorCode.INVALID_ARGUMENT, "timeout must be positive")
        self.timeout = seconds
        self._apply_timeout()

    def _apply_timeout(self) -> None:
        if not self.blocking:
            self.sock.set_blocking(False)
        else:
            self.sock.set_timeout(self.timeout)

    def get_option(self, name: str) -> int:
        return self.sock.get_option(name)

    def set_option(self, name: str, value: int) -> None:
        if name == "reuse-address" and self.state is not type(self.state).UNBOUND:
            raise NetError(ErrorCode.INVALID_STATE,
                           f"set-reuse-address on a {self.state.value} socket")
        self.sock.set_option(name, cap_option(self.context, name, value))

    def close(self) -> None:
        closed = type(self.state).CLOSED
        if self.state is not closed:
            self.state = closed
            try:
                self.sock.close()
            finally:
                if self.counted:
                    self.counted = False
                    self.context.release_socket()
