"""The Quickstart demo: the echo guest serving real clients.

1. `capsock run --tcplisten 127.0.0.1:0 build/echo.wasm` — the host
   pre-opens a listener; the guest accepts on it.
2. A native Python client sends a line and reads the echo.
3. The client guest connects to the echo guest, allowed by exactly one
   rule (`--allow-outbound=tcp://127.0.0.1:PORT`).
4. The same client guest with no rule gets `access-denied`.

It runs the two guests of `GUESTS`, and `just demo` builds only those
(`just build echo client`): keep the two in step.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "host")}
CAPSOCK = [sys.executable, "-m", "capsock", "run"]
#: The guests this demo runs (build/<name>.wasm).
GUESTS = ("echo", "client")


def missing_guests() -> list[str]:
    return [name for name in GUESTS if not (ROOT / "build" / f"{name}.wasm").is_file()]


def main() -> int:
    missing = missing_guests()
    if missing:
        print(f"demo: build the guests first: just build {' '.join(GUESTS)}", file=sys.stderr)
        return 2
    echo = subprocess.Popen([*CAPSOCK, "--tcplisten", "127.0.0.1:0", str(ROOT / "build/echo.wasm"),
                             "--max-connections", "2"], stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert echo.stdout is not None
        line = echo.stdout.readline().strip()
        print(f"[echo guest] {line}")
        address = line.rsplit(" ", 1)[1]
        host, port = address.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=30) as conn:
            conn.sendall(b"hello from a native client")
            conn.shutdown(socket.SHUT_WR)
            reply = b"".join(iter(lambda: conn.recv(4096), b""))
        print(f"[native client] echoed back: {reply.decode()}")
        print(f"[echo guest] {echo.stdout.readline().strip()}")

        allowed = subprocess.run([*CAPSOCK, f"--allow-outbound=tcp://{address}",
                                  str(ROOT / "build/client.wasm"), address, "hello from a guest"],
                                 capture_output=True, text=True, env=ENV, timeout=60)
        print(f"[client guest, allowed] {allowed.stdout.strip()}")
        denied = subprocess.run([*CAPSOCK, str(ROOT / "build/client.wasm"), address, "x"],
                                capture_output=True, text=True, env=ENV, timeout=60)
        print(f"[client guest, no rule] {denied.stderr.strip()} (exit {denied.returncode})")
        print(f"[echo guest] {echo.stdout.readline().strip()}")
        echo.wait(timeout=30)
        ok = "received: hello from a guest" in allowed.stdout and "access-denied" in denied.stderr
        return 0 if ok and echo.returncode == 0 else 1
    finally:
        if echo.poll() is None:
            echo.kill()


if __name__ == "__main__":
    sys.exit(main())
