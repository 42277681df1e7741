"""What degrades in a guest, and how it fails: each line is one behaviour.
python runtime_limits.py (no network needed)."""
import asyncio
import queue
import select
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor


def show(name, action):
    try:
        print(f"{name}: ok {action()!r}")
    except Exception as e:
        print(f"{name}: {type(e).__name__}: {e}")


order = []
worker = threading.Thread(target=order.append, args=("ran",))
worker.start()
order.append("after start")
worker.join()
print("thread:", order, "alive:", worker.is_alive())

with ThreadPoolExecutor(max_workers=4) as pool:
    print("pool.map:", list(pool.map(pow, [2, 3], [2, 2])))
    print("pool.submit:", pool.submit(sum, [1, 2]).result())

fired = []
began = time.monotonic()
threading.Timer(0.2, fired.append, args=("timer",)).start()
print("timer:", fired, "waited:", time.monotonic() - began >= 0.2)

show("Event.wait()", lambda: threading.Event().wait())
show("Event.wait(0.1)", lambda: threading.Event().wait(0.1))
show("Queue.get()", lambda: queue.Queue().get())
show("select(stdin)", lambda: select.select([sys.stdin], [], [], 0))


async def waits_forever():
    await asyncio.Event().wait()

show("asyncio wait on nothing", lambda: asyncio.run(waits_forever()))
