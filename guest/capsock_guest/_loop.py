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

A task that raises ends the run, as in ``asyncio.run`` and trio: `run`
closes every other task (their ``finally`` blocks run, closing their
sockets) and raises the exception. A server that wants to outlive a
failing connection catches in its handler what it can survive.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Generator
from typing import Any, TypeVar

from ._errors import NetError
from ._poll import Pollable, poll
from ._tcp import TcpSocket, TcpStream
from ._udp import UdpSocket

__all__ = ["Loop", "Task", "SocketState"]

_WOULD_BLOCK = "would-block"
_T = TypeVar("_T")
Socket = TcpSocket | UdpSocket
#: what to wait for, in turn, each time an operation would block
Waits = tuple[tuple[Socket, str], ...]


class SocketState:
    """What a loop keeps about one socket, held by the socket itself
    (``sock.loop_state``) so that it lives and dies with the socket.

    Keyed by ``id(sock)`` instead, a socket closed without `Loop.close`
    left its entries behind, and the next socket Python allocated at the
    same address inherited them: a pollable of a closed socket (which
    reports ready forever) and a stale "drained" mark, so its task spun
    instead of waiting. Here a closed socket's pollables go with the
    socket object (the bindings drop a resource when it is collected),
    or at once through `Loop.close`.
    """

    __slots__ = ("readable", "writable", "drained")

    def __init__(self) -> None:
        self.readable: Pollable | None = None
        self.writable: Pollable | None = None
        #: the last `Loop.recv`/`Loop.splice` came back short (see `Loop.recv`)
        self.drained = False

    def close(self) -> None:
        for pollable in (self.readable, self.writable):
            if pollable is not None:
                pollable.close()
        self.readable = self.writable = None


def _attach(sock: Socket) -> SocketState:
    """A fresh `SocketState` on ``sock`` (its first operation in a loop)."""
    state = sock.loop_state = SocketState()
    return state


def _pollable(sock: Socket, readiness: str) -> Pollable:
    """The socket's cached pollable for ``"readable"`` or ``"writable"``."""
    state = sock.loop_state or _attach(sock)
    if readiness == "readable":
        if state.readable is None:
            state.readable = sock.subscribe(readiness)
        return state.readable
    if state.writable is None:
        state.writable = sock.subscribe(readiness)
    return state.writable


class _Wait:
    """Awaitable: suspend the task until `pollable` is ready."""

    __slots__ = ("pollable",)

    def __init__(self, pollable: Pollable) -> None:
        self.pollable = pollable

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


async def _nonblocking(waits: Waits, operation: Callable[..., _T], *args: Any) -> _T:
    """``operation(*args)`` on a non-blocking socket: the one place that
    tries, catches ``would-block`` and waits (trio's
    ``_nonblocking_helper``). Each would-block waits for the next entry
    of ``waits`` in turn (`Loop.splice` alternates between its two
    sockets); one entry is the common case. Returns at once when the
    operation succeeds: the caller decides about yielding (fairness)."""
    turn = 0
    while True:
        try:
            return operation(*args)
        except NetError as error:
            if error.code != _WOULD_BLOCK:
                raise
        sock, readiness = waits[turn]
        turn = (turn + 1) % len(waits)
        await _Wait(_pollable(sock, readiness))


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
        self._stopped = False

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
        has data cannot starve the others.

        When a task raises, the round ends there, every other task is
        closed (``GeneratorExit`` at its ``await``, so its ``finally``
        blocks run) and the exception is raised from here."""
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
        except BaseException as error:
            task.error = error
        else:
            kind = request.__class__  # an identity test, commonest first: this is per operation
            if kind is _Wait:
                self._waiting[task] = request.pollable
                return
            if kind is _Yield:
                self._ready.append(task)
                return
            if kind is _Sleep:
                self._sleeping[task] = request.deadline
                return
            task.coro.close()
            task.error = TypeError(f"tasks may only await loop operations, got {request!r}")
        task.done = True
        self._fail(task)

    def _fail(self, failed: Task) -> None:
        """Close every other task, then raise ``failed``'s error."""
        error = failed.error
        assert error is not None
        others = [*self._ready, *self._waiting, *self._sleeping]
        self._ready.clear()
        self._waiting.clear()
        self._sleeping.clear()
        for task in others:
            task.done = True
            try:
                task.coro.close()
            except BaseException as other:  # e.g. a ``finally`` that awaits
                error.add_note(f"closing another task raised {other!r}")
        raise error

    def _wait_for_events(self, block: bool) -> None:
        waiting = self._waiting
        timeout: float | None = None if block else 0.0
        if self._sleeping and block:
            timeout = max(0.0, min(self._sleeping.values()) - time.monotonic())
        if waiting:
            tasks = list(waiting)
            for index in poll(list(waiting.values()), timeout):  # the one poll call
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

    def forget(self, sock: Socket) -> None:
        """Drop what the loop keeps about ``sock`` (its pollables) now
        rather than when the socket object is collected: before closing
        it, or handing it to blocking code."""
        state, sock.loop_state = sock.loop_state, None
        if state is not None:
            state.close()

    def close(self, sock: Socket) -> None:
        """`forget` the socket, then close it."""
        self.forget(sock)
        sock.close()

    # -- operations --------------------------------------------------------------
    async def sleep(self, seconds: float) -> None:
        await _Sleep(time.monotonic() + seconds)

    async def accept(self, listener: TcpSocket) -> tuple[TcpStream, Any]:
        listener.set_blocking(False)
        conn, peer = await _nonblocking(((listener, "readable"),), listener.accept)
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
        state = conn.loop_state or _attach(conn)
        if state.drained:
            await _Wait(state.readable or _pollable(conn, "readable"))
        data = await _nonblocking(((conn, "readable"),), conn.recv, size)
        if len(data) < size:
            state.drained = True
        else:
            state.drained = False
            await _YIELD  # fairness: let the other connections run
        return data

    async def send(self, conn: TcpSocket, data: bytes | bytearray | memoryview) -> int:
        return await _nonblocking(((conn, "writable"),), conn.send, data)

    async def sendall(self, conn: TcpSocket, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        waits: Waits = ((conn, "writable"),)
        while view:
            sent = await _nonblocking(waits, conn.send, view)
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
        state = source.loop_state or _attach(source)
        waits: Waits
        if state.drained:
            await _Wait(state.readable or _pollable(source, "readable"))
            waits = ((target, "writable"), (source, "readable"))
        else:
            waits = ((source, "readable"), (target, "writable"))
        moved = await _nonblocking(waits, source.splice, target, max_len)
        if moved < max_len:
            state.drained = True
        else:
            state.drained = False
            await _YIELD  # fairness: let the other connections run
        return moved

    async def connect(self, conn: TcpSocket, address: Any) -> None:
        conn.set_blocking(False)
        await _nonblocking(((conn, "writable"),), conn.connect, address)

    async def recvfrom(self, sock: UdpSocket, size: int) -> tuple[bytes, Any]:
        """One datagram and its sender, waiting with the other tasks (UDP
        servers that also serve TCP, e.g. syslog, need both in one loop)."""
        sock.set_blocking(False)
        received = await _nonblocking(((sock, "readable"),), sock.recvfrom, size)
        await _YIELD
        return received
