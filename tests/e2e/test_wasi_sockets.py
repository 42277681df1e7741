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
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from capsock import (
    ErrorCode,
    GuestKilled,
    Host,
    KillSwitch,
    MemoryBackend,
    NetError,
    Policy,
    VirtualConnection,
    VirtualNetwork,
)

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
    "many_sockets": ("socket",),
    "files": ("os", "sys"),
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


# -- the memory backend, serve, audit, limits --------------------------------------------

class _Upper:
    """An in-process service on a virtual network: answers each connection
    with its bytes upper-cased, and remembers who connected."""

    def __init__(self, net: VirtualNetwork, address: str) -> None:
        self.peers: list[str] = []
        self.listener = net.listen(address)
        self.listener.serve(self._handle)

    def _handle(self, conn: VirtualConnection) -> None:
        self.peers.append(str(conn.remote_address))
        conn.sendall(conn.recv_all().upper())


def test_memory_backend_client(stock: dict[str, Path],
                               capfd: pytest.CaptureFixture[str]) -> None:
    net = VirtualNetwork(hosts=["10.0.0.9"])
    service = _Upper(net, "10.0.0.5:7")
    try:
        host = Host(policy=Policy.from_flags(allow_outbound=["tcp://10.0.0.5:7"]),
                    backend=MemoryBackend(net))
        assert host.run(stock["tcp_client"], ["10.0.0.5", "7", "virtual"]) == 0
        assert "reply: VIRTUAL" in capfd.readouterr().out
        assert len(service.peers) == 1
        denied = Host(backend=MemoryBackend(net))
        assert denied.run(stock["tcp_client"], ["10.0.0.5", "7", "no"]) != 0
        assert "PermissionError" in capfd.readouterr().err
        assert len(service.peers) == 1
    finally:
        service.listener.close()


def test_memory_backend_echo_server_and_its_kill(stock: dict[str, Path]) -> None:
    """The echo serves in-process clients on a virtual network; a kill
    wakes it where it waits (a `wasi:io/poll` on its listener)."""
    net = VirtualNetwork()
    host = Host(policy=Policy.from_flags(allow_inbound=["tcp://127.0.0.1:7000"]),
                backend=MemoryBackend(net))
    switch = KillSwitch()
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(host.run(stock["echo"], ["7000"], kill_switch=switch))
        except GuestKilled as killed:
            outcome.append(killed)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT
    while True:
        try:
            conn = net.connect("127.0.0.1:7000", timeout=WAIT)
            break
        except NetError as error:
            assert error.code is ErrorCode.CONNECTION_REFUSED and time.monotonic() < deadline
            time.sleep(0.05)
    payload = bytes(range(256)) * 2048  # 512 KiB: more than a virtual send buffer
    with conn:
        sender = threading.Thread(target=lambda: (conn.sendall(payload), conn.shutdown_write()))
        sender.start()
        assert conn.recv_all() == payload
        sender.join(WAIT)
    switch.kill()
    thread.join(WAIT)
    assert len(outcome) == 1 and isinstance(outcome[0], GuestKilled)


def test_serve_hands_each_instance_the_shared_listener(stock: dict[str, Path]) -> None:
    """A stock server binds its port; under `serve --tcplisten` at that
    address each instance's bind takes over its copy of the shared
    listener (no --allow-inbound needed: the operator opened it)."""
    port = free_port()
    server = Running("serve", "--instances", "2", "--mode", "thread", "--grace", "1",
                     "--tcplisten", f"127.0.0.1:{port}", str(stock["echo"]), str(port))
    try:
        # One line: the two instances print at once, and CPython's print
        # writes its text and its newline separately, so their lines can
        # merge; the listener is the operator's, listening already.
        server.wait_for("listening on", timeout=WAIT)
        for i in range(6):
            payload = f"request {i}".encode() * 100
            assert echo_roundtrip(port, payload) == payload
        server.process.send_signal(signal.SIGTERM)
        _code, _out, err = server.finish(timeout=WAIT)
        # The script has no way to stop but an error: its accept fails
        # once serve shuts the listener down (exit codes [1, 1]).
        assert "capsock: shut down" in err and "0 socket(s) still open" in err, err
    finally:
        server.kill()


def test_audit_lines_and_socket_limit(stock: dict[str, Path], tmp_path: Path) -> None:
    native = NativeServer()
    audit = tmp_path / "audit.jsonl"
    try:
        target = f"127.0.0.1:{native.port}"
        done = run_capsock("run", "--audit-log", str(audit),
                           f"--allow-outbound=tcp://{target}", str(stock["tcp_client"]),
                           "127.0.0.1", str(native.port), "audited", timeout=WAIT)
        assert done.returncode == 0, done.stderr
        denied = run_capsock("run", "--audit-log", str(audit), str(stock["tcp_client"]),
                             "127.0.0.1", str(native.port), "x", timeout=WAIT)
        assert denied.returncode != 0
        limited = run_capsock("run", "--audit-log", str(audit), "--max-sockets=3",
                              str(stock["many_sockets"]), timeout=WAIT)
        assert limited.returncode == 0, limited.stderr
        assert "refused after 3: [Errno 33] No file descriptors available" in limited.stdout, \
            limited.stdout
        lines = [json.loads(line) for line in audit.read_text().splitlines()]
        seen = [(line["operation"], line["target"], line["allowed"]) for line in lines]
        assert ("connect", target, True) in seen
        assert ("connect", target, False) in seen
        assert any(op == "limit" and "max_sockets" in (line["rule"] or "")
                   for (op, _, _), line in zip(seen, lines, strict=True)), lines
        assert len(native.connections) == 1
    finally:
        native.close()


def test_a_component_importing_both_capsock_net_and_wasi(guests: dict[str, Path]) -> None:
    """capsock's own echo guest imports `capsock:net` and (through
    componentize-py's runtime) `wasi:sockets`: under --wasi-sockets one
    instance gets both from capsock, in one handle table."""
    server = Running("run", "--wasi-sockets", "--tcplisten", "127.0.0.1:0",
                     str(guests["echo"]), "--", "--max-connections", "1")
    try:
        line = server.wait_for("listening on", timeout=WAIT)
        port = int(line.rsplit(":", 1)[1])
        assert echo_roundtrip(port, b"both worlds" * 1000) == b"both worlds" * 1000
        code, _out, err = server.finish(timeout=WAIT)
        assert code == 0, err
    finally:
        server.kill()


def test_files_under_a_dir_preopen_and_nothing_outside(stock: dict[str, Path],
                                                       tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "link").symlink_to(tmp_path)  # a way out, if paths were not confined
    done = run_capsock("run", "--dir", f"{shared}::/data", str(stock["files"]), "/data",
                       timeout=WAIT)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "read: written by the guest" in out
    assert "listing: ['link', 'note.txt', 'sub']" in out
    assert "size: 21" in out
    assert "ESCAPED" not in out and out.count("refused ") == 2, out
    assert "after: ['link']" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared"]
