"""HTTP/1.1 server: many keep-alive connections at once, one instance.

    http [HOST:PORT] [--max-requests N]

Serves the first pre-opened TCP listener (or listens on HOST:PORT through
the TCP capability). Every request gets a small JSON document naming the
instance that served it (``CAPSOCK_INSTANCE`` from ``capsock serve``), so
a client can see several instances share one listener:

    {"instance": "1", "method": "GET", "path": "/hello", "requests": 7}

Connections are tasks of `capsock_guest.Loop`. When the host shuts the
listener down (``capsock serve`` got SIGTERM) the server stops accepting,
answers requests already in flight, closes idle keep-alive connections,
and exits 0.
"""

from __future__ import annotations

import json
import os
import sys

import capsock_guest as cg

MAX_HEADER = 16 * 1024
#: Read in main(), not at import: componentize-py runs module top level at
#: build time (a snapshot), when the runtime environment does not exist yet.
INSTANCE = "0"


class Server:
    def __init__(self, loop: cg.Loop, max_requests: int | None) -> None:
        self.loop = loop
        self.max_requests = max_requests
        self.requests = 0
        self.idle: set[cg.TcpStream] = set()
        self.draining = False

    def respond(self, method: str, path: str) -> bytes:
        self.requests += 1
        body = json.dumps({"instance": INSTANCE, "method": method, "path": path,
                           "requests": self.requests}).encode() + b"\n"
        head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nServer: capsock-http\r\n\r\n")
        return head.encode() + body

    async def connection(self, conn: cg.TcpStream) -> None:
        buffer = b""
        try:
            while not self.draining:
                self.idle.add(conn)
                while b"\r\n\r\n" not in buffer:
                    chunk = await self.loop.recv(conn, 65536)
                    if not chunk or len(buffer) > MAX_HEADER:
                        return
                    self.idle.discard(conn)
                    buffer += chunk
                self.idle.discard(conn)
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                parts = lines[0].split()
                if len(parts) != 3:
                    await self.loop.sendall(conn, b"HTTP/1.1 400 Bad Request\r\n"
                                                  b"Content-Length: 0\r\n\r\n")
                    return
                method, path, version = parts
                headers = {k.strip().lower(): v.strip()
                           for k, _, v in (line.partition(":") for line in lines[1:])}
                length = int(headers.get("content-length", "0") or 0)
                while len(buffer) < length:
                    chunk = await self.loop.recv(conn, 65536)
                    if not chunk:
                        return
                    buffer += chunk
                buffer = buffer[length:]
                await self.loop.sendall(conn, self.respond(method, path))
                if (headers.get("connection", "").lower() == "close"
                        or version == "HTTP/1.0"):
                    return
                if self.max_requests is not None and self.requests >= self.max_requests:
                    self.loop.stop()
                    return
        except cg.NetError:
            return
        finally:
            self.idle.discard(conn)
            self.loop.close(conn)

    async def accept_all(self, listener: cg.TcpListener) -> None:
        async for conn, _peer in self.loop.accept_forever(listener):
            self.loop.spawn(self.connection(conn))
        # the listener is gone: finish in-flight requests, drop idle ones
        self.draining = True
        for conn in list(self.idle):
            try:
                conn.shutdown("receive")
            except cg.NetError:
                pass


def main(argv: list[str]) -> int:
    global INSTANCE
    INSTANCE = os.environ.get("CAPSOCK_INSTANCE", "0")
    address: str | None = None
    max_requests: int | None = None
    rest = list(argv)
    while rest:
        arg = rest.pop(0)
        if arg == "--max-requests" and rest:
            max_requests = int(rest.pop(0))
        elif not arg.startswith("-") and address is None:
            address = arg
        else:
            print("usage: http [HOST:PORT] [--max-requests N]", file=sys.stderr)
            return 2
    if address:
        listener = cg.listen(cg.parse_address(address))
    else:
        listeners = cg.preopened_tcp_listeners()
        if not listeners:
            print("http: no address given and no pre-opened TCP listener", file=sys.stderr)
            return 1
        listener = listeners[0]
    print(f"listening on {cg.format_address(listener.local_address())} "
          f"(instance {INSTANCE})", flush=True)
    loop = cg.Loop()
    server = Server(loop, max_requests)
    with listener:
        loop.spawn(server.accept_all(listener))
        loop.run()
    print(f"instance {INSTANCE} served {server.requests} requests", flush=True)
    return 0


Run = cg.run_main(main)
