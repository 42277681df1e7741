"""Starting the app guests and finding the real clients that drive them.

The clients (curl, redis-cli, redis-benchmark, logger) are system tools;
`.ci/run` installs them. A missing one fails the test that needs it with
the package to install, never skips it: a green run must mean the app
really talked to its real client.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .helpers import Running

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
