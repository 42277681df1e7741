"""TCP client: ``client HOST:PORT MESSAGE``.

Connects through the TCP capability, sends MESSAGE, shuts down its sending
side, reads until end of stream and prints ``received: <text>``. On a
capsock error prints ``error: <code>`` to stderr and fails (WASI 0.2 gives
a command only success/failure, so the host sees exit status 1).
"""

from __future__ import annotations

import sys

import capsock_guest as cg


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: client HOST:PORT MESSAGE", file=sys.stderr)
        return 2
    try:
        with cg.connect(cg.parse_address(argv[0])) as conn:
            conn.sendall(argv[1].encode())
            conn.shutdown("send")
            data = conn.recv_all()
    except cg.NetError as e:
        print(f"error: {e.code}", file=sys.stderr, flush=True)
        return 2
    print(f"received: {data.decode(errors='replace')}", flush=True)
    return 0


Run = cg.run_main(main)
