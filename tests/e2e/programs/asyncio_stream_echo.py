"""An asyncio streams echo server that echoes every connection to its end,
and shuts down gracefully after COUNT connections (0: never):
python asyncio_stream_echo.py HOST PORT [COUNT]."""
import asyncio
import sys


async def main(host, port, count):
    done = asyncio.Event()
    served = 0

    async def echo(reader, writer):
        nonlocal served
        total = 0
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
            total += len(data)
        writer.close()
        await writer.wait_closed()
        served += 1
        print(f"connection {served} echoed {total} bytes", flush=True)
        if served == count:
            done.set()

    server = await asyncio.start_server(echo, host, port, backlog=1024)
    print("listening on", server.sockets[0].getsockname()[1], flush=True)
    async with server:
        if count:
            await done.wait()
        else:
            await server.serve_forever()
    print("shut down", flush=True)


asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 0))
