"""The asyncio streams echo client of the Python docs (asyncio-stream.html),
with the address and message from the command line:
python asyncio_echo_client.py HOST PORT MESSAGE."""
import asyncio
import sys


async def tcp_echo_client(message):
    reader, writer = await asyncio.open_connection(
        sys.argv[1], int(sys.argv[2]))

    print(f'Send: {message!r}')
    writer.write(message.encode())
    await writer.drain()

    data = await reader.read(100)
    print(f'Received: {data.decode()!r}')

    print('Close the connection')
    writer.close()
    await writer.wait_closed()

asyncio.run(tcp_echo_client(sys.argv[3]))
