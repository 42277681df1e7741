"""Error-path probes for tests. Each prints ``result: <ok|error-code>`` lines.

    probe accept-unbound               accept on a fresh socket (no listen)
    probe send-after-shutdown HOST:PORT  connect, shutdown(send), send
    probe connect-twice HOST:PORT      connect, connect again
    probe bind HOST:PORT               bind+listen, print "bound HOST:PORT",
                                       accept one connection, print "accepted"
    probe hostcall N                   time N cheap host calls, print
                                       "hostcall_us: <mean µs per call>"
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import capsock_guest as cg


def result(action: Callable[[], object]) -> str | None:
    """Run ``action``, print ``result: ok`` or ``result: <code>``."""
    try:
        action()
    except cg.NetError as e:
        print(f"result: {e.code}", flush=True)
        return e.code
    print("result: ok", flush=True)
    return None


def accept_unbound(args: list[str]) -> int:
    sock = cg.tcp_network().socket("ipv4")
    result(sock.accept)
    sock.close()
    return 0


def _family(address: cg.Address) -> str:
    return "ipv4" if cg.family_of(address).name == "IPV4" else "ipv6"


def send_after_shutdown(args: list[str]) -> int:
    address = cg.parse_address(args[0])
    sock = cg.tcp_network().socket(_family(address))
    if result(lambda: sock.connect(address)) is None:
        result(lambda: sock.shutdown("send"))
        result(lambda: sock.send(b"after shutdown"))
    sock.close()
    return 0


def connect_twice(args: list[str]) -> int:
    address = cg.parse_address(args[0])
    sock = cg.tcp_network().socket(_family(address))
    result(lambda: sock.connect(address))
    result(lambda: sock.connect(address))
    sock.close()
    return 0


def bind(args: list[str]) -> int:
    address = cg.parse_address(args[0])
    sock = cg.tcp_network().socket(_family(address))
    def bind_listen() -> None:
        sock.bind(address)
        sock.listen()

    if result(bind_listen) is None:
        print(f"bound {cg.format_address(sock.local_address())}", flush=True)
        conn, _peer = sock.accept()
        print("accepted", flush=True)
        conn.close()
    sock.close()
    return 0


def hostcall(args: list[str]) -> int:
    n = int(args[0]) if args else 1000
    sock = cg.tcp_network().socket("ipv4")
    raw = sock.raw
    raw.address_family()  # warm up
    start = time.perf_counter()
    for _ in range(n):
        raw.address_family()
    elapsed = time.perf_counter() - start
    sock.close()
    print(f"hostcall_us: {elapsed / n * 1e6:.2f}", flush=True)
    return 0


COMMANDS = {
    "accept-unbound": (accept_unbound, 0),
    "send-after-shutdown": (send_after_shutdown, 1),
    "connect-twice": (connect_twice, 1),
    "bind": (bind, 1),
    "hostcall": (hostcall, 0),
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS or len(argv) - 1 < COMMANDS[argv[0]][1]:
        print(f"usage: probe {{{'|'.join(COMMANDS)}}} [ARG]", file=sys.stderr)
        return 2
    try:
        return COMMANDS[argv[0]][0](argv[1:])
    except cg.NetError as e:
        # A step outside result(...) failed, e.g. no TCP network at all.
        print(f"result: {e.code}", flush=True)
        return 1


Run = cg.run_main(main)
