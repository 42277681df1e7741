"""Soak: long bounded load against the http and kv guests (not a test, not CI).

    python bench/soak.py [--minutes 5] [--only http|kv] [--connections 32]
                         [--clients 50]

For each guest, one ``capsock run`` process (the host and the guest in one
process, so /proc/PID is the host's) is started on a free port with a
``--dir`` pre-open, warmed up, and then measured:

- http: ``wrk`` against ``/api/instance`` and a static file, in 60 s slices
  until ``--minutes`` have passed;
- kv: ``redis-benchmark -t set,get`` (unpipelined and ``-P 16``) in rounds
  until ``--minutes`` have passed.

Reported: requests/s, errors (wrk's socket errors and non-2xx/3xx
responses; redis-benchmark's failures and error replies), and the host's
open descriptors and RSS from ``/proc/PID`` after the warm-up and at the
end (once the load's connections have closed). Pass: zero errors, no
descriptor growth, RSS growth under 5 %. Exit status 1 on any failure.
Needs ``wrk`` and ``redis-benchmark`` (Debian: wrk, redis-tools) and the
guests built (``python guest/build.py http kv``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from common import ENV, ROOT, free_port, stop, wait_listening

WARMUP = 15  # seconds of load per route before the start snapshot
SETTLE = 10.0  # seconds allowed for the load's connections to close at the end


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


@dataclass
class Result:
    name: str
    requests: int = 0
    seconds: float = 0.0
    errors: int = 0
    notes: list[str] = field(default_factory=list)
    fds: tuple[int, int] = (0, 0)
    rss: tuple[int, int] = (0, 0)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def rss_growth(self) -> float:
        return (self.rss[1] - self.rss[0]) / self.rss[0] if self.rss[0] else 0.0

    def checks(self) -> list[tuple[str, bool]]:
        return [("zero errors", self.errors == 0 and self.requests > 0),
                ("no fd growth", self.fds[1] <= self.fds[0]),
                ("RSS growth < 5%", self.rss_growth < 0.05)]


class Host:
    """A ``capsock run`` process serving one guest."""

    def __init__(self, wasm: Path, port: int, directory: str, guest_dir: str) -> None:
        self.port = port
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "capsock", "run", "--tcplisten", f"127.0.0.1:{port}",
             "--dir", f"{directory}::{guest_dir}", str(wasm)],
            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_listening(port)

    def snapshot(self, baseline: int | None = None) -> tuple[int, int]:
        """(fds, RSS KiB); with `baseline`, waits up to SETTLE s for the fds
        to come back down to it (connections of the load still closing)."""
        deadline = time.monotonic() + SETTLE
        while baseline is not None and open_fds(self.proc.pid) > baseline \
                and time.monotonic() < deadline:
            time.sleep(0.25)
        return open_fds(self.proc.pid), rss_kib(self.proc.pid)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        stop(self.proc)


def wrk(url: str, seconds: int, connections: int) -> tuple[int, float, int, str]:
    """(requests, duration s, errors, error text) of one wrk run."""
    done = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", url],
                          capture_output=True, text=True, timeout=seconds + 120)
    out = done.stdout
    found = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", out)
    if done.returncode != 0 or found is None:
        return 0, float(seconds), 1, f"wrk failed: {out[-300:]} {done.stderr[-300:]}"
    requests = int(found.group(1))
    duration = float(found.group(2)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[found.group(3)]
    errors, text = 0, []
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                              r"timeout (\d+)", out)
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
        text.append(socket_errors.group(0))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        errors += int(non2xx.group(1))
        text.append(non2xx.group(0))
    return requests, duration, errors, "; ".join(text)


def soak_http(minutes: float, connections: int) -> Result:
    result = Result("http guest, wrk")
    with tempfile.TemporaryDirectory() as site:
        Path(site, "index.html").write_text("<!doctype html><h1>capsock soak</h1>\n")
        Path(site, "blob.bin").write_bytes(os.urandom(64 * 1024))
        port = free_port()
        host = Host(ROOT / "build" / "http.wasm", port, site, "/www")
        try:
            urls = [f"http://127.0.0.1:{port}/api/instance", f"http://127.0.0.1:{port}/blob.bin"]
            for url in urls:  # warm-up: both routes, until the heap has settled
                wrk(url, WARMUP, connections)
            time.sleep(1)
            start = host.snapshot()
            end_at = time.monotonic() + minutes * 60
            turn = 0
            while (left := end_at - time.monotonic()) > 1:
                requests, seconds, errors, text = wrk(urls[turn % 2], int(min(60, left)),
                                                      connections)
                result.requests += requests
                result.seconds += seconds
                result.errors += errors
                if text:
                    result.notes.append(f"{urls[turn % 2]}: {text}")
                turn += 1
                if not host.alive():
                    result.errors += 1
                    result.notes.append("the host exited")
                    break
            end = host.snapshot(baseline=start[0])
            result.fds, result.rss = (start[0], end[0]), (start[1], end[1])
        finally:
            host.stop()
    return result


def redis_benchmark(port: int, requests: int, clients: int, pipeline: int
                    ) -> tuple[int, float, int, str]:
    """(requests, duration s, errors, error text) of one redis-benchmark run."""
    began = time.monotonic()
    done = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-q",
                           "-n", str(requests), "-c", str(clients), "-P", str(pipeline),
                           "-t", "set,get"], capture_output=True, text=True, timeout=900)
    elapsed = time.monotonic() - began
    out = (done.stdout + done.stderr).replace("\r", "\n")
    rates = re.findall(r"^(SET|GET): ([\d.]+) requests per second", out, re.M)
    bad = [line for line in out.splitlines() if re.search(r"error|fail|refused|reset", line, re.I)]
    errors = len(bad) + (1 if done.returncode != 0 or len(rates) != 2 else 0)
    return requests * 2, elapsed, errors, "; ".join(bad[:3])


def soak_kv(minutes: float, clients: int) -> Result:
    result = Result("kv guest, redis-benchmark")
    with tempfile.TemporaryDirectory() as data:
        port = free_port()
        host = Host(ROOT / "build" / "kv.wasm", port, data, "/data")
        try:
            redis_benchmark(port, 20000, clients, 1)  # warm-up
            redis_benchmark(port, 20000, clients, 16)
            time.sleep(1)
            start = host.snapshot()
            end_at = time.monotonic() + minutes * 60
            turn = 0
            while end_at - time.monotonic() > 1:
                pipeline = (1, 16)[turn % 2]
                requests, seconds, errors, text = redis_benchmark(
                    port, 50_000 if pipeline == 1 else 200_000, clients, pipeline)
                result.requests += requests
                result.seconds += seconds
                result.errors += errors
                if text:
                    result.notes.append(f"-P {pipeline}: {text}")
                turn += 1
                if not host.alive():
                    result.errors += 1
                    result.notes.append("the host exited")
                    break
            end = host.snapshot(baseline=start[0])
            result.fds, result.rss = (start[0], end[0]), (start[1], end[1])
        finally:
            host.stop()
    return result


def report(result: Result) -> bool:
    print(f"{result.name}: {result.requests} requests in {result.seconds:.0f} s "
          f"= {result.rate:.0f} req/s, errors {result.errors}")
    print(f"  host fds   start {result.fds[0]:>8}  end {result.fds[1]:>8}")
    print(f"  host RSS   start {result.rss[0]:>8} KiB  end {result.rss[1]:>8} KiB "
          f"({result.rss_growth * 100:+.1f}%)")
    for note in result.notes[:5]:
        print(f"  note: {note}")
    checks = result.checks()
    print("  " + ", ".join(f"{name}: {'PASS' if ok else 'FAIL'}" for name, ok in checks))
    return all(ok for _, ok in checks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--only", choices=("http", "kv"))
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--clients", type=int, default=50, help="redis-benchmark clients")
    args = parser.parse_args()
    for tool, package in (("wrk", "wrk"), ("redis-benchmark", "redis-tools")):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed (apt-get install {package})")
    print(f"soak: {args.minutes:g} min each, {os.cpu_count()} cores", flush=True)
    ok = True
    if args.only in (None, "http"):
        ok &= report(soak_http(args.minutes, args.connections))
        sys.stdout.flush()
    if args.only in (None, "kv"):
        ok &= report(soak_kv(args.minutes, args.clients))
    print("soak: PASS" if ok else "soak: FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
