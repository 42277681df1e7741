"""TCP echo server.

    echo [HOST:PORT] [--max-connections N] [--splice | --list]

With HOST:PORT, listens there through the TCP capability (port 0 picks a
free port); without, serves the first pre-opened TCP listener
(``--tcplisten``, or one a launcher passed: socket activation), printing
``pre-open NAME`` first. Prints ``listening on HOST:PORT`` once ready, then one
line per connection.

Serves many connections at once from this one instance: every connection
is a task of `capsock_guest.Loop`, which waits for all of them with one
``poll`` host call. ``--max-connections N`` exits after N connections have
been served (finished). ``--splice`` echoes with `fast-io.splice`:
the bytes go from the socket back to itself inside the host and never
enter the guest. ``--list`` echoes through the raw `receive`/`send`
(`list<u8>`) instead of the library's latin-1 lane, blocking, one
connection at a time: the `list<u8>` floor that bench/compare.py shows
next to the lane. When the host shuts the listener down (graceful
shutdown of ``capsock serve``) it stops accepting, finishes the
connections in flight, and exits 0.
"""

from __future__ import annotations

import sys

import capsock_guest as cg


def echo_list(conn: cg.TcpStream) -> int:
    conn.set_blocking(True)
    raw = conn.raw
    total = 0
    while data := raw.receive(65536):
        view = memoryview(data)
        while view:
            view = view[raw.send(bytes(view)):]
        total += len(data)
    return total


async def serve_one(loop: cg.Loop, conn: cg.TcpStream, mode: str = "") -> int:
    total = 0
    try:
        if mode == "list":
            total = echo_list(conn)
        elif mode == "splice":
            while moved := await loop.splice(conn, conn):
                total += moved
        else:
            while chunk := await loop.recv(conn, 65536):
                await loop.sendall(conn, chunk)
                total += len(chunk)
    finally:
        loop.close(conn)
    return total


def open_listener(address: str | None) -> cg.TcpListener | None:
    """Listen on ``address`` via the TCP capability, else the first pre-open."""
    if address:
        return cg.listen(cg.parse_address(address))
    listeners = cg.preopened_tcp_listeners()
    if not listeners:
        return None
    print(f"pre-open {listeners[0].name}", flush=True)  # e.g. a socket unit's fd name
    return listeners[0]


def main(argv: list[str]) -> int | None:
    # Parsed by hand: argparse lazily imports modules (locale, shutil, ...)
    # that componentize-py did not bundle, so it fails at run time.
    address: str | None = None
    max_connections: int | None = None
    mode = ""
    rest = list(argv)
    while rest:
        arg = rest.pop(0)
        if arg == "--max-connections" and rest:
            max_connections = int(rest.pop(0))
        elif arg.startswith("--max-connections="):
            max_connections = int(arg.split("=", 1)[1])
        elif arg in ("--splice", "--list"):
            mode = arg[2:]
        elif not arg.startswith("-") and address is None:
            address = arg
        else:
            print("usage: echo [HOST:PORT] [--max-connections N] [--splice | --list]",
                  file=sys.stderr)
            return 2

    try:
        listener = open_listener(address)
    except cg.NetError as e:
        print(f"error: {e.code}", file=sys.stderr, flush=True)
        return 1
    if listener is None:
        print("echo: no address given and no pre-opened TCP listener",
              file=sys.stderr)
        return 1
    print(f"listening on {cg.format_address(listener.local_address())}", flush=True)

    loop = cg.Loop()
    served = 0

    async def connection(number: int, conn: cg.TcpStream, peer: cg.Address) -> None:
        nonlocal served
        try:
            n = await serve_one(loop, conn, mode)
            print(f"connection {number} from {cg.format_address(peer)}: "
                  f"echoed {n} bytes", flush=True)
        except cg.NetError as e:
            print(f"connection {number} from {cg.format_address(peer)}: "
                  f"error: {e.code}", flush=True)
        served += 1
        if max_connections is not None and served >= max_connections:
            loop.stop()

    async def accept_all() -> None:
        accepted = 0
        async for conn, peer in loop.accept_forever(listener):
            accepted += 1
            loop.spawn(connection(accepted, conn, peer))
            if max_connections is not None and accepted >= max_connections:
                return

    with listener:
        loop.spawn(accept_all())
        loop.run()
    return 0


Run = cg.run_main(main)
