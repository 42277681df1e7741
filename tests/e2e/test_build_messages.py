"""Errors that say what happened, ``localhost`` under an IP rule, and the
working directory of a built script: a denied connect names the operation,
the address and the rule that would allow it (in the guest's exception, and
once on the host's stderr without ``-v``); ``'localhost'`` binds under a
``tcp://127.0.0.1:PORT`` rule with no name rule; ``os.getcwd()`` and
``http.server``'s default directory are the first ``--dir``."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import NativeServer, Running, free_port, run_capsock

SCRIPT = '''import functools
import http.server
import os
import socket
import sys

mode = sys.argv[1]
if mode == "connect":
    socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=10)
elif mode == "localhost":
    with socket.socket() as server:
        server.bind(("localhost", int(sys.argv[2])))
        server.listen()
        print("listening", server.getsockname()[0], flush=True)
        conn, _ = server.accept()
        with conn:
            conn.sendall(conn.recv(100).upper())
elif mode == "cwd":
    print("cwd", os.getcwd(), sorted(os.listdir(".")))
elif mode == "plugin":  # imported by name only: bundled by --include alone
    import importlib
    plugin = importlib.import_module(sys.argv[2])
    print("plugin", plugin.__name__, plugin.rgb_to_hsv(1.0, 0.0, 0.0))
elif mode == "http":
    server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[2])),
                                    http.server.SimpleHTTPRequestHandler)
    print("serving", flush=True)
    server.handle_request()
'''


@pytest.fixture(scope="module")
def wasm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("messages")
    (folder / "probe.py").write_text(SCRIPT)
    done = run_capsock("build", str(folder / "probe.py"), timeout=900)
    assert done.returncode == 0, done.stderr
    return folder / "probe.wasm"


@pytest.fixture
def native() -> Iterator[NativeServer]:
    server = NativeServer()
    yield server
    server.close()


def test_a_denied_connect_names_the_address_and_the_rule(wasm: Path,
                                                         native: NativeServer) -> None:
    port = native.port
    done = run_capsock("run", f"--allow-outbound=tcp://127.0.0.1:{port + 1}", str(wasm),
                       "connect", str(port))
    assert done.returncode == 1
    assert (f"connect to 127.0.0.1:{port} denied by the host's policy; the rule that allows "
            f"it: --allow-outbound=tcp://127.0.0.1:{port}") in done.stderr, done.stderr
    host_line = (f"capsock: connect tcp://127.0.0.1:{port} denied by the host's policy "
                 "(no rule allows it)")
    assert done.stderr.count(host_line) == 1, done.stderr  # without -v, once
    assert native.connections == []


def test_localhost_binds_under_an_ip_rule(wasm: Path) -> None:
    port = free_port()
    server = Running("run", f"--allow-inbound=tcp://127.0.0.1:{port}", str(wasm),
                     "localhost", str(port))
    try:
        assert server.wait_for("listening") == "listening 127.0.0.1"
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
            conn.sendall(b"hi there")
            assert conn.recv(100) == b"HI THERE"
        code, _, err = server.finish(timeout=60)
    finally:
        server.kill()
    assert code == 0, err


def test_localhost_bind_denied_without_its_rule(wasm: Path) -> None:
    port = free_port()
    done = run_capsock("run", f"--allow-inbound=tcp://127.0.0.1:{port + 1}", str(wasm),
                       "localhost", str(port))
    assert done.returncode == 1
    assert f"bind on 127.0.0.1:{port} denied" in done.stderr, done.stderr
    assert "resolving" not in done.stderr  # no name rule was asked for


def test_getcwd_is_the_first_dir(wasm: Path, tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text("hello from the dir\n")
    done = run_capsock("run", "--dir", f"{tmp_path}::/srv", str(wasm), "cwd")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "cwd /srv ['hello.txt']\n"


def test_http_server_default_directory_is_the_first_dir(wasm: Path, tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text("hello from the dir\n")
    port = free_port()
    server = Running("run", "--dir", f"{tmp_path}::/srv", f"--allow-inbound=tcp://127.0.0.1:{port}",
                     str(wasm), "http", str(port))
    try:
        server.wait_for("serving")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/hello.txt", timeout=60) as reply:
            body = reply.read()
        code, _, err = server.finish(timeout=60)
    finally:
        server.kill()
    assert body == b"hello from the dir\n"
    assert code == 0, err


def test_http_server_denied_without_its_rule(wasm: Path, tmp_path: Path) -> None:
    done = run_capsock("run", "--dir", f"{tmp_path}::/srv", str(wasm), "http", str(free_port()))
    assert done.returncode == 1
    assert "PermissionError" in done.stderr, done.stderr


def test_a_module_imported_by_name_only_is_named_with_the_way_out(wasm: Path) -> None:
    """What ``capsock build`` cannot see (a plugin imported by name) fails
    at run time with the module's name and the flag that bundles it."""
    done = run_capsock("run", str(wasm), "plugin", "colorsys")
    assert done.returncode == 1
    assert "ModuleNotFoundError: No module named 'colorsys'" in done.stderr, done.stderr
    assert ("capsock: module 'colorsys' is not in this component" in done.stderr
            and "`capsock build --include colorsys APP.py`" in done.stderr), done.stderr


def test_include_bundles_it(tmp_path: Path) -> None:
    (tmp_path / "probe.py").write_text(SCRIPT)
    done = run_capsock("build", "--include", "colorsys", str(tmp_path / "probe.py"),
                       timeout=900)
    assert done.returncode == 0, done.stderr
    done = run_capsock("run", str(tmp_path / "probe.wasm"), "plugin", "colorsys")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["plugin", "colorsys", "(0.0,", "1.0,", "1.0)"]


def test_include_refuses_what_is_not_a_module_name(tmp_path: Path) -> None:
    (tmp_path / "probe.py").write_text("print('hi')\n")
    done = run_capsock("build", "--include", "../evil", str(tmp_path / "probe.py"))
    assert done.returncode == 1
    assert "--include '../evil': not a module name" in done.stderr, done.stderr
    assert not (tmp_path / "probe.wasm").exists()
