"""The http guest's server logic on native CPython (selectors), for the
side-by-side baseline in bench/http_wrk.py. Same responses, same
keep-alive handling, one thread.

    python bench/native_http.py PORT
"""

from __future__ import annotations

import json
import selectors
import socket
import sys


def main() -> None:
    port = int(sys.argv[1])
    server = socket.create_server(("127.0.0.1", port), backlog=1024)
    server.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(server, selectors.EVENT_READ)
    buffers: dict[socket.socket, bytes] = {}
    served = 0
    print(f"listening on 127.0.0.1:{port}", flush=True)
    while True:
        for key, _ in selector.select():
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if sock is server:
                conn, _ = server.accept()
                conn.setblocking(False)
                selector.register(conn, selectors.EVENT_READ)
                buffers[conn] = b""
                continue
            try:
                chunk = sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                selector.unregister(sock)
                buffers.pop(sock, None)
                sock.close()
                continue
            data = buffers[sock] + chunk
            while b"\r\n\r\n" in data:
                head, data = data.split(b"\r\n\r\n", 1)
                method, path, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split()
                served += 1
                body = json.dumps({"instance": "native", "method": method, "path": path,
                                   "requests": served}).encode() + b"\n"
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\nServer: native\r\n\r\n" % len(body) + body)
            buffers[sock] = data


if __name__ == "__main__":
    main()
