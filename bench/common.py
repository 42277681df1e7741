"""What the benchmark scripts share: where the repo is, how to start the
host, and how to wait for a server on loopback."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: The environment for `python -m capsock` from a source checkout.
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "host")}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_listening(port: int, timeout: float = 120) -> None:
    """Return once 127.0.0.1:`port` accepts a connection (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port}")
