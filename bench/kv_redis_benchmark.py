"""redis-benchmark against the kv guest beside a native redis-server, in one
run (not a test).

    python bench/kv_redis_benchmark.py [--requests 20000] [--clients 50]

Both persist the same way (an append-only file, written to the OS per
batch of commands and not fsynced: redis-server runs with
``--appendonly yes --appendfsync no``), so the comparison is the server,
not the disk. Each is measured unpipelined (-P 1) and pipelined (-P 16).
Needs redis-benchmark (redis-tools); redis-server (Debian package
redis-server) for the baseline, which is skipped without it.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

from common import ENV, ROOT, free_port, wait_listening


def benchmark(port: int, requests: int, clients: int, pipeline: int) -> dict[str, float]:
    """requests/s per test (SET, GET), from redis-benchmark's -q output."""
    done = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-q",
                           "-n", str(requests), "-c", str(clients), "-P", str(pipeline),
                           "-t", "set,get"], capture_output=True, text=True, timeout=600)
    out = done.stdout.replace("\r", "\n")
    if done.returncode != 0 or "error" in out.lower():
        raise RuntimeError(f"redis-benchmark failed: {out[-500:]} {done.stderr}")
    return {name: float(rate) for name, rate in
            re.findall(r"^(SET|GET): ([\d.]+) requests per second", out, re.M)}


def measure(command: list[str], port: int, args: argparse.Namespace) -> list[dict[str, float]]:
    proc = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_listening(port)
        benchmark(port, 1000, args.clients, 1)  # warm-up
        return [benchmark(port, args.requests, args.clients, p) for p in (1, 16)]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--clients", type=int, default=50)
    args = parser.parse_args()
    if not shutil.which("redis-benchmark"):
        sys.exit("redis-benchmark is not installed (apt-get install redis-tools)")
    wasm = str(ROOT / "build" / "kv.wasm")
    results: list[tuple[str, list[dict[str, float]]]] = []
    with tempfile.TemporaryDirectory() as data:
        if shutil.which("redis-server"):
            port = free_port()
            results.append(("native redis-server (AOF)", measure(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "yes", "--appendfsync", "no", "--dir", data], port, args)))
        else:
            print("redis-server not installed: no native baseline", file=sys.stderr)
        port = free_port()
        results.append(("capsock kv guest (AOF)", measure(
            [sys.executable, "-m", "capsock", "run", "--tcplisten", f"127.0.0.1:{port}",
             "--dir", f"{data}::/data", wasm], port, args)))
    base = results[0][1] if len(results) > 1 else None
    print(f"redis-benchmark -n {args.requests} -c {args.clients} -t set,get, "
          f"{os.cpu_count()} cores")
    print(f"{'server':28} {'SET -P1':>9} {'GET -P1':>9} {'SET -P16':>9} {'GET -P16':>9}")
    for name, runs in results:
        cells = [runs[i][test] for i in (0, 1) for test in ("SET", "GET")]
        print(f"{name:28} " + " ".join(f"{c:>9.0f}" for c in cells))
        if base is not None and runs is not base:
            ratios = [runs[i][t] / base[i][t] for i in (0, 1) for t in ("SET", "GET")]
            print(f"{'  vs native':28} " + " ".join(f"{r:>9.3f}" for r in ratios))


if __name__ == "__main__":
    main()
