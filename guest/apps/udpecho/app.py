"""UDP echo server.

    udpecho [HOST:PORT] [--max-datagrams N]

With HOST:PORT, binds there through the UDP capability (port 0 picks a free
port; needs ``--allow-inbound=udp://...``); without, serves the first
pre-opened UDP socket (``--udpbind``, or one a launcher passed: socket
activation), printing ``pre-open NAME`` first. Prints ``listening on HOST:PORT``
once ready, then ``datagram N from PEER: B bytes`` for each datagram, and
sends it back to its sender. With ``--max-datagrams N`` exits after N.

When the host hides peers (``--peer-address=hidden``) the sender is the
stand-in ``192.0.0.8:0``; sending back to it answers the real sender (the
host maps the stand-in to the socket's last sender). A failed reply ends
the line with ``reply error: CODE``.
"""

from __future__ import annotations

import sys

import capsock_guest as cg

USAGE = "usage: udpecho [HOST:PORT] [--max-datagrams N]"


def open_socket(address: str | None) -> cg.UdpSocket | None:
    """Bind ``address`` via the UDP capability, else the first pre-open."""
    if address:
        return cg.udp_network().bind(cg.parse_address(address))
    sockets = cg.preopened_udp_sockets()
    if not sockets:
        return None
    print(f"pre-open {sockets[0].name}", flush=True)  # e.g. a socket unit's fd name
    return sockets[0]


def main(argv: list[str]) -> int:
    # Parsed by hand: argparse needs modules componentize-py does not bundle.
    address: str | None = None
    max_datagrams: int | None = None
    rest = list(argv)
    while rest:
        arg = rest.pop(0)
        if arg == "--max-datagrams" and rest and rest[0].isdigit():
            max_datagrams = int(rest.pop(0))
        elif arg.startswith("--max-datagrams=") and arg.split("=", 1)[1].isdigit():
            max_datagrams = int(arg.split("=", 1)[1])
        elif not arg.startswith("-") and address is None:
            address = arg
        else:
            print(USAGE, file=sys.stderr)
            return 2

    try:
        sock = open_socket(address)
    except cg.NetError as e:
        print(f"error: {e.code}", file=sys.stderr, flush=True)
        return 1
    if sock is None:
        print("udpecho: no address given and no pre-opened UDP socket", file=sys.stderr)
        return 1
    print(f"listening on {cg.format_address(sock.local_address())}", flush=True)

    count = 0
    with sock:
        while max_datagrams is None or count < max_datagrams:
            data, peer = sock.recvfrom(65535)
            count += 1
            line = f"datagram {count} from {cg.format_address(peer)}: {len(data)} bytes"
            try:
                sock.sendto(data, peer)
            except cg.NetError as e:
                line += f", reply error: {e.code}"
            print(line, flush=True)
    return 0


Run = cg.run_main(main)
