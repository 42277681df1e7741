"""An echo server on select.poll, as the poll tutorials write it:
python poll_echo.py HOST PORT."""
import select
import socket
import sys

server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((sys.argv[1], int(sys.argv[2])))
server.listen(5)
server.setblocking(False)
print("poll echo on", server.getsockname()[1], flush=True)

poller = select.poll()
poller.register(server, select.POLLIN)
connections = {}

while True:
    for fd, event in poller.poll():
        if fd == server.fileno():
            conn, addr = server.accept()
            conn.setblocking(False)
            connections[conn.fileno()] = conn
            poller.register(conn, select.POLLIN)
        elif event & select.POLLIN:
            conn = connections[fd]
            data = conn.recv(4096)
            if data:
                conn.setblocking(True)
                conn.sendall(data)
                conn.setblocking(False)
            else:
                poller.unregister(fd)
                del connections[fd]
                conn.close()
