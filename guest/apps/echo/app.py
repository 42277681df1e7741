"""TCP echo server.

    echo [HOST:PORT] [--max-connections N]

With HOST:PORT, listens there through the TCP capability (port 0 picks a
free port); without, serves the first pre-opened TCP listener
(``--tcplisten``). Prints ``listening on HOST:PORT`` once ready, then one
line per connection. Serves connections one after another.
"""

from __future__ import annotations

import sys

import capsock_guest as cg


def serve_one(conn: cg.TcpStream) -> int:
    total = 0
    with conn:
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            conn.sendall(chunk)
            total += len(chunk)
    return total


def open_listener(address: str | None) -> cg.TcpListener | None:
    """Listen on ``address`` via the TCP capability, else the first pre-open."""
    if address:
        return cg.listen(cg.parse_address(address))
    listeners = cg.preopened_tcp_listeners()
    return listeners[0] if listeners else None


def main(argv: list[str]) -> int | None:
    # Parsed by hand: argparse lazily imports modules (locale, shutil, ...)
    # that componentize-py did not bundle, so it fails at run time.
    address: str | None = None
    max_connections: int | None = None
    rest = list(argv)
    while rest:
        arg = rest.pop(0)
        if arg == "--max-connections" and rest:
            max_connections = int(rest.pop(0))
        elif arg.startswith("--max-connections="):
            max_connections = int(arg.split("=", 1)[1])
        elif not arg.startswith("-") and address is None:
            address = arg
        else:
            print("usage: echo [HOST:PORT] [--max-connections N]", file=sys.stderr)
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

    served = 0
    with listener:
        while max_connections is None or served < max_connections:
            conn, peer = listener.accept()
            served += 1
            try:
                n = serve_one(conn)
                print(f"connection {served} from {cg.format_address(peer)}: "
                      f"echoed {n} bytes", flush=True)
            except cg.NetError as e:
                print(f"connection {served} from {cg.format_address(peer)}: "
                      f"error: {e.code}", flush=True)
    return 0


Run = cg.run_main(main)
