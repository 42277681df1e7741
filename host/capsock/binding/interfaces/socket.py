"""`capsock:net/socket`: pre-opened sockets and readiness polling."""

from __future__ import annotations

from ...backends.base import DatagramSocket, StreamSocket
from ...core.context import InstanceContext, Preopen
from ...errors import ErrorCode, NetError
from ..wit_values import duration_to_seconds


class PreopenedSocket:
    """`resource socket`: a pre-open not yet turned into a typed socket."""

    def __init__(self, preopen: Preopen) -> None:
        self.preopen = preopen

    def protocol(self) -> str:
        return self.preopen.protocol

    def address_family(self) -> str:
        return "ipv6" if self.preopen.ipv6 else "ipv4"

    def drop(self) -> None:
        self.preopen.socket.close()


class Pollable:
    """`resource pollable`: readiness of one socket for one direction.

    It holds the backend socket object, not its handle: once the socket is
    closed it reports ready, so a waiting guest wakes up and notices.
    `poll` receives pollables as borrowed handles, so a guest can only
    wait on pollables it holds. Waiting itself is the backend's job
    (`Backend.poll`): this layer knows no descriptors.
    """

    def __init__(self, context: InstanceContext, sock: StreamSocket | DatagramSocket,
                 readable: bool) -> None:
        self.sock = sock
        self.readable = readable
        self.context = context

    def ready(self) -> bool:
        return bool(_wait(self.context, [self], 0.0))

    def block(self) -> None:
        _wait(self.context, [self], None)


def _wait(context: InstanceContext, pollables: list[Pollable],
          timeout: float | None) -> list[int]:
    return context.backend.poll([(p.sock, p.readable) for p in pollables], timeout)


class Socket:
    """The `socket` interface for one instance."""

    resources = {"socket": PreopenedSocket, "pollable": Pollable}

    def __init__(self, context: InstanceContext) -> None:
        self.context = context

    def preopened_sockets(self) -> list[tuple[PreopenedSocket, str]]:
        return [(PreopenedSocket(p), p.name) for p in self.context.take_preopens()]

    def poll(self, pollables: list[Pollable], timeout: int | None) -> list[int]:
        if not pollables:
            raise NetError(ErrorCode.INVALID_ARGUMENT, "poll needs at least one pollable")
        if len(pollables) > self.context.limits.max_pollables:
            raise self.context.limit_reached("poll", "socket", f"{len(pollables)} pollables",
                                             "max_pollables")
        return _wait(self.context, pollables, duration_to_seconds(timeout))
