"""`capsock:net/socket`: pre-opened sockets and readiness polling."""

from __future__ import annotations

from collections.abc import Callable

from ...backends.base import DatagramSocket, StreamSocket
from ...core.context import InstanceContext, Preopen
from ...core.preopens import poll, wait_metered
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
    (`core.preopens.wait`, then `Backend.poll`): this layer knows no
    descriptors.
    """

    def __init__(self, context: InstanceContext, sock: StreamSocket | DatagramSocket,
                 readable: bool, hold: Callable[[], float] = lambda: 0.0) -> None:
        self.sock = sock
        self.readable = readable
        self.context = context
        #: seconds the socket's byte-rate quota keeps it from being ready
        #: (`SocketCore.quota_hold`)
        self.hold = hold

    def ready(self) -> bool:
        return bool(wait_metered(self.context, [(self.sock, self.readable)], 0.0, [self.hold]))

    def block(self) -> None:
        wait_metered(self.context, [(self.sock, self.readable)], None, [self.hold])


class Socket:
    """The `socket` interface for one instance."""

    resources = {"socket": PreopenedSocket, "pollable": Pollable}

    def __init__(self, context: InstanceContext) -> None:
        self.context = context

    def preopened_sockets(self) -> list[tuple[PreopenedSocket, str]]:
        return [(PreopenedSocket(p), p.name) for p in self.context.take_preopens()]

    def poll(self, pollables: list[Pollable], timeout: int | None) -> list[int]:
        return poll(self.context, [(p.sock, p.readable) for p in pollables],
                    duration_to_seconds(timeout),
                    holds=[p.hold for p in pollables] if self.context.quotas.meters_bytes
                    else None)
