"""Readiness, non-blocking and timeout probes, for tests.

    poll wait HOST:PORT MS         connect, wait up to MS ms for data with
                                   one poll; prints "ready: [..] elapsed_ms: N"
    poll nonblocking HOST:PORT     non-blocking recv with no data, and a
                                   non-blocking accept with nobody connecting;
                                   prints "recv: <code>" and "accept: <code>"
    poll timeout HOST:PORT MS      set-timeout(MS) then a blocking recv;
                                   prints "recv: <code> elapsed_ms: N"
    poll multi N                   one poll over N pollables of a listener
                                   (N borrowed handles in one host call);
                                   prints "ready: [..]" and "again: [..]"
    poll splice                    two connections to its own listener, one
                                   splice from one to the other (two
                                   borrowed handles in one host call);
                                   prints "moved: N echoed: DATA"
    poll stale HOST:PORT N         `Loop` after N sockets closed without
                                   `Loop.close` (HOST:PORT: an echo server);
                                   see `stale`
    poll failing                   `Loop.run` when a task raises; see `failing`
"""

from __future__ import annotations

import gc
import sys
import time

import capsock_guest as cg


def _code(action: object) -> str:
    try:
        action()  # type: ignore[operator]
    except cg.NetError as e:
        return e.code
    return "ok"


def wait(address: str, millis: str) -> int:
    with cg.connect(cg.parse_address(address)) as conn:
        pollable = conn.subscribe("readable")
        began = time.monotonic()
        ready = cg.poll([pollable], int(millis) / 1000)
        elapsed = (time.monotonic() - began) * 1000
        print(f"ready: {ready} elapsed_ms: {elapsed:.0f}", flush=True)
        if ready:
            print(f"data: {conn.recv(100).decode()}", flush=True)
        pollable.close()
    return 0


def nonblocking(address: str) -> int:
    with cg.connect(cg.parse_address(address)) as conn:
        conn.set_blocking(False)
        print(f"recv: {_code(lambda: conn.recv(10))}", flush=True)
    with cg.listen(("127.0.0.1", 0)) as listener:
        listener.set_blocking(False)
        print(f"accept: {_code(listener.accept)}", flush=True)
    return 0


def timeout(address: str, millis: str) -> int:
    with cg.connect(cg.parse_address(address)) as conn:
        conn.set_timeout(int(millis) / 1000)
        began = time.monotonic()
        code = _code(lambda: conn.recv(10))
        elapsed = (time.monotonic() - began) * 1000
        print(f"recv: {code} elapsed_ms: {elapsed:.0f}", flush=True)
    return 0


def multi(count: str) -> int:
    """One poll over several pollables (of one listener)."""
    with cg.listen(("127.0.0.1", 0)) as listener:
        pollables = [listener.subscribe("readable") for _ in range(int(count))]
        print(f"ready: {cg.poll(pollables, 0.05)}", flush=True)
        print(f"again: {cg.poll(pollables, 0.05)}", flush=True)
        for pollable in pollables:
            pollable.close()
    return 0


def splice() -> int:
    """`fast-io.splice` between two different sockets: a -> a_peer, spliced
    to b_peer -> b."""
    with cg.listen(("127.0.0.1", 0)) as listener:
        address = listener.local_address()
        a, b = cg.connect(address), cg.connect(address)
        a_peer, _ = listener.accept()
        b_peer, _ = listener.accept()
        a.sendall(b"two borrows")
        moved = a_peer.splice(b_peer, 11)
        print(f"moved: {moved} echoed: {b.recv_exact(11).decode()}", flush=True)
        for sock in (a, b, a_peer, b_peer):
            sock.close()


def stale(address: str, count: str) -> int:
    """N sockets that a `Loop` has waited on and seen drained are closed
    behind its back (``close``, not ``Loop.close``), then N new ones wait
    for data that comes only later. Python reuses a collected object's
    address, and a loop that kept its state by ``id()`` gave a new socket
    at an old one's address the old pollable (ready forever, its socket
    being closed): the task spun through receive attempts instead of
    waiting. Prints how many new sockets sit at an old one's address
    (``reused``), the most receive attempts a new socket made before its
    data was sent (1: one try, then a wait), and what they received."""
    target = cg.parse_address(address)
    loop = cg.Loop()
    n = int(count)

    async def reader(sock: cg.TcpStream) -> None:
        await loop.recv(sock, 100)  # would block: waits on a pollable, then "drained"

    async def writer(socks: list[cg.TcpStream]) -> None:
        for sock in socks:
            await loop.sendall(sock, b"a")

    # The new connections' handles, opened now, wrapped once the old
    # sockets are gone (below).
    handles = [cg.connect(target).raw for _ in range(n)]
    socks = [cg.connect(target) for _ in range(n)]
    for sock in socks:
        sock.set_blocking(False)
        loop.spawn(reader(sock))
    loop.spawn(writer(socks))  # after the readers: they wait before data comes
    loop.run()
    old = {id(sock) for sock in socks}
    for sock in socks:
        sock.close()  # not loop.close: the loop is not told
    del socks, sock
    # A would-block leaves a reference cycle through the bindings'
    # exception: a socket that waited goes with a cyclic collection.
    gc.collect()
    # Wrap each handle in new objects until one sits at an old socket's
    # address, keeping the misses alive so that each try takes another
    # free block (Python reuses freed blocks, but not in a fixed order).
    misses: list[cg.TcpStream] = []
    new: list[cg.TcpStream] = []
    for handle in handles:
        sock = cg.TcpStream(handle)
        while id(sock) not in old and len(misses) < 100_000:
            misses.append(sock)
            sock = cg.TcpStream(handle)
        new.append(sock)
    del misses  # wrappers only: their handles stay open, in `new`
    print(f"reused: {sum(id(sock) in old for sock in new)}", flush=True)
    attempts = [0] * n
    received: list[bytes] = []

    def counting(index: int, sock: cg.TcpStream) -> None:
        plain = sock.recv

        def recv(size: int) -> bytes:
            attempts[index] += 1
            return plain(size)
        sock.recv = recv  # type: ignore[method-assign]

    async def wait_for_data(sock: cg.TcpStream) -> None:
        received.append(await loop.recv(sock, 100))

    async def send_later() -> None:
        await loop.sleep(0.2)
        print(f"attempts before data: {max(attempts)}", flush=True)
        for sock in new:
            await loop.sendall(sock, b"b")

    for index, sock in enumerate(new):
        sock.set_blocking(False)
        counting(index, sock)
        loop.spawn(wait_for_data(sock))
    loop.spawn(send_later())
    loop.run()
    print(f"received: {b''.join(received).decode()} of {n}", flush=True)
    for sock in new:
        loop.close(sock)
    return 0


def failing() -> int:
    """A task raises while others wait (on a socket, on a timer, and one
    whose ``finally`` awaits again): `Loop.run` must raise it, having
    closed the others so that their ``finally`` blocks ran."""
    loop = cg.Loop()
    closed: list[str] = []

    async def waiter(listener: cg.TcpListener) -> None:
        try:
            await loop.accept(listener)  # nobody connects
        finally:
            closed.append("waiter")

    async def sleeper() -> None:
        try:
            await loop.sleep(3600)
        finally:
            closed.append("sleeper")

    async def stubborn() -> None:
        try:
            await loop.sleep(3600)
        finally:
            closed.append("stubborn")
            await loop.sleep(0)  # awaits while being closed: RuntimeError

    async def failer() -> None:
        raise ValueError("boom")

    with cg.listen(("127.0.0.1", 0)) as listener:
        for coro in (waiter(listener), sleeper(), stubborn(), failer()):
            loop.spawn(coro)
        try:
            loop.run()
            print("run returned", flush=True)
        except ValueError as error:
            print(f"run raised: {error!r}", flush=True)
            for note in getattr(error, "__notes__", []):
                print(f"note: {note}", flush=True)
    print(f"closed: {' '.join(closed)}", flush=True)
    loop.run()  # nothing left: returns at once
    print("run again: returned", flush=True)
    return 0


def main(argv: list[str]) -> int:
    commands = {"wait": wait, "nonblocking": nonblocking, "timeout": timeout, "multi": multi,
                "splice": splice, "stale": stale, "failing": failing}
    if not argv or argv[0] not in commands:
        print(f"usage: poll {{{'|'.join(commands)}}} ARGS", file=sys.stderr)
        return 2
    return commands[argv[0]](*argv[1:])  # type: ignore[operator, no-any-return]


Run = cg.run_main(main)
