"""What the benchmark scripts share: where the repo is, how to start the
host, and how to wait for a server on loopback."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
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


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM a server (its graceful stop), then kill it after 30 s."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wrk(url: str, duration: int, connections: int,
        cpus: str | None = None) -> tuple[float, float]:
    """(requests/s, p99 ms) of one wrk run against `url`, pinned to `cpus`
    (one wrk thread per CPU; 2 unpinned); errors wrk reports are printed."""
    threads = len(cpus.split(",")) if cpus else 2
    out = subprocess.run(pinned(["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s",
                                 "--latency", url], cpus),
                         capture_output=True, text=True, timeout=duration + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    p99_ms = float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    if errors:
        print(f"  wrk reported: {errors.group(0)}", file=sys.stderr)
    return rps, p99_ms
