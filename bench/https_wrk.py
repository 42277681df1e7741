"""HTTPS request rate with wrk: the http guest behind ``--tls-listen``
(the host does TLS), the same guest on plain TCP, and a native Python
HTTPS server, side by side in one run (not a test).

    python bench/https_wrk.py [--duration 10] [--connections 32]

Needs `wrk` (Debian package) and `cryptography` (the test extra): the
certificate is made per run (`capsock.conformance.tls_peers.make_pki`).
wrk keeps its connections alive, so this measures the per-request cost of
TLS records (one handshake per connection, at the start); the issue's goal
is that TLS adds at most 20% to the guest's per-request cost. Prints
requests/s, p99 latency, the ratio to native HTTPS, the server process's
CPU time per request (/proc; steadier than req/s on a shared machine),
and the TLS overhead in CPU per request over the guest's plain TCP.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ENV, ROOT, free_port, stop, wait_listening, wrk
from http_wrk import url_of

from capsock.conformance.tls_peers import make_pki


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(command: list[str], port: int, duration: int, connections: int,
            scheme: str) -> tuple[float, float, float]:
    """req/s, p99 ms, and the server's CPU microseconds per request (less
    sensitive to other load on the machine than req/s)."""
    proc = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_listening(port)
        wrk(url_of(port, scheme), 2, connections)  # warm-up
        before = cpu_seconds(proc.pid)
        rps, p99 = wrk(url_of(port, scheme), duration, connections)
        cpu = cpu_seconds(proc.pid) - before
        return rps, p99, cpu * 1e6 / max(1.0, rps * duration)
    finally:
        stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (apt-get install wrk)")
    wasm = str(ROOT / "build" / "http.wasm")
    run = [sys.executable, "-m", "capsock", "run"]
    with tempfile.TemporaryDirectory(prefix="capsock-bench-pki-") as folder:
        pki = make_pki(Path(folder))
        cert, key = (str(path) for path in pki.leaves["good"])
        setups = [
            ("native CPython HTTPS (asyncio)", "https",
             lambda p: [sys.executable, str(ROOT / "bench/native_https.py"), str(p), cert, key]),
            ("capsock http guest, TCP", "http",
             lambda p: [*run, "--tcplisten", f"127.0.0.1:{p}", wasm]),
            ("capsock http guest, --tls-listen", "https",
             lambda p: [*run, "--tls-listen", f"127.0.0.1:{p}", "--tls-cert", cert,
                        "--tls-key", key, wasm]),
        ]
        results = []
        for name, scheme, command in setups:
            port = free_port()
            results.append((name, *measure(command(port), port, args.duration,
                                           args.connections, scheme)))
    native = results[0][1]
    print(f"wrk -t2 -c{args.connections} -d{args.duration}s (keep-alive), 2 cores")
    print(f"{'setup':34} {'req/s':>10} {'p99 ms':>9} {'vs native':>10} {'CPU us/req':>11}")
    for name, rps, p99, cpu in results:
        print(f"{name:34} {rps:>10.0f} {p99:>9.2f} {rps / native:>10.3f} {cpu:>11.1f}")
    plain, tls = results[1][3], results[2][3]
    print(f"TLS adds {(tls / plain - 1) * 100:.1f}% to the guest's CPU per request "
          f"({plain:.0f} us -> {tls:.0f} us: the server process's user+system time)")


if __name__ == "__main__":
    main()
