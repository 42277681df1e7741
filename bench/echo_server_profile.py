"""`bench/echo_server.py` with a count of the Python calls it makes, for
`bench/asyncio_calls.py --python` (beside `echo_asyncio_profile.py`).

    python echo_server_profile.py PORT ROUND_TRIPS

Serves one connection like echo_server.py; counts every Python function
call (``sys.setprofile``) from the 51st received chunk for ROUND_TRIPS
chunks, prints the counts per round trip, and exits.
"""

import socket
import sys

from call_counter import WARMUP, report, start, stop

port, round_trips = int(sys.argv[1]), int(sys.argv[2])
server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.bind(("127.0.0.1", port))
server.listen(16)
print(f"listening on 127.0.0.1:{port}", flush=True)
seen = 0
while seen < WARMUP + round_trips:
    conn, _ = server.accept()
    with conn:
        while data := conn.recv(65536):
            seen += 1
            if seen == WARMUP:
                start()
            conn.sendall(data)
            if seen == WARMUP + round_trips:
                stop()
                break
report(round_trips)
