"""``socket.socketpair()`` in a guest: two connected stream sockets in the guest's own memory.

Why in the guest and not in the host: a pair is a channel between two
parts of one program, and a guest is one program with one thread (threads
run inline, `capsock_guest._threads`). Bytes written to one end wait in a
buffer of the other end, in the guest's memory, and never cross into the
host: no host call, no policy question (nothing leaves the instance), no
capability needed. What code written for the OS's pair relies on works:

- ``send``/``sendall``/``recv``/``recv_into``/``makefile``, ``shutdown``
  (``SHUT_WR`` gives the peer end of stream), ``close`` (the peer reads
  end of stream; its sends raise `BrokenPipeError`), ``setblocking``,
  ``settimeout``, ``fileno`` (a fake descriptor like every capsock socket);
- ``selectors``, ``select.select``/``poll`` and asyncio (``loop.sock_recv``,
  ``add_reader``, ``asyncio.open_connection(sock=...)``) see an end as
  readable when it holds data or end of stream, and as always writable:
  `capsock_guest.bsd_selectors` checks pair ends in the guest and then
  polls the host's sockets without waiting when one is ready.

What differs from the OS's pair: the buffer has no limit (a send always
takes everything: nothing else could drain it while the only thread is
blocked in ``send``), and a blocking ``recv`` on an empty end whose peer is
open cannot wait for another thread: with a timeout it sleeps the timeout
and raises `TimeoutError`, without one it raises `RuntimeError` naming
capsock (it would wait forever, like the untimed thread waits of
`capsock_guest._threads`). Only ``SOCK_STREAM``; the family is
``AF_INET`` or ``AF_INET6`` (there is no ``AF_UNIX``), the addresses are
the unspecified one, port 0.
"""

from __future__ import annotations

import errno as _errno
import time
from typing import Any

from . import bsd

__all__ = ["PairSocket", "socketpair"]


class PairSocket(bsd.socket):
    """One end of `socketpair` (see the module docstring)."""

    _peer: PairSocket | None
    _inbox: bytearray
    _eof: bool  # the peer shut down writing or closed: recv returns b"" once empty

    def __init__(self, family: int) -> None:  # noqa: D107  no host socket: not super()
        self._family = bsd.AddressFamily(family)
        self._type = bsd.SocketKind.SOCK_STREAM
        self._proto = 0
        self._tcp = self._udp = None
        self._closed = False
        self._io_refs = 0
        self._timeout = None
        self._connecting = None
        self.name = None
        self._peer = None
        self._inbox = bytearray()
        self._eof = False
        self._fileno = bsd._new_fileno(self)

    # -- readiness, for bsd_selectors ----------------------------------------

    def _ready(self, events: int) -> int:
        """Which of ``events`` (selectors' READ 1, WRITE 2) are ready now."""
        ready = 0
        if self._closed:
            return 0  # as a closed host socket: never ready
        if events & 1 and (self._inbox or self._eof):
            ready |= 1
        if events & 2:
            ready |= 2
        return ready

    # -- lifetime -------------------------------------------------------------

    def _real_close(self) -> None:
        bsd._by_fileno.pop(self._fileno, None)
        peer, self._peer = self._peer, None
        self._inbox.clear()
        if peer is not None:
            peer._eof = True
            peer._peer = None

    def detach(self) -> int:
        raise OSError(_errno.EOPNOTSUPP, "capsock: a socketpair end lives in the guest and "
                                         "cannot be detached")

    # -- data -------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise bsd._bad_fd()

    def send(self, data: Any, flags: int = 0) -> int:
        self._check_open()
        view = memoryview(data).cast("B")
        if self._shut_wr or self._peer is None:
            raise BrokenPipeError(_errno.EPIPE, "Broken pipe")
        self._peer._inbox += view
        return len(view)

    def sendall(self, data: Any, flags: int = 0) -> None:
        self.send(data, flags)

    def sendto(self, data: Any, flags_or_address: Any, address: Any = None) -> int:
        raise OSError(_errno.EISCONN, "Transport endpoint is already connected")

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        self._check_open()
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")
        if not self._inbox and not self._eof:
            self._wait_empty()
        data = bytes(self._inbox[:bufsize])
        if not flags & bsd.MSG_PEEK:
            del self._inbox[:bufsize]
        return data

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        target = memoryview(buffer).cast("B")
        data = self.recv(nbytes or len(target), flags)
        target[:len(data)] = data
        return len(data)

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, Any]:
        return self.recv(bufsize, flags), None

    def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> tuple[int, Any]:
        return self.recv_into(buffer, nbytes, flags), None

    def _wait_empty(self) -> None:
        """An empty end, peer open: nothing in this one-thread guest can fill it."""
        if self._timeout == 0:
            raise BlockingIOError(_errno.EAGAIN, "Resource temporarily unavailable")
        if self._timeout is not None:
            time.sleep(self._timeout)
            raise TimeoutError("timed out")
        raise RuntimeError(
            "capsock: recv on an empty socketpair end would wait forever (a guest has one "
            "thread: nothing else can send to it meanwhile); send first, or wait for it "
            "with selectors/asyncio")

    def shutdown(self, how: int) -> None:
        self._check_open()
        if how in (bsd.SHUT_RD, bsd.SHUT_RDWR):
            self._inbox.clear()
            self._eof = True
        if how in (bsd.SHUT_WR, bsd.SHUT_RDWR):
            self._shut_wr = True
            if self._peer is not None:
                self._peer._eof = True

    # -- set-up and options -----------------------------------------------------

    def bind(self, address: Any) -> None:
        raise OSError(_errno.EINVAL, "Invalid argument")

    def listen(self, backlog: int = 128) -> None:
        raise OSError(_errno.EOPNOTSUPP, "Operation not supported")

    def accept(self) -> tuple[bsd.socket, tuple[Any, ...]]:
        raise OSError(_errno.EINVAL, "Invalid argument")

    def connect(self, address: Any) -> None:
        raise OSError(_errno.EISCONN, "Transport endpoint is already connected")

    def connect_ex(self, address: Any) -> int:
        return _errno.EISCONN

    def setblocking(self, flag: bool) -> None:
        self._timeout = None if flag else 0.0

    def settimeout(self, value: float | None) -> None:
        if value is not None and value < 0:
            raise ValueError("Timeout value out of range")
        self._timeout = value

    def _address(self) -> tuple[Any, ...]:
        self._check_open()
        return ("::", 0, 0, 0) if self._family == bsd.AF_INET6 else ("0.0.0.0", 0)

    def getsockname(self) -> tuple[Any, ...]:
        return self._address()

    def getpeername(self) -> tuple[Any, ...]:
        if self._peer is None:
            raise OSError(_errno.ENOTCONN, "Transport endpoint is not connected")
        return self._address()

    def setsockopt(self, level: int, option: int, value: Any, optlen: int | None = None) -> None:
        self._check_open()  # accepted and meaningless in memory (TCP_NODELAY, buffer sizes)

    def getsockopt(self, level: int, option: int, buflen: int | None = None) -> int:
        self._check_open()
        if (level, option) == (bsd.SOL_SOCKET, bsd.SO_TYPE):
            return int(bsd.SOCK_STREAM)
        return 0

    def __repr__(self) -> str:
        state = "[closed] " if self._closed else ""
        return (f"<capsock socketpair end {state}fd={self.fileno()}, "
                f"family={self._family.name}, type=SOCK_STREAM>")


def socketpair(family: int | None = None, type: int | None = None,
               proto: int = 0) -> tuple[PairSocket, PairSocket]:
    """Two connected stream sockets in the guest's memory (see the module docstring)."""
    family = bsd.AF_INET if family is None else family
    type = int(bsd.SOCK_STREAM) if type is None else type
    if family not in (bsd.AF_INET, bsd.AF_INET6):
        raise OSError(_errno.EAFNOSUPPORT, f"capsock: socketpair family {family} not supported "
                                           "(AF_INET or AF_INET6: there is no AF_UNIX)")
    kind = type & ~(bsd.SOCK_NONBLOCK | bsd.SOCK_CLOEXEC)
    if kind != bsd.SOCK_STREAM:
        raise OSError(_errno.EOPNOTSUPP, "capsock: socketpair supports SOCK_STREAM only")
    a, b = PairSocket(family), PairSocket(family)
    a._peer, b._peer = b, a
    if type & bsd.SOCK_NONBLOCK:
        a.setblocking(False)
        b.setblocking(False)
    return a, b
