"""`bench/echo_asyncio.py` with a count of the Python calls it makes, for
`bench/asyncio_calls.py --python`.

    python echo_asyncio_profile.py PORT ROUND_TRIPS

Serves one connection like echo_asyncio.py; counts every Python function
call (``sys.setprofile``: "call" and "c_call" events, by function) from the
51st received chunk for ROUND_TRIPS chunks, prints the counts per round
trip, and exits. Counts, not times: the same on any machine.
"""

import asyncio
import heapq  # noqa: F401  Counter.most_common imports it lazily: bundle it
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


async def echo(reader, writer, round_trips, done):
    seen = 0
    while data := await reader.read(65536):
        seen += 1
        if seen == WARMUP:
            sys.setprofile(profiler)
        writer.write(data)
        await writer.drain()
        if seen == WARMUP + round_trips:
            sys.setprofile(None)
            done.set_result(None)
    writer.close()


async def main(port, round_trips):
    done = asyncio.get_running_loop().create_future()
    server = await asyncio.start_server(lambda r, w: echo(r, w, round_trips, done),
                                        "127.0.0.1", port, backlog=16)
    print(f"listening on 127.0.0.1:{port}", flush=True)
    await done
    server.close()
    total = sum(COUNTS.values())
    print(f"python calls per round trip: {total / round_trips:.1f}")
    for name, count in COUNTS.most_common(40):
        print(f"{count / round_trips:8.2f}  {name}")


asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
