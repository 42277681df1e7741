"""TCP echo server written against the standard `socket` module.

    bsdecho [HOST:PORT] [--max-connections N]

A plain script (no capsock imports, no ``Run``): built, its ``import socket``
is capsock's BSD layer. With ``HOST:PORT`` it binds there itself
(``create_server``); without, it serves the pre-opened ``--tcplisten``
socket, which the BSD layer hands out like systemd's socket activation
hands out descriptor 3 (``socket.from_preopened()``).
"""

import socket
import sys


def parse(argv):
    address, limit = None, None
    args = iter(argv)
    for arg in args:
        if arg == "--max-connections":
            limit = int(next(args))
        else:
            host, _, port = arg.rpartition(":")
            address = (host.strip("[]"), int(port))
    return address, limit


def serve(server, limit):
    host, port = server.getsockname()[:2]
    print(f"listening on {f'[{host}]' if ':' in host else host}:{port}", flush=True)
    count = 0
    while limit is None or count < limit:
        conn, peer = server.accept()
        count += 1
        total = 0
        with conn:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                conn.sendall(data)
                total += len(data)
        print(f"connection {count} from {peer[0]}:{peer[1]}: echoed {total} bytes", flush=True)


address, limit = parse(sys.argv[1:])
if address is None:
    server = socket.from_preopened()
else:
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    server = socket.create_server(address, family=family)
with server:
    serve(server, limit)
