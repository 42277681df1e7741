"""Where time goes per stream read/write on capsock's WASI host (not a test).

    python bench/wasi_hostcalls.py [--prof]

Runs the wasmtime-cli column's `.wasm` (bench/echo_server.py built with
plain componentize-py, `compare.build_wasi_guest`) in this process under
`Host.run`, drives 1000 64-byte round trips and a 16 MiB bulk echo from a
native client thread, and prints both; with `--prof`, the host calls'
profile (cProfile of the guest's thread: Python host code is itemised,
wasm and wasmtime's own value conversion are the `wasmtime_component_func_call`
line's own time).
"""

from __future__ import annotations

import cProfile
import importlib.util
import pstats
import socket
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "host"))

from capsock import GuestKilled, Host, KillSwitch, Policy  # noqa: E402


def _wasm() -> Path:
    spec = importlib.util.spec_from_file_location("bench_compare", ROOT / "bench" / "compare.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    path: Path = module.build_wasi_guest()
    return path


def main() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    host = Host(policy=Policy.from_flags(allow_inbound=[f"tcp://127.0.0.1:{port}"]))
    switch = KillSwitch()
    results: dict[str, float] = {}

    def client() -> None:
        for _ in range(1200):
            try:
                conn = socket.create_connection(("127.0.0.1", port))
                break
            except OSError:
                time.sleep(0.05)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        count = 1000
        start = time.perf_counter()
        for _ in range(count):
            conn.sendall(b"x" * 64)
            got = b""
            while len(got) < 64:
                got += conn.recv(64 - len(got))
        results["round trip (us)"] = (time.perf_counter() - start) / count * 1e6
        total, chunk = 16 << 20, b"y" * 65536

        def send() -> None:
            for _ in range(total // len(chunk)):
                conn.sendall(chunk)
        start = time.perf_counter()
        sender = threading.Thread(target=send)
        sender.start()
        received = 0
        while received < total:
            received += len(conn.recv(1 << 20))
        sender.join()
        results["bulk echo (MB/s)"] = total / (time.perf_counter() - start) / 1e6
        conn.close()
        time.sleep(0.2)
        switch.kill()

    wasm = _wasm()
    threading.Thread(target=client, daemon=True).start()
    profile = cProfile.Profile() if "--prof" in sys.argv else None
    if profile is not None:
        profile.enable()
    try:
        host.run(wasm, [str(port)], kill_switch=switch)
    except GuestKilled:
        pass
    if profile is not None:
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(15)
    print(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
