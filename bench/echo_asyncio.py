"""The asyncio echo `bench/compare.py` runs beside `echo_server.py`.

    python echo_asyncio.py PORT

The same behaviour written with asyncio streams, as the asyncio docs
write a server: binds 127.0.0.1:PORT, echoes each connection (read up to
64 KiB, write, drain, until EOF), forever. Built with `capsock build`, it
runs on capsock's event loop (`capsock_guest._asyncio`).
"""

import asyncio
import sys


async def echo(reader, writer):
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()
    await writer.wait_closed()


async def main(port):
    server = await asyncio.start_server(echo, "127.0.0.1", port, backlog=16)
    print(f"listening on 127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main(int(sys.argv[1])))
