"""The issue's "done when", as a new user meets capsock: from a wheel, with no checkout.

SLOW (a venv, two pip installs, a real componentize-py build and a cold
compile: ~1-3 min, more on a loaded machine), and part of the normal test
run on purpose: it is the only test that sees capsock as installed rather
than as this checkout's ``host/``. Every wait is bounded.

The steps: build a wheel from a copy of this checkout's sources (a copy,
so setuptools' ``build/lib`` leftovers and built guests cannot leak in);
install it in a fresh venv without the ``build`` extra and see ``capsock
build`` name the extra; install the extra; in an empty temporary folder
(no checkout around, no ``PYTHONPATH``, a fresh cache) build a plain
``socket`` script with ``capsock build``; run it with ``capsock run`` under
exactly one rule; a native client gets its line echoed back.
"""

from __future__ import annotations

import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Not part of a source distribution: outputs, caches, venvs.
IGNORED = shutil.ignore_patterns("build", "dist", ".venv", ".git", "*.egg-info", "__pycache__",
                                 ".mypy_cache", ".pytest_cache", ".ruff_cache", ".hypothesis",
                                 "*.wasm")
PIP_TIMEOUT = 900.0
BUILD_TIMEOUT = 900.0
#: The first start compiles the component (~10 s idle, much more loaded).
START_TIMEOUT = 300.0

ECHO_SCRIPT = '''\
"""Echo one line to one client: written for `python echo_line.py`."""
import socket

listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.bind(("127.0.0.1", 0))
listener.listen(1)
print("listening on 127.0.0.1:%d" % listener.getsockname()[1], flush=True)
conn, _ = listener.accept()
line = b""
while not line.endswith(b"\\n"):
    chunk = conn.recv(1024)
    if not chunk:
        break
    line += chunk
conn.sendall(line)
conn.close()
listener.close()
print("echoed %d bytes" % len(line), flush=True)
'''


def _user_env(cache: Path) -> dict[str, str]:
    """A user's environment: nothing that points at this checkout."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "CAPSOCK_ROOT", "VIRTUAL_ENV", "PYTHONHOME")}
    env["CAPSOCK_CACHE_DIR"] = str(cache)
    return env


def _run(cmd: list[str | Path], cwd: Path, env: dict[str, str],
         timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"{done.args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
def test_wheel_builds_and_runs_a_plain_socket_script(tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=IGNORED)
    user = tmp_path / "user"  # the user's folder: no checkout here or above it
    user.mkdir()
    env = _user_env(tmp_path / "cache")

    _ok(_run([sys.executable, "-m", "pip", "wheel", source, "--no-deps", "-q",
              "-w", tmp_path / "dist"], user, env, PIP_TIMEOUT))
    wheels = list((tmp_path / "dist").glob("capsock-*.whl"))
    assert len(wheels) == 1, wheels
    shutil.rmtree(source)  # nothing may come from the sources after this

    venv = tmp_path / "venv"
    _ok(_run([sys.executable, "-m", "venv", venv], user, env, PIP_TIMEOUT))
    pip, capsock, python = venv / "bin" / "pip", venv / "bin" / "capsock", venv / "bin" / "python"
    _ok(_run([pip, "install", "-q", wheels[0]], user, env, PIP_TIMEOUT))
    located = _ok(_run([python, "-c", "from capsock.toolchain import find_sources; "
                                      "s = find_sources(); print(s.wit); print(s.library)"],
                       user, env, 60))
    for line in located.split():
        assert Path(line).is_relative_to(venv), located  # the wheel's copies

    script = user / "echo_line.py"
    script.write_text(ECHO_SCRIPT)
    without_extra = _run([capsock, "build", script, "-o", user / "echo_line.wasm"], user, env,
                         BUILD_TIMEOUT)
    assert without_extra.returncode == 1, without_extra
    assert "pip install 'capsock[build]'" in without_extra.stderr

    _ok(_run([pip, "install", "-q", f"{wheels[0]}[build]"], user, env, PIP_TIMEOUT))
    _ok(_run([capsock, "build", script, "-o", user / "echo_line.wasm"], user, env,
             BUILD_TIMEOUT))
    assert (user / "echo_line.wasm").stat().st_size > 1_000_000

    server = subprocess.Popen([str(capsock), "run", "--allow-inbound=tcp://127.0.0.1:*",
                               "echo_line.wasm"], cwd=user, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines: queue.Queue[str | None] = queue.Queue()

    def read_stdout() -> None:
        assert server.stdout is not None
        for out_line in server.stdout:
            lines.put(out_line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=read_stdout, daemon=True).start()
    try:
        first = lines.get(timeout=START_TIMEOUT)
        assert first is not None and first.startswith("listening on 127.0.0.1:"), (
            first, server.stderr.read() if first is None and server.stderr else "")
        port = int(first.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=60) as client:
            client.sendall(b"hello from a wheel\n")
            reply = b""
            deadline = time.monotonic() + 60
            while not reply.endswith(b"\n") and time.monotonic() < deadline:
                chunk = client.recv(1024)
                if not chunk:
                    break
                reply += chunk
        assert reply == b"hello from a wheel\n"
        assert lines.get(timeout=60) == "echoed 19 bytes"
        assert server.wait(timeout=60) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=10)
