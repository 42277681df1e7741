"""`bench/echo_asyncio.py` with a count of the Python calls it makes, for
`bench/asyncio_calls.py --python`.

    python echo_asyncio_profile.py PORT ROUND_TRIPS

Serves one connection like echo_asyncio.py; counts every Python function
call (``sys.setprofile``: "call" and "c_call" events, by function) from the
51st received chunk for ROUND_TRIPS chunks, prints the counts per round
trip, and exits. Counts, not times: the same on any machine.
"""

import asyncio
import sys

from call_counter import WARMUP, report, start, stop


async def echo(reader, writer, round_trips, done):
    seen = 0
    while data := await reader.read(65536):
        seen += 1
        if seen == WARMUP:
            start()
        writer.write(data)
        await writer.drain()
        if seen == WARMUP + round_trips:
            stop()
            done.set_result(None)
    writer.close()


async def main(port, round_trips):
    done = asyncio.get_running_loop().create_future()
    server = await asyncio.start_server(lambda r, w: echo(r, w, round_trips, done),
                                        "127.0.0.1", port, backlog=16)
    print(f"listening on 127.0.0.1:{port}", flush=True)
    await done
    server.close()
    report(round_trips)


asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
