"""A client touring asyncio's API against a TCP peer that answers each
connection with its input upper-cased, and a UDP echo peer:
python asyncio_tour.py HOST TCP_PORT UDP_PORT (HOST may be a name)."""
import asyncio
import socket
import sys


class EchoClient(asyncio.DatagramProtocol):
    def __init__(self, reply):
        self.reply = reply

    def connection_made(self, transport):
        transport.sendto(b"datagram")

    def datagram_received(self, data, addr):
        self.reply.set_result(data)


async def forever():
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        print("cancelled: cleanup ran")
        raise


async def main(host, tcp_port, udp_port):
    loop = asyncio.get_running_loop()

    reader, writer = await asyncio.open_connection(host, tcp_port)
    writer.write(b"streams")
    writer.write_eof()
    print("streams:", (await reader.read()).decode())
    writer.close()
    await writer.wait_closed()

    address = (await loop.getaddrinfo(host, tcp_port, type=socket.SOCK_STREAM))[0][4]
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    await loop.sock_connect(sock, address)
    await loop.sock_sendall(sock, b"sock methods")
    sock.shutdown(socket.SHUT_WR)
    data = b""
    while chunk := await loop.sock_recv(sock, 1024):
        data += chunk
    sock.close()
    print("sock:", data.decode())

    reply = loop.create_future()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: EchoClient(reply), remote_addr=(address[0], udp_port))
    print("udp:", (await asyncio.wait_for(reply, 10)).decode())
    transport.close()

    fired = []
    loop.call_later(0.05, fired.append, "call_later")
    await asyncio.sleep(0.1)
    try:
        await asyncio.wait_for(asyncio.sleep(10), timeout=0.05)
    except TimeoutError:
        fired.append("wait_for timed out")
    try:
        async with asyncio.timeout(0.05):
            await asyncio.sleep(10)
    except TimeoutError:
        fired.append("timeout() timed out")
    print("timers:", ", ".join(fired))

    task = asyncio.create_task(forever())
    await asyncio.sleep(0)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        print("cancelled:", task.cancelled())

    print("to_thread:", await asyncio.to_thread(sum, [1, 2, 3]))
    print("gather:", await asyncio.gather(*(asyncio.sleep(0.01, result=i) for i in range(3))))


asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
print("done")
