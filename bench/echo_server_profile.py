"""`bench/echo_server.py` with a count of the Python calls it makes, for
`bench/asyncio_calls.py --python` (beside `echo_asyncio_profile.py`).

    python echo_server_profile.py PORT ROUND_TRIPS

Serves one connection like echo_server.py; counts every Python function
call (``sys.setprofile``) from the 51st received chunk for ROUND_TRIPS
chunks, prints the counts per round trip, and exits.
"""

import heapq  # noqa: F401  Counter.most_common imports it lazily: bundle it
import socket
import sys
from collections import Counter

COUNTS = Counter()
WARMUP = 50


def profiler(frame, event, arg):
    if event == "call":
        code = frame.f_code
        COUNTS[f"{code.co_filename.rsplit('/', 1)[-1]}:{code.co_name}"] += 1
    elif event == "c_call":
        COUNTS[f"C:{getattr(arg, '__qualname__', arg)}"] += 1


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
                sys.setprofile(profiler)
            conn.sendall(data)
            if seen == WARMUP + round_trips:
                sys.setprofile(None)
                break
total = sum(COUNTS.values())
print(f"python calls per round trip: {total / round_trips:.1f}")
for name, count in COUNTS.most_common(40):
    print(f"{count / round_trips:8.2f}  {name}")
