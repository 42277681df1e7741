"""Open several TCP connections at once, then talk on each.

    fanout [--bytes N] TARGET...

TARGET is ``HOST:PORT`` (a name is resolved by the host's resolver
capability). Every connection is opened first and held while the next
ones open, so a host's connection quota sees them together; then each
sends ``ping <i>`` (or N bytes of ``x``), shuts down its sending side and
reads to the end. One line per target: ``TARGET received <n> bytes:
<text>`` or ``TARGET error: <code>``. Exits 1 if any target failed. The
policy-file tests drive it (allowed by name, a private range denied, a
quota hit).
"""

from __future__ import annotations

import sys

import capsock_guest as cg


def main(argv: list[str]) -> int:
    size: int | None = None
    if argv[:1] == ["--bytes"] and len(argv) > 1:
        size = int(argv[1])
        argv = argv[2:]
    if not argv:
        print("usage: fanout [--bytes N] TARGET...", file=sys.stderr)
        return 2
    connections: list[tuple[str, cg.TcpStream | None]] = []
    failed = False
    for target in argv:
        try:
            connections.append((target, cg.connect(cg.parse_address(target))))
        except cg.NetError as e:
            print(f"{target} error: {e.code}", flush=True)
            connections.append((target, None))
            failed = True
    for index, (target, conn) in enumerate(connections):
        if conn is None:
            continue
        payload = b"x" * size if size is not None else f"ping {index}".encode()
        try:
            conn.sendall(payload)
            conn.shutdown("send")
            data = conn.recv_all()
        except cg.NetError as e:
            print(f"{target} error: {e.code}", flush=True)
            failed = True
        else:
            text = data[:40].decode(errors="replace")
            print(f"{target} received {len(data)} bytes: {text}", flush=True)
        finally:
            conn.close()
    return 1 if failed else 0


Run = cg.run_main(main)
