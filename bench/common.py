"""What the benchmark scripts share: where the repo is, how to start the
host, and how to wait for a server on loopback."""

from __future__ import annotations

import os
import shutil
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


def cpu_split(servers: int) -> tuple[str | None, str | None]:
    """``taskset -c`` CPU lists for the servers (one CPU each) and for the
    load generator (the rest), or (None, None) when this machine cannot
    keep them apart (no taskset, or no CPU left for the load). A load
    generator sharing a core with the server it measures takes its CPU
    time from that server: on 2 CPUs `wrk` alone used most of one."""
    cpus = sorted(os.sched_getaffinity(0))
    if not shutil.which("taskset") or len(cpus) <= servers:
        return None, None
    return ",".join(map(str, cpus[:servers])), ",".join(map(str, cpus[servers:]))


def pinned(command: list[str], cpus: str | None) -> list[str]:
    """`command` run on `cpus` (its children inherit it), or as it is."""
    return ["taskset", "-c", cpus, *command] if cpus else command


def markdown(head: list[str], rows: list[list[str]]) -> str:
    """A Markdown table, first column left-aligned, the others right."""
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
