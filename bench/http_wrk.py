"""wrk against the http guest: 1 vs N instances (processes and threads)
beside the same server on native CPython, in one run (not a test).

    python bench/http_wrk.py [--duration 10] [--connections 32] [--instances 2]

Needs `wrk` (Debian package). Prints requests/s and p99 latency for each
setup and its ratio to native.
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import subprocess
import sys

from common import ENV, ROOT, free_port, wait_listening


def wrk(port: int, duration: int, connections: int, scheme: str = "http"
        ) -> tuple[float, float]:
    url = f"{scheme}://127.0.0.1:{port}/api/instance"  # the http guest's JSON route
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", url],
                         capture_output=True, text=True, timeout=duration + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    p99_ms = float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    if errors:
        print(f"  wrk reported: {errors.group(0)}", file=sys.stderr)
    return rps, p99_ms


def measure(command: list[str], port: int, duration: int, connections: int,
            scheme: str = "http") -> tuple[float, float]:
    proc = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_listening(port)
        wrk(port, 2, connections, scheme)  # warm-up
        return wrk(port, duration, connections, scheme)
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
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--instances", type=int, default=2)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (apt-get install wrk)")
    wasm = str(ROOT / "build" / "http.wasm")
    serve = [sys.executable, "-m", "capsock", "serve"]
    n = args.instances
    setups = [
        ("native CPython (selectors)",
         lambda p: [sys.executable, str(ROOT / "bench/native_http.py"),
                                                  str(p)]),
        ("capsock, 1 instance", lambda p: [*serve, "--instances", "1",
                                           "--tcplisten", f"127.0.0.1:{p}", wasm]),
        (f"capsock, {n} processes", lambda p: [*serve, "--instances", str(n), "--mode", "process",
                                              "--tcplisten", f"127.0.0.1:{p}", wasm]),
        (f"capsock, {n} threads", lambda p: [*serve, "--instances", str(n), "--mode", "thread",
                                            "--tcplisten", f"127.0.0.1:{p}", wasm]),
    ]
    results = []
    for name, command in setups:
        port = free_port()
        rps, p99 = measure(command(port), port, args.duration, args.connections)
        results.append((name, rps, p99))
    native = results[0][1]
    print(f"wrk -t2 -c{args.connections} -d{args.duration}s, 2 cores")
    print(f"{'setup':30} {'req/s':>10} {'p99 ms':>9} {'vs native':>10}")
    for name, rps, p99 in results:
        print(f"{name:30} {rps:>10.0f} {p99:>9.2f} {rps / native:>10.3f}")


if __name__ == "__main__":
    main()
