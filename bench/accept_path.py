"""The host's side of one accepted connection, without a guest (not a test).

    python bench/accept_path.py [--rounds 40] [--batch 100]

What `capsock run` does in the host for each connection the BSD echo of
`bench/compare.py`'s accept step serves, minus the wasm and the codec:
`tcp-socket.accept` (core and resource), the `receive` that sees the end
of stream, and the drop. `--batch` clients connect and half-close first,
so nothing blocks; the time is per connection, min and median over
`--rounds` batches (real loopback sockets, the OS backend, an
`--allow-inbound=tcp://127.0.0.1:*` policy). Run it from a tree with
``PYTHONPATH=host`` to compare trees.
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import statistics
import time

from capsock.addresses import SocketAddress
from capsock.backends.os import OsBackend
from capsock.binding.interfaces.socket_tcp import TcpSocketResource
from capsock.core.context import InstanceContext
from capsock.core.tcp import open_tcp
from capsock.policy import Policy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    policy = Policy.from_flags(allow_inbound=["tcp://127.0.0.1:*"])
    context = InstanceContext(policy, OsBackend())
    listener = TcpSocketResource(open_tcp(context, context.checker, False))
    listener.bind(SocketAddress(ipaddress.IPv4Address("127.0.0.1"), 0))
    listener.listen(args.batch)
    port = listener.local_address().port
    per_connection: list[float] = []
    for _ in range(args.rounds):
        clients = []
        for _ in range(args.batch):
            client = socket.create_connection(("127.0.0.1", port))
            client.shutdown(socket.SHUT_WR)
            clients.append(client)
        began = time.perf_counter()
        for _ in range(args.batch):
            conn, _peer = listener.accept()
            if conn.receive(65536):
                raise RuntimeError("unexpected bytes")
            conn.drop()
        per_connection.append((time.perf_counter() - began) / args.batch * 1e6)
        for client in clients:
            client.close()
    print(f"host accept path: min {min(per_connection):.1f} µs, "
          f"median {statistics.median(per_connection):.1f} µs per connection "
          f"({args.rounds} x {args.batch})")


if __name__ == "__main__":
    main()
