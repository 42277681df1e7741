"""A drop-in for Python's `selectors` module, over capsock's `poll`.

`DefaultSelector` (also exported as `PollSelector`, `SelectSelector`,
`EpollSelector` so code that picks one by name finds it) waits on capsock
sockets (`capsock_guest.bsd.socket`, or any object whose ``fileno()`` is
one's fake descriptor, like a `socketserver` server) with **one** host
``poll`` call per `select`: each registered socket's ``subscribe``
pollables are cached per direction, and their ids are polled together.

Ready means what the host says: readable = data, end of stream, or a
connection to accept; writable = room to send, or a non-blocking connect
finished (its outcome: ``getsockopt(SOL_SOCKET, SO_ERROR)``). An end of
``socket.socketpair()`` lives in the guest (`capsock_guest._pair`): the
selector asks it directly, and when one is ready it polls the host's
sockets without waiting.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

from wit_world.imports import socket as wsocket

from . import bsd
from ._errors import NetError, call
from ._poll import Pollable

__all__ = [
    "EVENT_READ", "EVENT_WRITE", "SelectorKey", "BaseSelector", "DefaultSelector",
    "PollSelector", "SelectSelector", "EpollSelector",
]

EVENT_READ = 1 << 0
EVENT_WRITE = 1 << 1


class SelectorKey(NamedTuple):
    """What `register` returns, as the stdlib's."""

    fileobj: Any
    fd: int
    events: int
    data: Any


def _fileobj_to_fd(fileobj: Any) -> int:
    fd = fileobj if isinstance(fileobj, int) else int(fileobj.fileno())
    if fd < 0:
        raise ValueError(f"Invalid file descriptor: {fd}")
    return fd


class _Map(Mapping[Any, SelectorKey]):
    def __init__(self, selector: BaseSelector) -> None:
        self._selector = selector

    def __len__(self) -> int:
        return len(self._selector._keys)

    def __getitem__(self, fileobj: Any) -> SelectorKey:
        fd = self._selector._fd(fileobj)
        try:
            return self._selector._keys[fd]
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None

    def __iter__(self) -> Any:
        return iter(self._selector._keys)


class BaseSelector:
    """The stdlib's selector interface, on capsock pollables."""

    def __init__(self) -> None:
        self._keys: dict[int, SelectorKey] = {}
        self._pollables: dict[tuple[int, int], Pollable] = {}
        #: fd -> in-guest socketpair end (readiness asked of it, never polled)
        self._local: dict[int, Any] = {}
        #: What `select` polls, rebuilt only after a change (`_changed`): the
        #: (fd, event) of each pollable, and the raw pollables in that order.
        self._wanted: list[tuple[int, int]] | None = None
        self._raws: list[Any] = []
        self._map: _Map | None = _Map(self)

    def _changed(self) -> None:
        """Registrations changed: `select` rebuilds what it polls."""
        self._wanted = None

    def _fd(self, fileobj: Any) -> int:
        try:
            return _fileobj_to_fd(fileobj)
        except ValueError:
            for key in self._keys.values():
                if key.fileobj is fileobj:
                    return key.fd
            raise

    def register(self, fileobj: Any, events: int, data: Any = None) -> SelectorKey:
        if not events or events & ~(EVENT_READ | EVENT_WRITE):
            raise ValueError(f"Invalid events: {events!r}")
        key = SelectorKey(fileobj, self._fd(fileobj), events, data)
        if key.fd in self._keys:
            raise KeyError(f"{fileobj!r} (FD {key.fd}) is already registered")
        sock = bsd._lookup_fileno(key.fd)
        if sock is None:
            raise ValueError(f"{fileobj!r} is not an open capsock socket")
        if hasattr(sock, "_ready"):
            self._local[key.fd] = sock
        self._keys[key.fd] = key
        self._wanted = None
        return key

    def unregister(self, fileobj: Any) -> SelectorKey:
        try:
            key = self._keys.pop(self._fd(fileobj))
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None
        self._drop(key.fd)
        return key

    def modify(self, fileobj: Any, events: int, data: Any = None) -> SelectorKey:
        fd = self._fd(fileobj)
        try:
            key = self._keys[fd]
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None
        if events != key.events:
            self.unregister(fileobj)
            return self.register(fileobj, events, data)
        if data != key.data:
            key = key._replace(data=data)
            self._keys[fd] = key
        return key

    def _drop(self, fd: int) -> None:
        self._wanted = None
        self._local.pop(fd, None)
        for event in (EVENT_READ, EVENT_WRITE):
            pollable = self._pollables.pop((fd, event), None)
            if pollable is not None:
                pollable.close()

    def _pollable(self, fd: int, event: int) -> Pollable | None:
        pollable = self._pollables.get((fd, event))
        if pollable is None:
            sock = bsd._lookup_fileno(fd)
            raw = None if sock is None else sock._raw_or_none()
            if raw is None:
                return None  # closed while registered: never ready (as an fd-less poll)
            kind = (wsocket.Readiness.READABLE if event == EVENT_READ
                    else wsocket.Readiness.WRITABLE)
            pollable = Pollable(raw.subscribe(kind))
            self._pollables[(fd, event)] = pollable
        return pollable

    def select(self, timeout: float | None = None) -> list[tuple[SelectorKey, int]]:
        """Wait up to ``timeout`` seconds (None: forever, <= 0: not at all)."""
        ready: dict[int, int] = {}
        local = self._local
        if local:
            for fd, sock in local.items():
                events = sock._ready(self._keys[fd].events)
                if events:
                    ready[fd] = events
        wanted = self._wanted
        if wanted is None:
            wanted = self._rebuild()
        wait = 0.0 if ready else None if timeout is None else max(0.0, timeout)
        if not wanted:
            if ready:
                return [(self._keys[fd], events) for fd, events in ready.items()]
            if wait:
                time.sleep(wait)
            elif wait is None:
                raise RuntimeError(
                    "capsock: select() with no host socket to wait on and no timeout would "
                    "wait forever (a guest has one thread; a socketpair end becomes ready "
                    "only when this program writes to its peer)" if local else
                    "select() with nothing registered and no timeout")
            return []
        ns = None if wait is None or math.isinf(wait) else int(wait * 1e9)
        try:
            ready_indexes = call(wsocket.poll, self._raws, ns)
        except NetError as e:
            raise bsd._from_net_error(e) from None
        for index in ready_indexes:
            fd, event = wanted[index]
            ready[fd] = ready.get(fd, 0) | event
        return [(self._keys[fd], events) for fd, events in ready.items()]

    def _rebuild(self) -> list[tuple[int, int]]:
        """The (fd, event) pairs to poll and their raw pollables, subscribing
        where needed (a socket closed while registered is left out: never ready)."""
        wanted: list[tuple[int, int]] = []
        raws: list[Any] = []
        local = self._local
        for key in self._keys.values():
            if key.fd in local:
                continue
            for event in (EVENT_READ, EVENT_WRITE):
                if key.events & event:
                    pollable = self._pollable(key.fd, event)
                    if pollable is not None:
                        wanted.append((key.fd, event))
                        raws.append(pollable.raw)
        self._raws = raws
        self._wanted = wanted
        return wanted

    def close(self) -> None:
        for fd in list(self._keys):
            self._drop(fd)
        self._keys.clear()
        self._map = None

    def get_key(self, fileobj: Any) -> SelectorKey:
        mapping = self.get_map()
        if mapping is None:
            raise RuntimeError("Selector is closed")
        return mapping[fileobj]

    def get_map(self) -> Mapping[Any, SelectorKey] | None:
        return self._map

    def __enter__(self) -> BaseSelector:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()


class DefaultSelector(BaseSelector):
    """The selector to use (one ``poll`` host call per `select`)."""


PollSelector = SelectSelector = EpollSelector = DefaultSelector
