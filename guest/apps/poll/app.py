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
"""

from __future__ import annotations

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
    return 0


def main(argv: list[str]) -> int:
    commands = {"wait": wait, "nonblocking": nonblocking, "timeout": timeout, "multi": multi,
                "splice": splice}
    if not argv or argv[0] not in commands:
        print(f"usage: poll {{{'|'.join(commands)}}} ARGS", file=sys.stderr)
        return 2
    return commands[argv[0]](*argv[1:])  # type: ignore[operator, no-any-return]


Run = cg.run_main(main)
