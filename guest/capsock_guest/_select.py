"""A drop-in for Python's `select` module (``select.select``, ``select.poll``)
over capsock sockets, for the tutorial servers written with them.

A guest's sockets have no file descriptors (`capsock_guest.bsd.socket.fileno`
is a fake number), so CPython's `select` fails on them with ``EBADF``. This
module takes the same arguments (sockets, or their ``fileno()`` numbers)
and waits with capsock's selector (`capsock_guest.bsd_selectors`), i.e.
one host ``poll`` per call. `select` keeps one selector between calls and
only re-registers what changed, so a server loop that passes the same
lists every time subscribes each socket once.

Readable means data, end of stream, or a connection to accept; writable
means room to send, or a non-blocking connect finished. There is no
out-of-band data, so ``xlist`` and ``POLLPRI`` are never ready. Objects
that are not capsock sockets (``sys.stdin``, files) raise `ValueError`
naming capsock: a guest can wait on its sockets only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from . import bsd, bsd_selectors

__all__ = ["select", "poll", "error", "POLLIN", "POLLPRI", "POLLOUT", "POLLERR", "POLLHUP",
           "POLLNVAL", "POLLRDNORM", "POLLRDBAND", "POLLWRNORM", "POLLWRBAND"]

error = OSError

POLLIN, POLLPRI, POLLOUT, POLLERR, POLLHUP, POLLNVAL = 0x001, 0x002, 0x004, 0x008, 0x010, 0x020
POLLRDNORM, POLLRDBAND, POLLWRNORM, POLLWRBAND = 0x040, 0x080, 0x100, 0x200
_READ_MASK = POLLIN | POLLRDNORM | POLLRDBAND
_WRITE_MASK = POLLOUT | POLLWRNORM | POLLWRBAND

_R, _W = bsd_selectors.EVENT_READ, bsd_selectors.EVENT_WRITE


def _fd(obj: Any) -> int:
    """``obj``'s capsock descriptor (an int or anything with ``fileno()``)."""
    try:
        fd = obj if isinstance(obj, int) else int(obj.fileno())
    except (AttributeError, TypeError, ValueError):
        raise TypeError("argument must be an int, or have a fileno() method.") from None
    if fd < 0:
        raise ValueError(f"file descriptor cannot be a negative integer ({fd})")
    if bsd._lookup_fileno(fd) is None:
        raise ValueError(
            f"capsock: select waits on the guest's capsock sockets only, and {obj!r} is not one "
            "(a guest has no file descriptors)")
    return fd


class _Waiter:
    """One selector kept across calls, re-registered only where the
    wanted events changed (so its cached host pollables are reused)."""

    def __init__(self) -> None:
        self.selector = bsd_selectors.DefaultSelector()

    def wait(self, wanted: dict[int, int], timeout: float | None) -> dict[int, int]:
        sel = self.selector
        for fd in [fd for fd in sel._keys if fd not in wanted or bsd._lookup_fileno(fd) is None]:
            sel.unregister(fd)
        for fd, events in wanted.items():
            key = sel._keys.get(fd)
            if key is None:
                sel.register(fd, events)
            elif key.events != events:
                sel.modify(fd, events)
        if not wanted:
            if timeout is None:
                raise ValueError("capsock: select() with no sockets and no timeout would "
                                 "wait forever")
            sel.select(timeout)  # sleeps
            return {}
        return {key.fd: events for key, events in sel.select(timeout)}


_select_waiter = _Waiter()


def select(rlist: Iterable[Any], wlist: Iterable[Any], xlist: Iterable[Any],
           timeout: float | None = None) -> tuple[list[Any], list[Any], list[Any]]:
    """Wait until some of ``rlist`` can be read or some of ``wlist`` written,
    or ``timeout`` seconds (None: forever); the ready subsets, as CPython's."""
    if timeout is not None:
        timeout = float(timeout)
        if timeout < 0 or math.isnan(timeout):
            raise ValueError("timeout must be non-negative")
    readers, writers, others = list(rlist), list(wlist), list(xlist)
    wanted: dict[int, int] = {}
    for objs, event in ((readers, _R), (writers, _W)):
        for obj in objs:
            fd = _fd(obj)
            wanted[fd] = wanted.get(fd, 0) | event
    for obj in others:
        fd = _fd(obj)
        wanted.setdefault(fd, 0)
    wanted = {fd: events for fd, events in wanted.items() if events}
    if not wanted and others and timeout is None:
        raise ValueError("capsock: select() on xlist only would wait forever "
                         "(capsock sockets have no out-of-band data)")
    ready = _select_waiter.wait(wanted, timeout)
    return ([o for o in readers if ready.get(_fd(o), 0) & _R],
            [o for o in writers if ready.get(_fd(o), 0) & _W],
            [])


class poll:  # noqa: N801  the name of Python's class
    """``select.poll()``: register descriptors with POLLIN/POLLOUT masks,
    then `poll` (milliseconds) for ``[(fd, events)]``."""

    def __init__(self) -> None:
        self._masks: dict[int, int] = {}
        self._waiter = _Waiter()

    def register(self, fd: Any, eventmask: int = POLLIN | POLLPRI | POLLOUT) -> None:
        self._masks[_fd(fd)] = eventmask

    def modify(self, fd: Any, eventmask: int) -> None:
        number = _fd(fd)
        if number not in self._masks:
            raise FileNotFoundError(2, "No such file or directory")
        self._masks[number] = eventmask

    def unregister(self, fd: Any) -> None:
        number = fd if isinstance(fd, int) else int(fd.fileno())
        if self._masks.pop(number, None) is None:
            raise KeyError(fd)

    def poll(self, timeout: float | None = None) -> list[tuple[int, int]]:
        """Ready ``(fd, events)`` pairs; ``timeout`` in milliseconds (None or
        negative: forever). A closed registered socket reports POLLNVAL."""
        seconds = None if timeout is None or timeout < 0 else timeout / 1000
        closed = [(fd, POLLNVAL) for fd in self._masks if bsd._lookup_fileno(fd) is None]
        if closed:
            return closed
        wanted = {}
        for fd, mask in self._masks.items():
            events = (_R if mask & _READ_MASK else 0) | (_W if mask & _WRITE_MASK else 0)
            if events:
                wanted[fd] = events
        ready = self._waiter.wait(wanted, seconds)
        out = []
        for fd, events in ready.items():
            mask = self._masks[fd]
            revents = ((mask & _READ_MASK if events & _R else 0)
                       | (mask & _WRITE_MASK if events & _W else 0))
            if revents:
                out.append((fd, revents))
        return out
