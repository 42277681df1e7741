"""Foundation numbers, measured side by side in one run (not a test).

    python bench/foundation.py [--repeat 5]

Reports: cold start (compile) vs cached start of the echo guest to
"listening", 1 MiB echo throughput through the guest vs a native Python
echo server, and the cost of one host call measured from a guest loop.
Medians of interleaved repetitions.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.e2e.helpers import echo_roundtrip  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": str(ROOT / "host")}
CAPSOCK = [sys.executable, "-m", "capsock", "run"]
PAYLOAD = os.urandom(1 << 20)


def start_echo(cache_dir: str) -> tuple[subprocess.Popen[str], int, float]:
    began = time.perf_counter()
    proc = subprocess.Popen([*CAPSOCK, "--cache-dir", cache_dir, "--tcplisten", "127.0.0.1:0",
                             str(ROOT / "build/echo.wasm")], stdout=subprocess.PIPE, text=True,
                            env=ENV)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    elapsed = time.perf_counter() - began
    return proc, int(line.rsplit(":", 1)[1]), elapsed


def native_echo() -> tuple[socket.socket, int]:
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                while chunk := conn.recv(65536):
                    conn.sendall(chunk)
    threading.Thread(target=serve, daemon=True).start()
    return server, server.getsockname()[1]


def throughput(port: int) -> float:
    began = time.perf_counter()
    assert echo_roundtrip(port, PAYLOAD) == PAYLOAD
    return len(PAYLOAD) / (time.perf_counter() - began) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cold_dir:
        proc, _, cold = start_echo(cold_dir)
        proc.kill()
        proc.wait()
        warm_dir = cold_dir
        starts, guest_mbps, native_mbps = [], [], []
        server, native_port = native_echo()
        for _ in range(args.repeat):
            proc, port, started = start_echo(warm_dir)
            starts.append(started)
            guest_mbps.append(throughput(port))
            native_mbps.append(throughput(native_port))
            proc.kill()
            proc.wait()
        server.close()
    calls = subprocess.run([*CAPSOCK, "--allow-inbound=tcp://127.0.0.1:*",
                            str(ROOT / "build/probe.wasm"), "hostcall", "20000"],
                           capture_output=True, text=True, env=ENV, timeout=300)
    hostcall = calls.stdout.strip().rsplit(" ", 1)[-1]
    g, n = statistics.median(guest_mbps), statistics.median(native_mbps)
    print(f"{'metric':38} {'value':>12}")
    print(f"{'echo guest start, cold (compile)':38} {cold * 1000:>10.0f} ms")
    print(f"{'echo guest start, cached':38} {statistics.median(starts) * 1000:>10.0f} ms")
    print(f"{'1 MiB echo, capsock guest':38} {g:>9.1f} MB/s")
    print(f"{'1 MiB echo, native CPython':38} {n:>9.1f} MB/s")
    print(f"{'guest / native throughput':38} {g / n:>12.3f}")
    print(f"{'host call (guest loop, 20000 calls)':38} {hostcall:>10} us")


if __name__ == "__main__":
    main()
