"""A small event loop: many connections in one guest, no threads.

Tasks are ordinary ``async def`` coroutines. Socket operations are tried
on non-blocking sockets; on ``would-block`` the task awaits readiness, the
loop gathers every waiting task's pollable and makes **one** ``poll`` call
for all of them (the host waits in epoll/poll, no busy loop), then resumes
the ready tasks. Pollables are cached per socket and direction, so a busy
connection costs one host call per operation, not three.

    loop = Loop()

    async def handle(conn):
        while data := await loop.recv(conn, 65536):
            await loop.sendall(conn, data)

    async def serve(listener):
        async for conn, peer in loop.accept_forever(listener):
            loop.spawn(handle(conn))

    loop.spawn(serve(listener))
    loop.run()

A listener the host closes (graceful shutdown) ends `accept_forever`; the
loop then finishes the connections in flight and `run` returns.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator, Coroutine, Generator
from typing import Any

from ._errors import NetError
from ._poll import Pollable, poll
from ._tcp import TcpSocket, TcpStream
from ._udp import UdpSocket

__all__ = ["Loop", "Task"]

_WOULD_BLOCK = "would-block"


class _Wait:
    """Awaitable: suspend the task until `sock` is ready for `readiness`."""

    __slots__ = ("sock", "readiness")

    def __init__(self, sock: TcpSocket | UdpSocket, readiness: str) -> None:
        self.sock = sock
        self.readiness = readiness

    def __await__(self) -> Generator[_Wait, None, None]:
        yield self


class _Yield:
    """Awaitable: go to the back of the ready queue (a schedule point)."""

    __slots__ = ()

    def __await__(self) -> Generator[_Yield, None, None]:
        yield self


_YIELD = _Yield()


class _Sleep:
    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def __await__(self) -> Generator[_Sleep, None, None]:
        yield self


class Task:
    """A spawned coroutine; `error` holds what ended it, if it failed."""

    def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
        self.coro = coro
        self.done = False
        self.error: BaseException | None = None


class Loop:
    """Runs tasks until none is left (or `stop` is called)."""

    def __init__(self) -> None:
        self._ready: deque[Task] = deque()
        #: task -> the pollable it waits for
        self._waiting: dict[Task, Pollable] = {}
        self._sleeping: dict[Task, float] = {}
        self._pollables: dict[tuple[int, str], Any] = {}
        #: ids of sockets whose last `recv` drained them (see `recv`).
        self._drained: set[int] = set()
        self._stopped = False
        self.failures: list[BaseException] = []

    # -- tasks ---------------------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, Any]) -> Task:
        task = Task(coro)
        self._ready.append(task)
        return task

    def stop(self) -> None:
        self._stopped = True

    def run(self) -> None:
        """Run rounds: every ready task steps once, then one poll (without
        waiting when some task is still ready), so a connection that always
        has data cannot starve the others."""
        while not self._stopped and (self._ready or self._waiting or self._sleeping):
            for _ in range(len(self._ready)):
                self._step(self._ready.popleft())
            if self._waiting or self._sleeping:
                self._wait_for_events(block=not self._ready)

    def _step(self, task: Task) -> None:
        try:
            request = task.coro.send(None)
        except StopIteration:
            task.done = True
            return
        except BaseException as error:  # a handler failed: log, keep serving
            task.done = True
            task.error = error
            self.failures.append(error)
            return
        kind = request.__class__  # an identity test, commonest first: this is per operation
        if kind is _Wait:
            self._waiting[task] = self._pollable(request)
        elif kind is _Yield:
            self._ready.append(task)
        elif kind is _Sleep:
            self._sleeping[task] = request.deadline
        else:
            raise TypeError(f"tasks may only await loop operations, got {request!r}")

    def _wait_for_events(self, block: bool) -> None:
        waiting = self._waiting
        timeout: float | None = None if block else 0.0
        if self._sleeping and block:
            timeout = max(0.0, min(self._sleeping.values()) - time.monotonic())
        if waiting:
            tasks = list(waiting)
            for index in poll(list(waiting.values()), timeout):
                task = tasks[index]
                del waiting[task]
                self._ready.append(task)
        elif timeout:
            time.sleep(timeout)
        if self._sleeping:
            now = time.monotonic()
            for task, deadline in list(self._sleeping.items()):
                if deadline <= now:
                    del self._sleeping[task]
                    self._ready.append(task)

    def _pollable(self, wait: _Wait) -> Pollable:
        """The (cached) pollable for a socket and direction."""
        key = (id(wait.sock), wait.readiness)
        pollable = self._pollables.get(key)
        if pollable is None:
            pollable = wait.sock.subscribe(wait.readiness)
            self._pollables[key] = pollable
        return pollable

    def forget(self, sock: TcpSocket | UdpSocket) -> None:
        """Drop the cached pollables of a socket about to be closed."""
        self._drained.discard(id(sock))
        for readiness in ("readable", "writable"):
            pollable = self._pollables.pop((id(sock), readiness), None)
            if pollable is not None:
                pollable.close()

    def close(self, sock: TcpSocket | UdpSocket) -> None:
        self.forget(sock)
        sock.close()

    # -- operations --------------------------------------------------------------
    async def sleep(self, seconds: float) -> None:
        await _Sleep(time.monotonic() + seconds)

    async def accept(self, listener: TcpSocket) -> tuple[TcpStream, Any]:
        listener.set_blocking(False)
        while True:
            try:
                conn, peer = listener.accept()
            except NetError as error:
                if error.code != _WOULD_BLOCK:
                    raise
                await _Wait(listener, "readable")
                continue
            conn.set_blocking(False)
            return conn, peer

    async def accept_forever(self, listener: TcpSocket) -> AsyncIterator[tuple[TcpStream, Any]]:
        """Yield connections until the listener fails (e.g. shut down)."""
        while True:
            try:
                yield await self.accept(listener)
            except NetError as error:
                if error.code in ("connection-aborted", "limit-reached"):
                    continue
                return

    async def recv(self, conn: TcpSocket, size: int) -> bytes:
        """Receive without blocking the other tasks.

        A short read means the socket was drained, so the next `recv` on
        it waits for readiness first instead of spending a host call on a
        receive that would block (request/response: 3 host calls per
        exchange instead of 5). A full read means a busy stream: it yields
        so that the other connections get their turn.
        """
        key = id(conn)
        if key in self._drained:
            await _Wait(conn, "readable")
        while True:
            try:
                data = conn.recv(size)
            except NetError as error:
                if error.code != _WOULD_BLOCK:
                    raise
                await _Wait(conn, "readable")
                continue
            if len(data) < size:
                self._drained.add(key)
            else:
                self._drained.discard(key)
                await _YIELD  # fairness: let the other connections run
            return data

    async def send(self, conn: TcpSocket, data: bytes | bytearray | memoryview) -> int:
        while True:
            try:
                return conn.send(data)
            except NetError as error:
                if error.code != _WOULD_BLOCK:
                    raise
                await _Wait(conn, "writable")

    async def sendall(self, conn: TcpSocket, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        while view:
            sent = await self.send(conn, view)
            view = view[sent:]

    async def splice(self, source: TcpSocket, target: TcpSocket,
                     max_len: int = 1 << 62) -> int:
        """`TcpSocket.splice` without blocking the other tasks.

        Like `recv`: a splice that moved less than ``max_len`` stopped
        because ``source`` ran dry (or ``target`` filled up), so the next
        one waits for ``source`` first instead of spending a host call on
        a ``would-block`` (request/response: 2 host calls per exchange
        instead of 4). A would-block right after ``source`` was readable
        means ``target`` is full, so the next wait is for ``target``.
        """
        key = id(source)
        readable = False
        if key in self._drained:
            await _Wait(source, "readable")
            readable = True
        while True:
            try:
                moved = source.splice(target, max_len)
            except NetError as error:
                if error.code != _WOULD_BLOCK:
                    raise
                if readable:
                    await _Wait(target, "writable")
                    readable = False
                else:
                    await _Wait(source, "readable")
                    readable = True
                continue
            if moved < max_len:
                self._drained.add(key)
            else:
                self._drained.discard(key)
                await _YIELD  # fairness: let the other connections run
            return moved

    async def connect(self, conn: TcpSocket, address: Any) -> None:
        conn.set_blocking(False)
        while True:
            try:
                conn.connect(address)
                return
            except NetError as error:
                if error.code != _WOULD_BLOCK:
                    raise
                await _Wait(conn, "writable")

    async def recvfrom(self, sock: UdpSocket, size: int) -> tuple[bytes, Any]:
        """One datagram and its sender, waiting with the other tasks (UDP
        servers that also serve TCP, e.g. syslog, need both in one loop)."""
        sock.set_blocking(False)
        while True:
            try:
                data, sender = sock.recvfrom(size)
            except NetError as error:
                if error.code != _WOULD_BLOCK:
                    raise
                await _Wait(sock, "readable")
                continue
            await _YIELD
            return data, sender
