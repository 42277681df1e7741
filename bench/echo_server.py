"""The echo program `bench/compare.py` runs on every setup, unchanged.

    python echo_server.py PORT

A plain Python socket script: binds 127.0.0.1:PORT, then serves one
connection at a time (recv 64 KiB, sendall, until EOF), forever. Native
CPython runs it as is; built with plain componentize-py its `socket` is
CPython's over wasi-libc and `wasi:sockets` (the wasmtime CLI's); built
with `capsock build` its `socket` is capsock's BSD layer.
"""

import socket
import sys

port = int(sys.argv[1])
server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.bind(("127.0.0.1", port))
server.listen(16)
print(f"listening on 127.0.0.1:{port}", flush=True)
while True:
    conn, _ = server.accept()
    with conn:
        while True:
            data = conn.recv(65536)
            if not data:
                break
            conn.sendall(data)
