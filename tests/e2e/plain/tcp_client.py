"""Connect to HOST:PORT, send MESSAGE, half-close, print the reply."""

import socket
import sys

host, port, message = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with socket.create_connection((host, port), timeout=30) as conn:
    conn.sendall(message.encode())
    conn.shutdown(socket.SHUT_WR)
    reply = b""
    while chunk := conn.recv(65536):
        reply += chunk
print(f"reply: {reply.decode()}", flush=True)
