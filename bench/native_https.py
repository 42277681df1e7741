"""The http guest's JSON route on native CPython over TLS (asyncio with
``ssl=``: OpenSSL in the same process), the native baseline of
bench/https_wrk.py. Same responses and keep-alive handling as
bench/native_http.py.

    python bench/native_https.py PORT CERT KEY
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys

served = 0


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    global served
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            method, path, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split()
            served += 1
            body = json.dumps({"instance": "native", "method": method, "path": path,
                               "requests": served}).encode() + b"\n"
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\nServer: native\r\n\r\n" % len(body) + body)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


async def main() -> None:
    port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = await asyncio.start_server(handle, "127.0.0.1", port, ssl=context, backlog=1024)
    print(f"listening on 127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
