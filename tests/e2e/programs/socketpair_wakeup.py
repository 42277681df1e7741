"""socket.socketpair() as programs use it: python socketpair_wakeup.py HOST PORT.

Checks a pair on its own (blocking, selectors, select.select, a thread
writing to it), then runs an asyncio echo server whose handler wakes the
main task through a pair when a client sends "quit"."""
import asyncio
import select
import selectors
import socket
import sys
import threading

a, b = socket.socketpair()
a.sendall(b"ping")
assert b.recv(16) == b"ping"
b.sendall(b"pong" * 1000)
got = b""
while len(got) < 4000:
    got += a.recv(1500)
assert got == b"pong" * 1000
with a.makefile("rb") as reader:
    b.sendall(b"one line\n")
    assert reader.readline() == b"one line\n"

sel = selectors.DefaultSelector()
sel.register(b, selectors.EVENT_READ)
assert sel.select(0) == []
a.send(b"x")
assert [key.fileobj for key, _ in sel.select(0)] == [b]
assert select.select([b], [b], [], 0) == ([b], [b], [])
assert b.recv(1) == b"x"
sel.close()

b.setblocking(False)
try:
    b.recv(1)
except BlockingIOError:
    pass
b.setblocking(True)
try:
    b.recv(1)
except RuntimeError as error:
    print("blocking recv on an empty end:", str(error)[:60])

threading.Thread(target=lambda: a.sendall(b"from a thread")).start()
assert b.recv(64) == b"from a thread"
a.shutdown(socket.SHUT_WR)
assert b.recv(1) == b""
b.close()
try:
    a.send(b"late")
except BrokenPipeError:
    print("send after the peer closed: BrokenPipeError")
a.close()
print("pair ok")


async def main(host, port):
    rsock, wsock = socket.socketpair()
    wake, _ = await asyncio.open_connection(sock=rsock)

    async def handle(reader, writer):
        while line := await reader.readline():
            if line == b"quit\n":
                wsock.send(b"stop\n")  # wakes main() through the pair
                break
            writer.write(line)
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(handle, host, port)
    print("serving", flush=True)
    reason = await wake.readline()
    server.close()
    await server.wait_closed()
    print("woken by the pair:", reason.decode().strip(), flush=True)


asyncio.run(main(sys.argv[1], int(sys.argv[2])))
