"""`capsock:net/socket`: pre-opened sockets and readiness polling."""

from __future__ import annotations

import itertools
import select
from typing import Any

from ...core.context import InstanceContext, Preopen
from ...errors import ErrorCode, NetError
from ..wit_values import duration_to_seconds

#: The most pollables one `poll` call may wait on.
MAX_POLLABLES = 4096


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


_POLLABLE_IDS = itertools.count(1)


class Pollable:
    """`resource pollable`: readiness of one socket for one direction.

    It holds the socket object, not its handle: once the socket is closed
    it reports ready, so a waiting guest wakes up and notices. It is
    registered in its instance's `pollables` under an id that `poll`
    takes (see the WIT for why ids and not borrows).
    """

    def __init__(self, context: InstanceContext, sock: Any, readable: bool) -> None:
        self.sock = sock
        self.events = select.POLLIN if readable else select.POLLOUT
        self.context = context
        self.pollable_id = next(_POLLABLE_IDS) & 0xFFFF_FFFF
        context.pollables[self.pollable_id] = self

    def id(self) -> int:
        return self.pollable_id

    def drop(self) -> None:
        self.context.pollables.pop(self.pollable_id, None)

    def fileno(self) -> int:
        try:
            return int(self.sock.fileno())
        except (OSError, ValueError):
            return -1

    def ready(self) -> bool:
        return bool(_wait([self], 0.0))

    def block(self) -> None:
        _wait([self], None)


def _wait(pollables: list[Pollable], timeout: float | None) -> list[int]:
    poller = select.poll()
    ready: list[int] = []
    by_fd: dict[int, list[int]] = {}
    for index, pollable in enumerate(pollables):
        fd = pollable.fileno()
        if fd < 0:
            ready.append(index)
            continue
        by_fd.setdefault(fd, []).append(index)
        poller.register(fd, pollable.events)
    if ready:
        timeout = 0.0
    if by_fd:
        millis = None if timeout is None else max(0, int(timeout * 1000))
        for fd, events in poller.poll(millis):
            for index in by_fd.get(fd, []):
                wanted = pollables[index].events | select.POLLERR | select.POLLHUP | select.POLLNVAL
                if events & wanted:
                    ready.append(index)
    return sorted(set(ready))


class Socket:
    """The `socket` interface for one instance."""

    resources = {"socket": PreopenedSocket, "pollable": Pollable}

    def __init__(self, context: InstanceContext) -> None:
        self.context = context

    def preopened_sockets(self) -> list[tuple[PreopenedSocket, str]]:
        return [(PreopenedSocket(p), p.name) for p in self.context.take_preopens()]

    def poll(self, ids: list[int], timeout: int | None) -> list[int]:
        if not ids:
            raise NetError(ErrorCode.INVALID_ARGUMENT, "poll needs at least one pollable")
        if len(ids) > MAX_POLLABLES:
            raise NetError(ErrorCode.LIMIT_REACHED, f"more than {MAX_POLLABLES} pollables")
        live = self.context.pollables
        try:
            pollables = [live[i] for i in ids]
        except KeyError as missing:
            raise NetError(ErrorCode.INVALID_ARGUMENT, f"no live pollable {missing}") from None
        return _wait(pollables, duration_to_seconds(timeout))
