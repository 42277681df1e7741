"""wrk against asyncio HTTP servers in a guest, beside native CPython running the same programs.

    python bench/asyncio_http_wrk.py [--duration 8] [--connections 32]

The programs, each run natively and under `capsock run` (1 instance):

- ``uvicorn``: `tests/e2e/registry/uvicorn_asgi.py`, an ASGI app under
  uvicorn (``--loop asyncio --http h11``) from the package registry,
  built with ``capsock build --requirements
  tests/e2e/registry/uvicorn_requirements.txt``; natively it runs with the
  same pinned packages, pip-installed for this interpreter under
  ``build/bench/uvicorn-native/``;
- ``asyncio start_server``: `tests/e2e/programs/asyncio_http.py`, HTTP/1.1
  written on ``asyncio.start_server``;

and, for the goal in issue 17 (within 1.5x of it), the guest ``http`` app
(`build/http.wasm`, capsock's own event loop, ``/api/instance``). Needs
`wrk` (Debian package). Not a test: prints requests/s and p99 latency,
and each guest's ratio to its native run and to the ``http`` app.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from common import ENV, ROOT, free_port, stop, wait_listening, wrk

BENCH = ROOT / "build" / "bench"
REGISTRY = ROOT / "tests" / "e2e" / "registry"
UVICORN = REGISTRY / "uvicorn_asgi.py"
REQUIREMENTS = REGISTRY / "uvicorn_requirements.txt"
ASYNCIO_HTTP = ROOT / "tests" / "e2e" / "programs" / "asyncio_http.py"
CAPSOCK = [sys.executable, "-m", "capsock"]


def measure(command: list[str], env: dict[str, str], port: int, path: str, duration: int,
            connections: int) -> tuple[float, float]:
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_listening(port)
        url = f"http://127.0.0.1:{port}{path}"
        wrk(url, 2, connections)  # warm-up
        return wrk(url, duration, connections)
    finally:
        stop(proc)


def build(script: Path, name: str, *extra: str) -> Path:
    out = BENCH / f"{name}.wasm"
    subprocess.run([*CAPSOCK, "build", str(script), "-o", str(out), "-q", *extra], env=ENV,
                   check=True, timeout=900)
    return out


def native_site() -> Path:
    """uvicorn's pinned requirements, installed for this interpreter (once)."""
    site = BENCH / "uvicorn-native"
    if not (site / "uvicorn").is_dir():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target", str(site),
                        "-r", str(REQUIREMENTS)], check=True, timeout=600)
    return site


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (apt-get install wrk)")
    BENCH.mkdir(parents=True, exist_ok=True)
    uvicorn_wasm = build(UVICORN, "uvicorn_asgi", "--requirements", str(REQUIREMENTS),
                         "--no-environment")
    asyncio_wasm = build(ASYNCIO_HTTP, "asyncio_http")
    http_wasm = ROOT / "build" / "http.wasm"
    native_env = {**ENV, "PYTHONPATH": str(native_site())}

    def guest(wasm: Path) -> Callable[[int], list[str]]:
        return lambda p: [*CAPSOCK, "run", f"--allow-inbound=tcp://127.0.0.1:{p}", str(wasm),
                          "127.0.0.1", str(p)]

    def native(script: Path) -> Callable[[int], list[str]]:
        return lambda p: [sys.executable, str(script), "127.0.0.1", str(p)]

    setups: list[tuple[str, Callable[[int], list[str]], dict[str, str], str]] = [
        ("uvicorn, native CPython", native(UVICORN), native_env, "/"),
        ("uvicorn, capsock", guest(uvicorn_wasm), ENV, "/"),
        ("asyncio start_server, native", native(ASYNCIO_HTTP), ENV, "/"),
        ("asyncio start_server, capsock", guest(asyncio_wasm), ENV, "/"),
        ("http app (capsock Loop), capsock",
         lambda p: [*CAPSOCK, "run", "--tcplisten", f"127.0.0.1:{p}", str(http_wasm)],
         ENV, "/api/instance"),
    ]
    results = {}
    for name, command, env, path in setups:
        port = free_port()
        results[name] = measure(command(port), env, port, path, args.duration, args.connections)
    http_rps = results["http app (capsock Loop), capsock"][0]
    native_of = {"uvicorn, capsock": "uvicorn, native CPython",
                 "asyncio start_server, capsock": "asyncio start_server, native"}
    print(f"wrk -t2 -c{args.connections} -d{args.duration}s, one instance each")
    print(f"{'setup':34} {'req/s':>9} {'p99 ms':>8} {'vs native':>10} {'vs http app':>12}")
    for name, (rps, p99) in results.items():
        vs_native = (f"{rps / results[native_of[name]][0]:.3f}" if name in native_of else "")
        vs_http = f"{rps / http_rps:.3f}" if "capsock" in name else ""
        print(f"{name:34} {rps:>9.0f} {p99:>8.2f} {vs_native:>10} {vs_http:>12}")


if __name__ == "__main__":
    main()
