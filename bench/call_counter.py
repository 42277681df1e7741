"""The Python-call counter the two profiled echoes share
(`echo_server_profile.py`, `echo_asyncio_profile.py`; `capsock build`
bundles this module from their folder).

`start()` after the untimed chunks, `stop()` after the counted ones,
then `report(round_trips)`: counts every Python function call
(``sys.setprofile``: "call" and "c_call" events, by function) and prints
them per round trip. Counts, not times: the same on any machine.
"""

import heapq  # noqa: F401  Counter.most_common imports it lazily: bundle it
import sys
from collections import Counter

COUNTS = Counter()
#: received chunks before counting starts
WARMUP = 50


def _profiler(frame, event, arg):
    if event == "call":
        code = frame.f_code
        COUNTS[f"{code.co_filename.rsplit('/', 1)[-1]}:{code.co_name}"] += 1
    elif event == "c_call":
        COUNTS[f"C:{getattr(arg, '__qualname__', arg)}"] += 1


def start():
    sys.setprofile(_profiler)


def stop():
    sys.setprofile(None)


def report(round_trips):
    total = sum(COUNTS.values())
    print(f"python calls per round trip: {total / round_trips:.1f}")
    for name, count in COUNTS.most_common(40):
        print(f"{count / round_trips:8.2f}  {name}")
