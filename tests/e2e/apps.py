"""Starting the app guests and finding the real clients that drive them.

The clients (curl, redis-cli, redis-benchmark, logger) are system tools;
`.ci/run` installs them. A missing one fails the test that needs it with
the package to install, never skips it: a green run must mean the app
really talked to its real client.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .helpers import TIMEOUT, Running

#: tool -> the Debian package that provides it
PACKAGES = {"curl": "curl", "redis-cli": "redis-tools", "redis-benchmark": "redis-tools",
            "logger": "bsdutils", "wrk": "wrk", "openssl": "openssl"}


def tool(name: str) -> str:
    """The path of a client tool; fails (does not skip) when it is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: install it (apt-get install -y {PACKAGES[name]}); "
                    ".ci/run does this on CI")
    return path


def run_tool(*args: str, timeout: float = 60, stdin: str | None = None
             ) -> subprocess.CompletedProcess[str]:
    """Run a client tool to completion (bounded in time)."""
    return subprocess.run([tool(args[0]), *args[1:]], capture_output=True, text=True,
                          timeout=timeout, input=stdin)


def port_of(line: str) -> int:
    """The port of a ``listening on [proto] HOST:PORT`` line."""
    return int(line.rsplit(":", 1)[1].split()[0])


def start_app(wasm: Path, *flags: str, ready: str = "listening on") -> tuple[Running, int]:
    """Run an app guest with `flags` (pre-opens, --dir) and wait until it
    listens; returns the process and its port."""
    app = Running("run", *flags, str(wasm))
    try:
        return app, port_of(app.wait_for(ready))
    except BaseException:
        app.kill()
        raise


@dataclass
class SyslogGuest:
    """The syslog app, run by capsock, writing what it receives to `log`
    (one JSON record per message): a real collector for the syslog tests
    and the audit log's syslog sink."""

    udp: int
    tcp: int
    log: Path

    def records(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def wait_for(self, check: str | Callable[[dict[str, Any]], bool], count: int = 1,
                 timeout: float = TIMEOUT) -> list[dict[str, Any]]:
        """The records `check` accepts (a text: those whose msg contains
        it), once there are `count` of them or `timeout` has passed."""
        accepts = ((lambda r: check in r.get("msg", "")) if isinstance(check, str)
                   else check)
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.records() if accepts(r)]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.05)


@contextmanager
def syslog_guest(wasm: Path, data: Path) -> Iterator[SyslogGuest]:
    """Run the syslog app on a UDP and a TCP pre-open, writing under `data`."""
    app = Running("run", "--udpbind", "127.0.0.1:0", "--tcplisten", "127.0.0.1:0",
                  "--dir", f"{data}::/data", str(wasm))
    try:
        udp = port_of(app.wait_for("listening on udp"))
        tcp = port_of(app.wait_for("listening on tcp"))
        yield SyslogGuest(udp, tcp, data / "syslog.jsonl")
    finally:
        app.kill()
