"""Stock components (plain Python scripts built with plain componentize-py:
CPython's own `socket`, through wasi-libc to `wasi:sockets`) under capsock's
WASI host, driven by real native clients and servers. Each is allowed by
its rule and refused (PermissionError in the guest, nonzero exit, the
denial named on stderr) without it.

The echo is the very `.wasm` the wasmtime-cli column of bench/compare.py
runs (its build path, cached by content hash); the other scripts in
`plain/` are built by the same function.
"""

from __future__ import annotations

import http.server
import importlib.util
import json
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from ..conftest import BUILD, ROOT
from .helpers import NativeServer, Running, echo_roundtrip, free_port, run_capsock

try:
    from capsock.conformance.dns_server import DnsServer
except ImportError:  # where it lived before
    from ..dns_server import DnsServer  # type: ignore[no-redef]

PLAIN = Path(__file__).parent / "plain"
#: Each plain script and the modules its wrapper imports so that
#: componentize-py bundles them.
SCRIPTS: dict[str, tuple[str, ...]] = {
    # `encodings.idna`: socket.getaddrinfo encodes the host name with it
    "tcp_client": ("socket", "sys", "encodings.idna"),
    "udp_echo": ("socket", "sys"),
    "lookup": ("socket", "sys", "encodings.idna"),
    "http_server": ("sys", "http.server", "encodings.idna"),
    "urllib_client": ("http.client", "sys", "urllib.parse", "urllib.request", "encodings.idna"),
}
CURL = shutil.which("curl")
WAIT = 60.0


def _compare() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_compare", ROOT / "bench" / "compare.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def stock() -> dict[str, Path]:
    """The echo (bench's wasmtime-cli .wasm) and every plain script, built
    with stock componentize-py once (content-hash cached), then compiled
    into capsock's cache so no test waits for a cold compile."""
    compare = _compare()
    out = {"echo": compare.build_wasi_guest()}
    for name, imports in SCRIPTS.items():
        out[name] = compare.build_wasi_guest(PLAIN / f"{name}.py", f"plain_{name}", imports,
                                             BUILD / "wasi-plain")
    done = run_capsock("compile", "-q", *map(str, out.values()), timeout=1800)
    assert done.returncode == 0, done.stderr
    return out


def _refused(done: subprocess.CompletedProcess[str], what: str) -> None:
    assert done.returncode != 0, done.stdout
    assert "PermissionError" in done.stderr, done.stderr
    assert f"{what} denied by the host's policy" in done.stderr, done.stderr


def _serve_echo(wasm: Path, port: int, *extra: str) -> Running:
    server = Running("run", f"--allow-inbound=tcp://127.0.0.1:{port}", *extra, str(wasm),
                     str(port))
    try:
        server.wait_for("listening on", timeout=WAIT)
    except BaseException:
        server.kill()
        raise
    return server


# -- the done-when test ----------------------------------------------------------------

def test_stock_echo_serves_a_native_client(stock: dict[str, Path]) -> None:
    port = free_port()
    server = _serve_echo(stock["echo"], port)
    try:
        payload = bytes(range(256)) * 1024  # 256 KiB: several reads and partial writes
        assert echo_roundtrip(port, payload) == payload
        assert echo_roundtrip(port, b"second connection") == b"second connection"
    finally:
        server.kill()


def test_stock_echo_is_refused_without_the_rule(stock: dict[str, Path]) -> None:
    port = free_port()
    done = run_capsock("run", str(stock["echo"]), str(port), timeout=WAIT)
    _refused(done, f"bind tcp://127.0.0.1:{port}")
    with pytest.raises(ConnectionRefusedError), socket.socket() as probe:
        probe.connect(("127.0.0.1", port))  # nothing was ever bound there


def test_wasmtime_wasi_still_serves_when_asked_not_to_choose(stock: dict[str, Path]) -> None:
    """The capsock guests' path: `Host(wasi="wasmtime")` keeps wasmtime's
    WASI, whose `wasi:sockets` deny everything (no rule reaches them)."""
    from capsock import Host, Policy

    port = free_port()
    host = Host(policy=Policy.from_flags(allow_inbound=[f"tcp://127.0.0.1:{port}"]),
                wasi="wasmtime")
    assert host.run(stock["echo"], [str(port)]) != 0


# -- plain programs -------------------------------------------------------------------

def test_outbound_client_allowed_and_denied(stock: dict[str, Path]) -> None:
    native = NativeServer()
    try:
        done = run_capsock("run", f"--allow-outbound=tcp://127.0.0.1:{native.port}",
                           str(stock["tcp_client"]), "127.0.0.1", str(native.port), "hello",
                           timeout=WAIT)
        assert done.returncode == 0, done.stderr
        assert "reply: HELLO" in done.stdout
        assert len(native.connections) == 1
        denied = run_capsock("run", str(stock["tcp_client"]), "127.0.0.1", str(native.port),
                             "hello", timeout=WAIT)
        _refused(denied, f"connect tcp://127.0.0.1:{native.port}")
        assert len(native.connections) == 1  # the denied connect never reached it
    finally:
        native.close()


def test_udp_echo(stock: dict[str, Path]) -> None:
    port = free_port()
    server = Running("run", f"--allow-inbound=udp://127.0.0.1:{port}", str(stock["udp_echo"]),
                     str(port))
    try:
        server.wait_for("listening on", timeout=WAIT)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(WAIT)
            for payload in (b"one", b"two" * 1000, b"quit"):
                client.sendto(payload, ("127.0.0.1", port))
                data, peer = client.recvfrom(65535)
                assert (data, peer) == (payload, ("127.0.0.1", port))
        code, out, err = server.finish(timeout=WAIT)
        assert code == 0, err
        assert "done" in out
    finally:
        server.kill()
    denied = run_capsock("run", str(stock["udp_echo"]), str(port), timeout=WAIT)
    _refused(denied, f"bind udp://127.0.0.1:{port}")


def test_name_lookup_under_allow_resolve_and_dns(stock: dict[str, Path]) -> None:
    native = NativeServer()
    try:
        with DnsServer({"svc.test": ["127.0.0.1"]}) as dns:
            done = run_capsock("run", "--dns", dns.address, "--allow-resolve=svc.test",
                               f"--allow-outbound=tcp://svc.test:{native.port}",
                               str(stock["lookup"]), "svc.test", str(native.port), "named",
                               timeout=WAIT)
            assert done.returncode == 0, done.stderr
            assert "address: 127.0.0.1" in done.stdout
            assert "reply: NAMED" in done.stdout
            denied = run_capsock("run", "--dns", dns.address, "--allow-resolve=other.test",
                                 f"--allow-outbound=tcp://127.0.0.1:{native.port}",
                                 str(stock["lookup"]), "svc.test", str(native.port), "x",
                                 timeout=WAIT)
        assert denied.returncode != 0
        assert "resolve" in denied.stderr and "svc.test" in denied.stderr, denied.stderr
        assert len(native.connections) == 1
    finally:
        native.close()


def test_http_server_served_to_curl(stock: dict[str, Path]) -> None:
    assert CURL, "curl is needed (apt-get install curl)"
    port = free_port()
    server = Running("run", f"--allow-inbound=tcp://127.0.0.1:{port}",
                     str(stock["http_server"]), str(port))
    try:
        server.wait_for("serving on", timeout=WAIT)
        for path in ("/", "/a/b?c=d"):
            got = subprocess.run([CURL, "-sS", "--max-time", "30",
                                  f"http://127.0.0.1:{port}{path}"],
                                 capture_output=True, text=True, timeout=WAIT)
            assert got.returncode == 0, got.stderr
            assert got.stdout == f"you asked for {path}\n"
    finally:
        server.kill()


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def native_http() -> Iterator[http.server.HTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_urllib_and_http_client_to_a_native_server(
        stock: dict[str, Path], native_http: http.server.HTTPServer) -> None:
    port = native_http.server_address[1]
    url = f"http://127.0.0.1:{port}/hello"
    done = run_capsock("run", f"--allow-outbound=tcp://127.0.0.1:{port}",
                       str(stock["urllib_client"]), url, timeout=WAIT)
    assert done.returncode == 0, done.stderr
    assert 'urllib: 200 {"path": "/hello"}' in done.stdout
    assert 'http.client: 200 {"path": "/hello?client=http.client"}' in done.stdout
    denied = run_capsock("run", str(stock["urllib_client"]), url, timeout=WAIT)
    assert denied.returncode != 0
    assert f"connect tcp://127.0.0.1:{port} denied" in denied.stderr, denied.stderr
