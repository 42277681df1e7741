"""wrk against the http guest under `capsock serve --instances 1` and
`--instances 2`, beside the same server logic on native CPython, in one
run (not a test).

    python bench/http_wrk.py [--duration 8] [--connections 32] [--mode process|thread]

Each setup gets a 2 s warm-up, then ``--duration`` seconds of ``wrk
--latency`` on ``/api/instance`` (the http guest's JSON route). Where the
machine has a CPU to spare, servers and ``wrk`` are pinned apart with
``taskset`` (servers on the first CPUs, one each; ``wrk`` on the rest,
one thread per CPU); where it has not (2 instances on 2 CPUs), both run
unpinned and the table says so, with 1 instance measured unpinned too so
that the scaling compares like with like. Prints requests/s, p99 latency, the ratio
to native, requests/s per server CPU, and the scaling from 1 to 2
instances. Needs `wrk` (Debian package).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Callable

from common import ENV, ROOT, cpu_split, free_port, markdown, pinned, stop, wait_listening, wrk


def url_of(port: int, scheme: str = "http") -> str:
    """The http guest's JSON route (and the native baseline's)."""
    return f"{scheme}://127.0.0.1:{port}/api/instance"


def measure(command: Callable[[int], list[str]], servers: int, duration: int,
            connections: int, pin: bool = True) -> tuple[float, float, str]:
    """(req/s, p99 ms, pinning) of the server ``command(port)`` starts."""
    port = free_port()
    server_cpus, load_cpus = cpu_split(servers) if pin else (None, None)
    proc = subprocess.Popen(pinned(command(port), server_cpus), env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port)
        wrk(url_of(port), 2, connections, load_cpus)  # warm-up
        rps, p99 = wrk(url_of(port), duration, connections, load_cpus)
    finally:
        stop(proc)
    where = f"server CPU {server_cpus}, wrk CPU {load_cpus}" if server_cpus else "unpinned"
    return rps, p99, where


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--mode", choices=["process", "thread"], default="process",
                        help="how `capsock serve` runs its 2 instances")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (apt-get install wrk)")
    wasm = str(ROOT / "build" / "http.wasm")
    serve = [sys.executable, "-m", "capsock", "serve", "--mode", args.mode]
    def capsock(n: int) -> Callable[[int], list[str]]:
        return lambda p: [*serve, "--instances", str(n), "--tcplisten", f"127.0.0.1:{p}", wasm]

    setups: list[tuple[str, Callable[[int], list[str]], int, bool]] = [
        ("native CPython (selectors)",
         lambda p: [sys.executable, str(ROOT / "bench/native_http.py"), str(p)], 1, True),
        ("capsock serve --instances 1", capsock(1), 1, True),
        ("capsock serve --instances 2", capsock(2), 2, True)]
    if cpu_split(1)[0] and not cpu_split(2)[0]:  # 1 is pinned, 2 cannot be: compare like with like
        setups.append(("capsock serve --instances 1, unpinned", capsock(1), 1, False))
    results = [(name, servers, *measure(command, servers, args.duration, args.connections, pin))
               for name, command, servers, pin in setups]
    native = results[0][2]
    print(f"\nwrk -c{args.connections} -d{args.duration}s --latency /api/instance; "
          f"capsock serve --mode {args.mode}\n")
    print(markdown(["setup", "req/s", "p99 (ms)", "vs native", "req/s per server CPU", "CPUs"],
                   [[name, f"{rps:,.0f}", f"{p99:.2f}", f"{rps / native:.3f}",
                     f"{rps / servers:,.0f}", where]
                    for name, servers, rps, p99, where in results]))
    rps = {name: r for name, _, r, _, _ in results}
    one = rps.get("capsock serve --instances 1, unpinned", rps["capsock serve --instances 1"])
    print(f"\nscaling, 1 -> 2 instances (same placement): "
          f"{rps['capsock serve --instances 2'] / one:.2f}x")


if __name__ == "__main__":
    main()
