"""Resolve NAME with getaddrinfo and print each address, then connect to
the first one at PORT and print the reply to MESSAGE."""

import socket
import sys

name, port, message = sys.argv[1], int(sys.argv[2]), sys.argv[3]
infos = socket.getaddrinfo(name, port, socket.AF_INET, socket.SOCK_STREAM)
for info in infos:
    print(f"address: {info[4][0]}", flush=True)
with socket.create_connection(infos[0][4], timeout=30) as conn:
    conn.sendall(message.encode())
    conn.shutdown(socket.SHUT_WR)
    print(f"reply: {conn.recv(65536).decode()}", flush=True)
