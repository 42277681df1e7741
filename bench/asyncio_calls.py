"""Host calls per 64 B echo round trip: the asyncio echo beside the BSD echo.

    python bench/asyncio_calls.py [--round-trips 500]

Counts, not times: runs `bench/echo_asyncio.py` and `bench/echo_server.py`
(each built with `capsock build`, as `bench/compare.py` builds them) in this
process under a `capsock.Host`, with a counter around every host function
the guest calls, and reports the calls per round trip by function. One
client connection does ``--round-trips`` round trips of 64 B after 50
untimed ones; what it counts does not depend on the machine's speed, except
where a zero-timeout `poll` finds data already there (a busy machine can
change a few per cent of them), so two runs agree to the first decimal.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "host"), str(HERE)]

from common import free_port, wait_listening  # noqa: E402
from compare import ASYNCIO_SCRIPT, SCRIPT, build_capsock_guest  # noqa: E402

from capsock import Host, KillSwitch, Policy  # noqa: E402
from capsock.binding import registrar  # noqa: E402

CALLS: Counter[str] = Counter()


def _counting_compile() -> None:
    """Wrap every compiled host call in a counter keyed by its WIT name."""
    original = registrar._compile

    def compile_(compiler: Any, name: str, impl: Callable[..., Any], ty: Any,
                 lines: Any) -> Callable[..., int]:
        call = original(compiler, name, impl, ty, lines)
        short = name.rpartition("#")[2]

        def counted(*args: Any) -> int:
            CALLS[short] += 1
            return call(*args)
        return counted
    registrar._compile = compile_  # type: ignore[assignment]


def recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise RuntimeError("server closed")
        data += chunk
    return data


def measure(wasm: Path, round_trips: int) -> Counter[str]:
    port = free_port()
    switch = KillSwitch()
    host = Host(policy=Policy.from_flags(allow_inbound=["tcp://127.0.0.1:*"]))
    runner = threading.Thread(target=lambda: _run(host, wasm, port, switch), daemon=True)
    runner.start()
    wait_listening(port)
    msg = os.urandom(64)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(50):
            sock.sendall(msg)
            recv_exact(sock, 64)
        CALLS.clear()
        for _ in range(round_trips):
            sock.sendall(msg)
            if recv_exact(sock, 64) != msg:
                raise RuntimeError("wrong bytes")
        counted = Counter(CALLS)
    switch.kill("benchmark done")
    runner.join(timeout=30)
    return counted


def _run(host: Host, wasm: Path, port: int, switch: KillSwitch) -> None:
    try:
        host.run(wasm, [str(port)], kill_switch=switch)
    except Exception:
        pass  # GuestKilled at the end


def python_calls(round_trips: int, program: str) -> None:
    """Run ``program`` (a *_profile.py echo) under `capsock run`; print its counts."""
    wasm = build_capsock_guest(HERE / f"{program}.py", program)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "capsock", "run",
                             "--allow-inbound=tcp://127.0.0.1:*", str(wasm), str(port),
                             str(round_trips)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(HERE.parent / "host")})
    try:
        wait_listening(port)
        msg = os.urandom(64)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for _ in range(50 + round_trips):
                sock.sendall(msg)
                recv_exact(sock, 64)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    print(f"{program}: {out[out.index('python calls'):]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--round-trips", type=int, default=500)
    parser.add_argument("--python", action="store_true",
                        help="also count each echo's Python calls per round trip "
                             "(bench/echo_*_profile.py, sys.setprofile in the guest)")
    args = parser.parse_args()
    _counting_compile()
    rows = {}
    for label, script, name in (("BSD layer", SCRIPT, "echo_capsock"),
                                ("asyncio", ASYNCIO_SCRIPT, "echo_asyncio_capsock")):
        rows[label] = measure(build_capsock_guest(script, name), args.round_trips)
    names = sorted(set().union(*rows.values()), key=lambda n: -rows["asyncio"][n])
    print(f"host calls per round trip ({args.round_trips} round trips of 64 B, one connection)")
    print(f"{'function':44} {'BSD layer':>10} {'asyncio':>10}")
    for name in names:
        print(f"{name:44} " + " ".join(f"{rows[label][name] / args.round_trips:10.2f}"
                                        for label in rows))
    print(f"{'total':44} " + " ".join(f"{sum(rows[label].values()) / args.round_trips:10.2f}"
                                      for label in rows))
    if args.python:
        for program in ("echo_server_profile", "echo_asyncio_profile"):
            python_calls(args.round_trips, program)
    return 0


if __name__ == "__main__":
    sys.exit(main())
