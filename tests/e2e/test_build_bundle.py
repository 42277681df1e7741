"""`capsock build` bundles what a program imports: its folder's modules by a
relative path, a package from the registry (bottle, unmodified, with its lazy
``wsgiref`` import), and leaves the compiled artifact where `capsock run`
looks, so the first run after a build is warm. Each program is driven by a
real client under its rule and denied without it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import capsock_command, capsock_env
from .helpers import NativeServer, Running, free_port, run_capsock

#: A componentize-py build plus a cold compile: ~30 s idle, minutes loaded.
BUILD_TIMEOUT = 900.0

MAIN = '''import socket
import sys

import helper

host, port = sys.argv[1], int(sys.argv[2])
with socket.create_connection((host, port), timeout=10) as conn:
    conn.sendall(helper.greeting(sys.argv[3]).encode())
    conn.shutdown(socket.SHUT_WR)
    print("reply:", conn.recv(1024).decode())
'''

HELPER = '''def greeting(name):
    return f"hello {name} from helper"
'''

BOTTLE_APP = '''import sys

from bottle import Bottle, run

app = Bottle()


@app.route("/hello/<name>")
def hello(name):
    return f"hello {name} from bottle\\n"


print("serving", flush=True)
run(app, host="127.0.0.1", port=int(sys.argv[1]), quiet=True)
'''


def _build(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(capsock_command("build", *args), cwd=cwd, capture_output=True,
                          text=True, timeout=BUILD_TIMEOUT, env=capsock_env())


def _entries(cache: Path) -> dict[str, bytes]:
    return {path.relative_to(cache).as_posix(): path.read_bytes()
            for path in sorted(cache.rglob("*")) if path.is_file()
            and not path.relative_to(cache).as_posix().startswith(("builds/", "wit-wasi/"))}


@pytest.fixture
def native() -> Iterator[NativeServer]:
    server = NativeServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def two_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """app/main.py importing app/helper.py, built as `capsock build app/main.py`
    from app/'s parent, with a cache of its own; (the component, the cache)."""
    root = tmp_path_factory.mktemp("relative")
    (root / "app").mkdir()
    (root / "app" / "main.py").write_text(MAIN)
    (root / "app" / "helper.py").write_text(HELPER)
    cache = root / "cache"
    done = _build(root, "app/main.py", "-o", "main.wasm", "--cache-dir", str(cache))
    assert done.returncode == 0, done.stderr
    assert "its modules: helper" in done.stderr
    assert "compiled main.wasm in" in done.stderr
    return root / "main.wasm", cache


def test_relative_path_bundles_the_sibling_module(two_file: tuple[Path, Path],
                                                  native: NativeServer) -> None:
    wasm, cache = two_file
    done = run_capsock("run", "--cache-dir", str(cache),
                       f"--allow-outbound=tcp://127.0.0.1:{native.port}", str(wasm),
                       "127.0.0.1", str(native.port), "ada")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "reply: HELLO ADA FROM HELPER\n"
    assert len(native.connections) == 1


def test_relative_path_app_denied_without_its_rule(two_file: tuple[Path, Path],
                                                   native: NativeServer) -> None:
    wasm, cache = two_file
    done = run_capsock("run", "--cache-dir", str(cache), str(wasm),
                       "127.0.0.1", str(native.port), "ada")
    assert done.returncode == 1
    assert "PermissionError" in done.stderr, done.stderr
    assert native.connections == []


def test_build_leaves_the_compiled_artifact_run_reads(two_file: tuple[Path, Path]) -> None:
    """The build compiled into the cache `run` reads: a run adds nothing to it."""
    wasm, cache = two_file
    compiled = _entries(cache)
    assert [name for name in compiled if name.endswith(".cwasm")], compiled
    done = run_capsock("run", "--cache-dir", str(cache), str(wasm))
    assert done.returncode == 1 and "IndexError" in done.stderr  # no argv: the script's own
    assert _entries(cache) == compiled


def test_cache_key_covers_every_bundled_file(tmp_path: Path, native: NativeServer) -> None:
    """The same app moved and re-timestamped is served from the cache, the
    same bytes; a changed sibling module is rebuilt, never shadowed."""
    app = tmp_path / "app"
    app.mkdir()
    (app / "main.py").write_text(MAIN)
    (app / "helper.py").write_text(HELPER)
    cache = tmp_path / "cache"
    first = _build(app, "main.py", "-o", str(tmp_path / "a.wasm"), "--cache-dir", str(cache))
    assert first.returncode == 0, first.stderr
    moved = tmp_path / "elsewhere"
    shutil.copytree(app, moved)  # new paths and new mtimes
    again = _build(tmp_path, str(moved / "main.py"), "-o", str(tmp_path / "b.wasm"),
                   "--cache-dir", str(cache))
    assert again.returncode == 0 and "up to date" in again.stderr, again.stderr
    assert (tmp_path / "a.wasm").read_bytes() == (tmp_path / "b.wasm").read_bytes()

    (moved / "helper.py").write_text(HELPER.replace("from helper", "from helper v2"))
    changed = _build(moved, "main.py", "-o", str(tmp_path / "c.wasm"), "--cache-dir", str(cache))
    assert changed.returncode == 0 and "up to date" not in changed.stderr, changed.stderr
    done = run_capsock("run", "--cache-dir", str(cache),
                       f"--allow-outbound=tcp://127.0.0.1:{native.port}",
                       str(tmp_path / "c.wasm"), "127.0.0.1", str(native.port), "bo")
    assert done.stdout == "reply: HELLO BO FROM HELPER V2\n", done.stderr


@pytest.fixture(scope="module")
def bottle_wasm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """bottle from the package registry, unmodified, into a --path folder."""
    root = tmp_path_factory.mktemp("bottle")
    site = root / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target", str(site),
                          "bottle"], capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stderr
    assert (site / "bottle.py").is_file()
    (root / "app.py").write_text(BOTTLE_APP)
    cache = root / "cache"
    done = _build(root, "app.py", "--path", str(site), "--no-environment",
                  "--cache-dir", str(cache))
    assert done.returncode == 0, done.stderr
    assert f"packages: bottle ({site})" in done.stderr
    assert "wsgiref" in done.stderr  # imported inside bottle's run(): bundled all the same
    assert "note:" in done.stderr and "gevent" in done.stderr  # optional, reported
    return root / "app.wasm", cache


def test_bottle_from_the_registry_serves_curl(bottle_wasm: tuple[Path, Path]) -> None:
    wasm, cache = bottle_wasm
    port = free_port()
    server = Running("run", "--cache-dir", str(cache), f"--allow-inbound=tcp://127.0.0.1:{port}",
                     str(wasm), str(port))
    try:
        server.wait_for("serving")
        curl = subprocess.run(["curl", "-sS", "--retry", "20", "--retry-connrefused",
                               "--retry-delay", "1", "-m", "30",
                               f"http://127.0.0.1:{port}/hello/world"],
                              capture_output=True, text=True, timeout=120)
    finally:
        server.kill()
    assert curl.returncode == 0, curl.stderr
    assert curl.stdout == "hello world from bottle\n"


def test_bottle_denied_without_its_rule(bottle_wasm: tuple[Path, Path]) -> None:
    wasm, cache = bottle_wasm
    done = run_capsock("run", "--cache-dir", str(cache), str(wasm), str(free_port()))
    assert done.returncode == 1
    assert "PermissionError" in done.stderr, done.stderr


def test_strict_refuses_an_import_it_cannot_bundle(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("import no_such_module_capsock\nprint('hi')\n")
    done = _build(tmp_path, "app.py", "--strict", "--no-environment")
    assert done.returncode == 1
    assert "cannot bundle 'no_such_module_capsock'" in done.stderr
    assert "app.py:1" in done.stderr


def test_a_c_extension_is_refused_by_name(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "speedy").mkdir(parents=True)
    (site / "speedy" / "__init__.py").write_text("from ._fast import go\n")
    (site / "speedy" / "_fast.cpython-311-x86_64-linux-gnu.so").write_bytes(b"\x7fELF")
    (tmp_path / "app.py").write_text("import speedy\n")
    done = _build(tmp_path, "app.py", "--path", str(site))
    assert done.returncode == 1
    assert "cannot bundle 'speedy'" in done.stderr and "C extension" in done.stderr
