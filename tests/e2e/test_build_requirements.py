"""`capsock build --requirements FILE` / `--with PKG`: packages pip-installed
for the guest from the registry, cached by content, C extensions refused by
name; and a real asyncio library from the registry serving under capsock:
uvicorn (asyncio loop, h11) with an ASGI app, driven by curl, denied
without its rule."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from ..conftest import capsock_command, capsock_env
from .helpers import Running, free_port, run_capsock

#: A componentize-py build plus a cold compile: ~45 s idle, minutes loaded.
BUILD_TIMEOUT = 900.0
PROGRAMS = Path(__file__).parent / "registry"  # built with --requirements


def _build(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(capsock_command("build", *args), cwd=cwd, capture_output=True,
                          text=True, timeout=BUILD_TIMEOUT, env=capsock_env())


@pytest.fixture(scope="module")
def uvicorn_wasm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """uvicorn_asgi.py built with --requirements (uvicorn, h11, click from
    the registry) and nothing from the environment; (component, cache)."""
    root = tmp_path_factory.mktemp("uvicorn")
    shutil.copy(PROGRAMS / "uvicorn_asgi.py", root / "app.py")
    shutil.copy(PROGRAMS / "uvicorn_requirements.txt", root / "requirements.txt")
    cache = root / "cache"
    done = _build(root, "app.py", "--requirements", "requirements.txt", "--no-environment",
                  "--cache-dir", str(cache))
    assert done.returncode == 0, done.stderr
    assert "requirements: installed" in done.stderr and "uvicorn-0.54.0" in done.stderr
    assert "packages: click" in done.stderr and "uvicorn (" in done.stderr
    # uvicorn imports its httptools protocol by string: noted, not fatal
    assert "uvicorn.protocols.http.httptools_impl" in done.stderr
    return root / "app.wasm", cache


def _curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", "--retry", "30", "--retry-connrefused",
                           "--retry-delay", "1", "-m", "30", *args],
                          capture_output=True, text=True, timeout=120)


def test_uvicorn_from_the_registry_serves_curl(uvicorn_wasm: tuple[Path, Path]) -> None:
    wasm, cache = uvicorn_wasm
    port = free_port()
    server = Running("run", "--cache-dir", str(cache), f"--allow-inbound=tcp://127.0.0.1:{port}",
                     str(wasm), "127.0.0.1", str(port))
    try:
        server.wait_for("starting uvicorn")
        base = f"http://127.0.0.1:{port}"
        get = _curl("-i", f"{base}/hello/world")
        # two requests on one kept-alive connection, then a POST echoed back
        both = _curl(f"{base}/one", f"{base}/two")
        post = _curl("-X", "POST", "--data-binary", "ping from curl", f"{base}/echo")
    finally:
        server.kill()
    assert get.returncode == 0, get.stderr
    head, _, body = get.stdout.partition("\n\n")  # text mode: \r\n read as \n
    assert body, get.stdout
    assert head.startswith("HTTP/1.1 200 OK") and "server: uvicorn" in head, head
    assert json.loads(body) == {"path": "/hello/world", "server": "uvicorn"}
    assert both.stdout == ('{"path": "/one", "server": "uvicorn"}'
                           '{"path": "/two", "server": "uvicorn"}'), both.stderr
    assert post.stdout == "ping from curl", post.stderr


def test_uvicorn_denied_without_its_rule(uvicorn_wasm: tuple[Path, Path]) -> None:
    """No TCP rule: asyncio cannot even make a socket (uvicorn says it could not
    bind); a rule for another port: the bind is denied, and said so."""
    wasm, cache = uvicorn_wasm
    port, other = free_port(), free_port()
    done = run_capsock("run", "--cache-dir", str(cache), str(wasm), "127.0.0.1", str(port))
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "could not bind on any address" in done.stderr, done.stderr
    done = run_capsock("run", "--cache-dir", str(cache), f"--allow-inbound=tcp://127.0.0.1:{other}",
                       str(wasm), "127.0.0.1", str(port))
    assert done.returncode == 1, (done.stdout, done.stderr)
    said = done.stderr.lower()  # asyncio lower-cases the error it re-raises
    assert f"bind on 127.0.0.1:{port} denied by the host's policy" in said, done.stderr
    assert f"--allow-inbound=tcp://127.0.0.1:{port}" in said, done.stderr


def test_requirements_are_cached_by_content(uvicorn_wasm: tuple[Path, Path],
                                            tmp_path: Path) -> None:
    """Same requirement bytes elsewhere: no pip run; one more line: pip again."""
    _, cache = uvicorn_wasm
    (tmp_path / "app.py").write_text("import h11\nprint(h11.__version__)\n")
    shutil.copy(PROGRAMS / "uvicorn_requirements.txt", tmp_path / "requirements.txt")
    again = _build(tmp_path, "app.py", "--requirements", "requirements.txt", "--no-environment",
                   "--no-compile", "--cache-dir", str(cache))
    assert again.returncode == 0, again.stderr
    assert "requirements: up to date" in again.stderr and "pip install" not in again.stderr
    done = run_capsock("run", "--cache-dir", str(cache), str(tmp_path / "app.wasm"))
    assert done.stdout == "0.16.0\n", done.stderr


def test_a_package_with_a_c_extension_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("import httptools\n")
    done = _build(tmp_path, "app.py", "--with", "httptools", "--no-compile",
                  "--cache-dir", str(tmp_path / "cache"))
    assert done.returncode == 1
    assert "'httptools' has no pure-Python wheel for the guest" in done.stderr, done.stderr
    assert "componentize-py" not in done.stderr  # refused before any build step
