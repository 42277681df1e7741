"""A UDP echo server on 127.0.0.1:PORT; stops after echoing b"quit"."""

import socket
import sys

port = int(sys.argv[1])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", port))
print(f"listening on 127.0.0.1:{port}", flush=True)
while True:
    data, peer = sock.recvfrom(65535)
    sock.sendto(data, peer)
    if data == b"quit":
        break
print("done", flush=True)
