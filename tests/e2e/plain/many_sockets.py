"""Open TCP sockets until the host refuses one; print how many and why."""

import socket

held = []
try:
    while len(held) < 100:
        held.append(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
except OSError as error:
    print(f"refused after {len(held)}: {error}", flush=True)
else:
    print(f"opened {len(held)}", flush=True)
