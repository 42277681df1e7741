"""redis-benchmark against the kv guest under `capsock serve --instances 1`
and `--instances 2`, beside a native redis-server, in one run (not a test).

    python bench/kv_redis_benchmark.py [--requests 20000] [--clients 50]

All persist the same way (an append-only file, written to the OS per
batch of commands and not fsynced: redis-server runs with
``--appendonly yes --appendfsync no``), so the comparison is the server,
not the disk. Each is measured unpipelined (-P 1) and pipelined (-P 16),
SET and GET: requests/s and p99 latency (redis-benchmark's ``--csv``).
Two kv instances are two stores (each its own memory, one shared file):
that row measures how the serving path scales, it is not one database.
Where 1 instance can be pinned apart from the load and 2 cannot (2 CPUs),
1 instance is also measured unpinned, and the scaling compares those.
Servers and redis-benchmark are pinned apart with ``taskset`` where the
machine has a CPU to spare (see `common.cpu_split`). Needs
redis-benchmark (redis-tools); redis-server (Debian package redis-server)
for the baseline, which is skipped without it.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable

from common import ENV, ROOT, cpu_split, free_port, markdown, pinned, stop, wait_listening

TESTS = [(pipeline, test) for pipeline in (1, 16) for test in ("SET", "GET")]


def benchmark(port: int, requests: int, clients: int, pipeline: int,
              cpus: str | None) -> dict[str, tuple[float, float]]:
    """(requests/s, p99 ms) per test (SET, GET), from redis-benchmark --csv."""
    done = subprocess.run(pinned(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port),
                                  "--csv", "-n", str(requests), "-c", str(clients),
                                  "-P", str(pipeline), "-t", "set,get"], cpus),
                          capture_output=True, text=True, timeout=600)
    rows = list(csv.reader(done.stdout.splitlines()))
    if done.returncode != 0 or not rows or "error" in done.stdout.lower():
        raise RuntimeError(f"redis-benchmark failed: {done.stdout[-500:]} {done.stderr}")
    head = rows[0]
    result = {}
    for row in rows[1:]:
        cells = dict(zip(head, row, strict=False))
        result[cells["test"]] = (float(cells["rps"]), float(cells["p99_latency_ms"]))
    return result


def measure(command: Callable[[int], list[str]], servers: int, args: argparse.Namespace,
            pin: bool = True) -> tuple[dict[tuple[int, str], tuple[float, float]], str]:
    port = free_port()
    server_cpus, load_cpus = cpu_split(servers) if pin else (None, None)
    proc = subprocess.Popen(pinned(command(port), server_cpus), env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port)
        benchmark(port, 1000, args.clients, 1, load_cpus)  # warm-up
        runs = {p: benchmark(port, args.requests, args.clients, p, load_cpus) for p in (1, 16)}
    finally:
        stop(proc)
    where = f"server CPU {server_cpus}, load CPU {load_cpus}" if server_cpus else "unpinned"
    return {(p, t): runs[p][t] for p, t in TESTS}, where


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--clients", type=int, default=50)
    args = parser.parse_args()
    if not shutil.which("redis-benchmark"):
        sys.exit("redis-benchmark is not installed (apt-get install redis-tools)")
    wasm = str(ROOT / "build" / "kv.wasm")
    results = []
    with tempfile.TemporaryDirectory() as data:
        setups: list[tuple[str, Callable[[int], list[str]], int, bool]] = []
        if shutil.which("redis-server"):
            setups.append(("native redis-server (AOF)", lambda p: [
                "redis-server", "--port", str(p), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "yes", "--appendfsync", "no", "--dir", data], 1, True))
        else:
            print("redis-server not installed: no native baseline", file=sys.stderr)
        def capsock(n: int) -> Callable[[int], list[str]]:
            return lambda p: [sys.executable, "-m", "capsock", "serve", "--instances", str(n),
                              "--tcplisten", f"127.0.0.1:{p}", "--dir", f"{data}::/data", wasm]

        setups += [(f"capsock serve --instances {n} (AOF)", capsock(n), n, True) for n in (1, 2)]
        if cpu_split(1)[0] and not cpu_split(2)[0]:  # compare 1 and 2 with the same placement
            setups.append(("capsock serve --instances 1 (AOF), unpinned", capsock(1), 1, False))
        for name, command, servers, pin in setups:
            results.append((name, *measure(command, servers, args, pin)))
    base = results[0][1] if results[0][0].startswith("native") else None
    print(f"\nredis-benchmark -n {args.requests} -c {args.clients} -t set,get, "
          f"{os.cpu_count()} CPUs; requests/s (p99 ms)\n")
    head = ["server", *(f"{t} -P{p}" for p, t in TESTS), "CPUs"]
    rows = []
    for name, runs, where in results:
        rows.append([name, *(f"{runs[k][0]:,.0f} ({runs[k][1]:.2f})" for k in TESTS), where])
        if base is not None and runs is not base:
            rows.append(["  vs native (req/s)", *(f"{runs[k][0] / base[k][0]:.3f}"
                                                  for k in TESTS), ""])
    print(markdown(head, rows))
    by_name = {name: runs for name, runs, _ in results}
    two = by_name["capsock serve --instances 2 (AOF)"]
    one = by_name.get("capsock serve --instances 1 (AOF), unpinned",
                      by_name["capsock serve --instances 1 (AOF)"])
    print("\nscaling, 1 -> 2 instances, same placement (req/s): "
          + ", ".join(f"{t} -P{p} {two[(p, t)][0] / one[(p, t)][0]:.2f}x" for p, t in TESTS))


if __name__ == "__main__":
    main()
