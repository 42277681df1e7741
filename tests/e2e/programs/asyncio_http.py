"""A small HTTP/1.1 server written on asyncio.start_server (keep-alive, GET
and POST): python asyncio_http.py HOST PORT."""
import asyncio
import sys


async def handle(reader, writer):
    while True:
        request_line = await reader.readline()
        if not request_line:
            break
        method, path, version = request_line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        headers = {}
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        text = f"Hello from asyncio: {method} {path}"
        if body:
            text += f" body={body.decode()!r}"
        payload = (text + "\n").encode()
        close = headers.get("connection", "").lower() == "close"
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                     + f"Content-Length: {len(payload)}\r\n".encode()
                     + (b"Connection: close\r\n" if close else b"") + b"\r\n" + payload)
        await writer.drain()
        if close:
            break
    writer.close()
    await writer.wait_closed()


async def main():
    server = await asyncio.start_server(handle, sys.argv[1], int(sys.argv[2]))
    print("serving on", server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()

asyncio.run(main())
