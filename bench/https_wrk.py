"""HTTPS request rate with wrk: the http guest behind ``--tls-listen``
(the host does TLS), the same guest on plain TCP, and a native Python
HTTPS server, side by side in one run (not a test).

    python bench/https_wrk.py [--duration 10] [--connections 32]

Needs `wrk` (Debian package) and `cryptography` (the test extra): the
certificate is made per run (`capsock.conformance.tls_peers.make_pki`).
wrk keeps its connections alive, so this measures the per-request cost of
TLS records (one handshake per connection, at the start); the issue's goal
is that TLS adds at most 20% to the guest's per-request cost. Prints
requests/s, p99 latency, the ratio to native HTTPS, and the TLS overhead
per request over the guest's plain TCP.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from common import ROOT, free_port
from http_wrk import measure

from capsock.conformance.tls_peers import make_pki


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
            rps, p99 = measure(command(port), port, args.duration, args.connections, scheme)
            results.append((name, rps, p99))
    native = results[0][1]
    print(f"wrk -t2 -c{args.connections} -d{args.duration}s (keep-alive), 2 cores")
    print(f"{'setup':34} {'req/s':>10} {'p99 ms':>9} {'vs native':>10}")
    for name, rps, p99 in results:
        print(f"{name:34} {rps:>10.0f} {p99:>9.2f} {rps / native:>10.3f}")
    plain, tls = results[1][1], results[2][1]
    print(f"TLS adds {(plain / tls - 1) * 100:.1f}% to the guest's per-request cost "
          f"({1e6 / plain:.0f} us -> {1e6 / tls:.0f} us per request)")


if __name__ == "__main__":
    main()
