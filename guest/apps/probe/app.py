"""Error-path probes for tests. Each prints ``result: <ok|error-code>`` lines.

    probe accept-unbound               accept on a fresh socket (no listen)
    probe send-after-shutdown HOST:PORT  connect, shutdown(send), send
    probe connect-twice HOST:PORT      connect, connect again
    probe bind HOST:PORT               bind+listen, print "bound HOST:PORT",
                                       accept one connection, print "accepted
                                       PEER remote REMOTE-ADDRESS"
    probe hostcall N                   time N cheap host calls, print
                                       "hostcall_us: <mean µs per call>"
    probe udp-send HOST:PORT MSG [MS]  sendto (implicit bind), print
                                       "local ADDR", then print "received
                                       FROM: DATA" for each datagram until
                                       MS milliseconds pass without one
    probe udp-connect HOST:PORT MSG    connect, print "remote ADDR", send,
                                       receive one (5 s), disconnect,
                                       remote-address again
    probe restrict PROTO RULE HOST:PORT  narrow the PROTO (tcp|udp) network
                                       with RULE, then connect / sendto
    probe udp-from-tcp                 take the first pre-open as UDP
    probe resolve-connect NAME HOST:PORT  resolve NAME (print "resolved
                                       ADDR..."), then connect to HOST:PORT
                                       (an IP literal, resolved or not)
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
        conn, peer = sock.accept()
        print(f"accepted {cg.format_address(peer)} "
              f"remote {cg.format_address(conn.remote_address())}", flush=True)
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


def _udp_receive_all(sock: cg.UdpSocket, wait_ms: int) -> None:
    """Print every datagram until `wait_ms` pass without one."""
    sock.set_timeout(wait_ms / 1000)
    while True:
        try:
            data, sender = sock.recvfrom(65535)
        except cg.NetError as e:
            print(f"result: {e.code}", flush=True)
            return
        print(f"received {cg.format_address(sender)}: {data.decode(errors='replace')}",
              flush=True)


def udp_send(args: list[str]) -> int:
    address = cg.parse_address(args[0])
    message = args[1].encode()
    wait_ms = int(args[2]) if len(args) > 2 else 0
    with cg.udp_network().socket(_family(address)) as sock:
        if result(lambda: sock.sendto(message, address)) is None:
            print(f"local {cg.format_address(sock.local_address())}", flush=True)
            if wait_ms > 0:
                _udp_receive_all(sock, wait_ms)
    return 0


def udp_connect(args: list[str]) -> int:
    address = cg.parse_address(args[0])
    with cg.udp_network().socket(_family(address)) as sock:
        if result(lambda: sock.connect(address)) is None:
            print(f"remote {cg.format_address(sock.remote_address())}", flush=True)
            result(lambda: sock.send(args[1].encode()))
            sock.set_timeout(5)
            try:
                data, sender = sock.recvfrom(65535)
                print(f"received {cg.format_address(sender)}: {data.decode()}", flush=True)
            except cg.NetError as e:
                print(f"result: {e.code}", flush=True)
            result(sock.disconnect)
            result(sock.remote_address)
    return 0


def restrict(args: list[str]) -> int:
    protocol, rule, target = args[0], args[1], cg.parse_address(args[2])
    if protocol == "udp":
        udp = cg.udp_network()
        narrowed_udp = None
        def narrow_udp() -> None:
            nonlocal narrowed_udp
            narrowed_udp = udp.restrict([rule])
        if result(narrow_udp) is None and narrowed_udp is not None:
            with narrowed_udp.socket(_family(target)) as sock:
                result(lambda: sock.sendto(b"restricted", target))
        return 0
    tcp = cg.tcp_network()
    narrowed_tcp = None
    def narrow_tcp() -> None:
        nonlocal narrowed_tcp
        narrowed_tcp = tcp.restrict([rule])
    if result(narrow_tcp) is None and narrowed_tcp is not None:
        with narrowed_tcp.socket(_family(target)) as conn:
            result(lambda: conn.connect(target))
    return 0


def udp_from_tcp(args: list[str]) -> int:
    preopens = cg.preopened_sockets()
    if not preopens:
        print("result: no-preopen", flush=True)
        return 1
    name, raw = preopens[0]
    result(lambda: cg.UdpSocket.from_preopened(raw, name))
    return 0


def resolve_connect(args: list[str]) -> int:
    name, target = args[0], cg.parse_address(args[1])
    addresses: list[str] = []
    def lookup() -> None:
        addresses.extend(cg.resolve(name))
    if result(lookup) is None:
        print("resolved " + " ".join(addresses), flush=True)
    with cg.tcp_network().socket(_family(target)) as conn:
        result(lambda: conn.connect(target))
    return 0


COMMANDS = {
    "accept-unbound": (accept_unbound, 0),
    "send-after-shutdown": (send_after_shutdown, 1),
    "connect-twice": (connect_twice, 1),
    "bind": (bind, 1),
    "hostcall": (hostcall, 0),
    "udp-send": (udp_send, 2),
    "udp-connect": (udp_connect, 2),
    "restrict": (restrict, 3),
    "udp-from-tcp": (udp_from_tcp, 0),
    "resolve-connect": (resolve_connect, 2),
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
