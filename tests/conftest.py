"""Shared fixtures: guest components built once (content-hash cached), and
a runner for the real `capsock` CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"
APPS = ("echo", "client", "probe", "bypass", "poll", "http", "kv", "syslog", "udpecho",
        "resolve", "conformance", "conformance-fast-io", "bsdecho", "bsdprobe", "hostile",
        "fanout")


@pytest.fixture(scope="session")
def guests() -> dict[str, Path]:
    """Every guest app, built by guest/build.py (a no-op when unchanged)."""
    done = subprocess.run([sys.executable, str(ROOT / "guest" / "build.py"), *APPS],
                          cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env=capsock_env())  # this checkout's capsock.toolchain
    if done.returncode != 0:
        pytest.fail(f"guest build failed:\n{done.stdout}\n{done.stderr}")
    return {app: BUILD / f"{app}.wasm" for app in APPS}


def capsock_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "host"), env.get("PYTHONPATH")]))
    return env


def capsock_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "capsock", *args]
