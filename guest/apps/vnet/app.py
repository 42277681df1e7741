"""Virtual addresses from the guest's side: what it sees through `->` rules.

    vnet connect HOST:PORT MSG     resolve HOST if it is a name ("resolved
                                   ADDR..."), connect, print "local ADDR"
                                   and "remote ADDR", send MSG, half-close,
                                   print "reply DATA" (the whole answer)
    vnet serve HOST:PORT           bind+listen, print "bound ADDR", accept
                                   one connection, print "accepted PEER
                                   remote ADDR local ADDR", answer it with
                                   what it sent, upper-cased
    vnet udp HOST:PORT MSG         resolve HOST if a name, sendto MSG, print
                                   "local ADDR", receive one datagram (10 s)
                                   and print "from SENDER: DATA", reply
                                   "ack:DATA" to SENDER ("replied")
    vnet udp-serve HOST:PORT       bind, print "bound ADDR", receive one
                                   datagram, print "from SENDER: DATA",
                                   reply upper-cased to SENDER ("replied")

Every failing step prints ``result: <error-code>`` and exits 1.
"""

from __future__ import annotations

import sys

import capsock_guest as cg


def _target(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    if not cg.is_ip_literal(host):
        addresses = cg.resolve(host)
        print("resolved " + " ".join(addresses), flush=True)
        host = addresses[0]
    return host, int(port)


def _family(host: str) -> str:
    return "ipv6" if ":" in host else "ipv4"


def connect(args: list[str]) -> int:
    target = _target(args[0])
    sock = cg.tcp_network().socket(_family(target[0]))
    with sock:
        sock.connect(target)
        print(f"local {cg.format_address(sock.local_address())}", flush=True)
        print(f"remote {cg.format_address(sock.remote_address())}", flush=True)
        sock.sendall(args[1].encode())
        sock.shutdown("send")
        print(f"reply {sock.recv_all().decode()}", flush=True)
    return 0


def serve(args: list[str]) -> int:
    address = cg.parse_address(args[0])
    with cg.tcp_network().listen(address) as server:
        print(f"bound {cg.format_address(server.local_address())}", flush=True)
        conn, peer = server.accept()
        with conn:
            print(f"accepted {cg.format_address(peer)} "
                  f"remote {cg.format_address(conn.remote_address())} "
                  f"local {cg.format_address(conn.local_address())}", flush=True)
            conn.sendall(conn.recv_all().upper())
    return 0


def udp(args: list[str]) -> int:
    target = _target(args[0])
    with cg.udp_network().socket(_family(target[0])) as sock:
        sock.sendto(args[1].encode(), target)
        print(f"local {cg.format_address(sock.local_address())}", flush=True)
        sock.set_timeout(10)
        data, sender = sock.recvfrom(65535)
        print(f"from {cg.format_address(sender)}: {data.decode()}", flush=True)
        sock.sendto(b"ack:" + data, sender)
        print("replied", flush=True)
    return 0


def udp_serve(args: list[str]) -> int:
    address = cg.parse_address(args[0])
    with cg.udp_network().socket(_family(address[0])) as sock:
        sock.bind(address)
        print(f"bound {cg.format_address(sock.local_address())}", flush=True)
        data, sender = sock.recvfrom(65535)
        print(f"from {cg.format_address(sender)}: {data.decode()}", flush=True)
        sock.sendto(data.upper(), sender)
        print("replied", flush=True)
    return 0


COMMANDS = {"connect": (connect, 2), "serve": (serve, 1), "udp": (udp, 2),
            "udp-serve": (udp_serve, 1)}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS or len(argv) - 1 < COMMANDS[argv[0]][1]:
        print(f"usage: vnet {{{'|'.join(COMMANDS)}}} ARGS", file=sys.stderr)
        return 2
    try:
        return COMMANDS[argv[0]][0](argv[1:])
    except cg.NetError as e:
        print(f"result: {e.code}", flush=True)
        return 1


Run = cg.run_main(main)
