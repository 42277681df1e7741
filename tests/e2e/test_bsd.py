"""The guest's BSD-socket layer end to end: Python's own exceptions from code
written against `socket`, unmodified `http.server` / `http.client` /
`selectors` code in the guest (driven by curl and a native server), the
plain-script echo server, and `capsock build` on a script with no capsock
imports, allowed and denied."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from .helpers import NativeServer, Running, echo_roundtrip, free_port, run_capsock

try:
    from capsock.conformance.dns_server import DnsServer
except ImportError:  # where it lived before
    from ..dns_server import DnsServer  # type: ignore[no-redef]

CURL = shutil.which("curl")
WAIT = 20.0


class SilentServer:
    """Accepts connections and never sends: for timeouts and would-block."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self.conns:
            conn.close()
        self.sock.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


@pytest.fixture
def native() -> Iterator[NativeServer]:
    server = NativeServer()
    yield server
    server.close()


def probe_try(guests: dict[str, Path], kind: str, arg: str, *flags: str) -> str:
    done = run_capsock("run", *flags, str(guests["bsdprobe"]), "try", kind, arg)
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip()
    assert line.startswith(f"{kind}: "), done.stdout
    return line[len(kind) + 2:]


# -- exceptions, as Python's socket module raises them ---------------------------


def test_refused_is_connection_refused_error(guests: dict[str, Path]) -> None:
    port = free_port()  # nothing listens there
    out = probe_try(guests, "refused", f"127.0.0.1:{port}",
                    f"--allow-outbound=tcp://127.0.0.1:{port}")
    assert out == "ConnectionRefusedError errno=ECONNREFUSED socket.error"


def test_denied_connect_is_permission_error_and_reaches_nobody(
        guests: dict[str, Path], native: NativeServer) -> None:
    out = probe_try(guests, "denied", f"127.0.0.1:{native.port}",
                    f"--allow-outbound=tcp://127.0.0.1:{native.port + 1}")
    assert out == "PermissionError errno=EACCES socket.error"
    assert native.connections == []


def test_no_tcp_capability_at_all_is_permission_error(guests: dict[str, Path]) -> None:
    assert probe_try(guests, "denied", "127.0.0.1:9").startswith("PermissionError errno=EACCES")


def test_denied_bind_is_permission_error(guests: dict[str, Path]) -> None:
    out = probe_try(guests, "bind-denied", "127.0.0.1:0", "--allow-inbound=tcp://127.0.0.2:*")
    assert out == "PermissionError errno=EACCES socket.error"


def test_recv_timeout_is_timeout_error(guests: dict[str, Path], silent: SilentServer) -> None:
    out = probe_try(guests, "timeout", f"127.0.0.1:{silent.port}",
                    f"--allow-outbound=tcp://127.0.0.1:{silent.port}")
    assert out == "TimeoutError errno=ETIMEDOUT socket.timeout socket.error"


def test_nonblocking_recv_is_blocking_io_error(guests: dict[str, Path],
                                               silent: SilentServer) -> None:
    out = probe_try(guests, "wouldblock", f"127.0.0.1:{silent.port}",
                    f"--allow-outbound=tcp://127.0.0.1:{silent.port}")
    assert out.startswith("BlockingIOError errno=") and out.split("=")[1].split()[0] in (
        "EAGAIN", "EWOULDBLOCK"), out


def test_unknown_name_is_gaierror_and_denied_name_permission_error(
        guests: dict[str, Path]) -> None:
    with DnsServer({"svc.test": ["127.0.0.1"]}) as dns:
        out = probe_try(guests, "noname", "nope.test", "--dns", dns.address,
                        "--allow-resolve=*.test")
        assert out == "gaierror errno=EAI_NONAME socket.gaierror socket.error"
        assert probe_try(guests, "noname", "svc.test", "--dns", dns.address,
                         "--allow-resolve=*.test") == "ok 127.0.0.1"
        asked = len(dns.queries)
        out = probe_try(guests, "denied-name", "svc.test", "--dns", dns.address,
                        "--allow-resolve=other.test")
        assert out == "PermissionError errno=EACCES socket.error"
        assert len(dns.queries) == asked  # denied before any query


def test_connect_ex_returns_errno(guests: dict[str, Path], native: NativeServer) -> None:
    port = free_port()
    rules = [f"--allow-outbound=tcp://127.0.0.1:{native.port}",
             f"--allow-outbound=tcp://127.0.0.1:{port}"]
    assert probe_try(guests, "connect-ex", f"127.0.0.1:{native.port}", *rules) == \
        "ok connect_ex=0"
    assert probe_try(guests, "connect-ex", f"127.0.0.1:{port}", *rules) == \
        "ok connect_ex=ECONNREFUSED"
    assert probe_try(guests, "connect-ex", "127.0.0.1:9", *rules) == "ok connect_ex=EACCES"


def test_socket_options(guests: dict[str, Path], silent: SilentServer) -> None:
    out = probe_try(guests, "options", f"127.0.0.1:{silent.port}",
                    f"--allow-outbound=tcp://127.0.0.1:{silent.port}")
    # TCP_NODELAY, SO_KEEPALIVE, IP_TTL as set, SO_TYPE = SOCK_STREAM; an
    # option the contract lacks is ENOPROTOOPT; fileno is a fake int.
    assert out == ("ok options=[1, 1, 33, 1] rcvbuf_ok=True unknown=ENOPROTOOPT "
                   "peer=127.0.0.1 fileno_int=True timeout=2.5")


# -- unmodified standard-library code ---------------------------------------------


def test_import_socket_is_the_bsd_layer(guests: dict[str, Path]) -> None:
    done = run_capsock("run", str(guests["bsdprobe"]), "info")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["socket", "capsock_guest.bsd", "selectors",
                                   "capsock_guest.bsd_selectors", "http.client.socket",
                                   "capsock_guest.bsd"]


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_http_server_handler_served_to_curl(guests: dict[str, Path]) -> None:
    port = free_port()
    server = Running("run", "--allow-inbound=tcp://127.0.0.1:*", str(guests["bsdprobe"]),
                     "http-serve", f"127.0.0.1:{port}", "2")
    try:
        assert server.wait_for("listening on ") == f"listening on 127.0.0.1:{port}"
        url = f"http://127.0.0.1:{port}"
        got = subprocess.run([str(CURL), "-sS", "-m", "10", "-A", "curl-test",
                              f"{url}/hello?x=1"], capture_output=True, text=True,
                             timeout=WAIT)
        assert got.returncode == 0, got.stderr
        assert json.loads(got.stdout) == {"path": "/hello?x=1", "client": "127.0.0.1",
                                          "agent": "curl-test"}
        posted = subprocess.run([str(CURL), "-sS", "-m", "10", "-w", "\n%{http_code}",
                                 "--data-binary", "name=capsock", f"{url}/items"],
                                capture_output=True, text=True, timeout=WAIT)
        body, status = posted.stdout.rsplit("\n", 1)
        assert status == "201"
        assert json.loads(body) == {"received": "name=capsock", "length": 12}
        code, _, err = server.finish(timeout=WAIT)
    finally:
        server.kill()
    assert code == 0, err
    assert '"GET /hello?x=1 HTTP/1.1" 200' in err  # http.server's own access log
    assert '"POST /items HTTP/1.1" 201' in err


def test_http_client_against_native_server(guests: dict[str, Path]) -> None:
    seen: list[tuple[str, str, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            seen.append((self.command, self.path, self.rfile.read(length)))
            body = f"native {self.command} {self.path}".encode()
            self.send_response(200)
            self.send_header("X-Native", "yes")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    thread.start()
    try:
        rule = f"--allow-outbound=tcp://127.0.0.1:{port}"
        get = run_capsock("run", rule, str(guests["bsdprobe"]), "http-get",
                          f"http://127.0.0.1:{port}/status")
        post = run_capsock("run", rule, str(guests["bsdprobe"]), "http-post",
                           f"http://127.0.0.1:{port}/submit", "payload")
        denied = run_capsock("run", f"--allow-outbound=tcp://127.0.0.1:{port + 1}",
                             str(guests["bsdprobe"]), "http-get", f"http://127.0.0.1:{port}/")
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert get.returncode == 0, get.stderr
    assert get.stdout.splitlines() == ["status 200 OK", "header x-native yes",
                                       "native GET /status"]
    assert post.returncode == 0, post.stderr
    assert post.stdout.splitlines()[-1] == "native POST /submit"
    assert seen == [("GET", "/status", b""), ("POST", "/submit", b"payload")]
    assert denied.returncode == 1
    assert "PermissionError" in denied.stderr


def test_selectors_echo_server_serves_concurrent_clients(guests: dict[str, Path]) -> None:
    port = free_port()
    server = Running("run", "--allow-inbound=tcp://127.0.0.1:*", str(guests["bsdprobe"]),
                     "select", f"127.0.0.1:{port}", "3")
    try:
        server.wait_for("listening on ")
        payloads = [bytes([65 + i]) * (3000 + i) for i in range(3)]
        results: dict[int, bytes] = {}

        def client(i: int) -> None:
            results[i] = echo_roundtrip(port, payloads[i])

        threads = [threading.Thread(target=client, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=WAIT)
        code, out, err = server.finish(timeout=WAIT)
    finally:
        server.kill()
    assert code == 0, err
    assert results == dict(enumerate(payloads))
    assert "served 3 with DefaultSelector" in out


# -- the plain-script echo server ----------------------------------------------------


@pytest.mark.parametrize("peer_mode", ["real", "hidden"])
def test_bsdecho_on_preopened_listener(guests: dict[str, Path], peer_mode: str) -> None:
    echo = Running("run", "--tcplisten", "127.0.0.1:0", f"--peer-address={peer_mode}",
                   str(guests["bsdecho"]), "--max-connections", "1")
    try:
        port = int(echo.wait_for("listening on ").rsplit(":", 1)[1])
        assert echo_roundtrip(port, b"x" * 100_000) == b"x" * 100_000
        code, out, err = echo.finish(timeout=WAIT)
    finally:
        echo.kill()
    assert code == 0, err
    peer = "192.0.0.8:0" if peer_mode == "hidden" else "127.0.0.1:"
    assert f"connection 1 from {peer}" in out
    assert "echoed 100000 bytes" in out


def test_bsdecho_binds_ipv6_under_rule_and_is_denied_without(guests: dict[str, Path]) -> None:
    echo = Running("run", "--allow-inbound=tcp://[::1]:*", str(guests["bsdecho"]), "[::1]:0",
                   "--max-connections", "1")
    try:
        port = int(echo.wait_for("listening on ").rsplit(":", 1)[1])
        assert echo_roundtrip(port, b"six", host="::1") == b"six"
        code, _, err = echo.finish(timeout=WAIT)
    finally:
        echo.kill()
    assert code == 0, err
    denied = run_capsock("run", "--allow-inbound=tcp://127.0.0.1:*", str(guests["bsdecho"]),
                         "[::1]:0")
    assert denied.returncode == 1
    assert "PermissionError" in denied.stderr


# -- capsock build on a plain socket script --------------------------------------------

PLAIN_SCRIPT = '''\
"""A plain socket program: python plain.py server|client HOST PORT [WORDS...]."""
import socket
import sys

mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "server":
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as srv:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((host, port))
        srv.listen()
        print("listening on", srv.getsockname()[1], flush=True)
        conn, addr = srv.accept()
        with conn:
            while data := conn.recv(1024):
                conn.sendall(data)
else:
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(" ".join(sys.argv[4:]).encode())
        s.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := s.recv(1024):
            reply += chunk
    print("reply:", reply.decode())
'''


@pytest.fixture(scope="module")
def plain_wasm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """PLAIN_SCRIPT built with `capsock build` (cached by content hash)."""
    folder = tmp_path_factory.mktemp("plain")
    script = folder / "plain.py"
    script.write_text(PLAIN_SCRIPT)
    done = run_capsock("build", str(script), "-o", str(folder / "plain.wasm"), timeout=600)
    assert done.returncode == 0, done.stderr
    assert "capsock build: wrote" in done.stderr
    again = run_capsock("build", str(script), "-o", str(folder / "again.wasm"))
    assert again.returncode == 0 and "up to date" in again.stderr, again.stderr
    assert (folder / "again.wasm").read_bytes() == (folder / "plain.wasm").read_bytes()
    return folder / "plain.wasm"


def test_capsock_build_plain_script_runs_under_rules(plain_wasm: Path) -> None:
    port = free_port()
    server = Running("run", f"--allow-inbound=tcp://127.0.0.1:{port}", str(plain_wasm),
                     "server", "127.0.0.1", str(port))
    try:
        assert server.wait_for("listening on ") == f"listening on {port}"
        client = run_capsock("run", f"--allow-outbound=tcp://127.0.0.1:{port}", str(plain_wasm),
                             "client", "127.0.0.1", str(port), "hello", "capsock")
        code, _, err = server.finish(timeout=WAIT)
    finally:
        server.kill()
    assert client.returncode == 0, client.stderr
    assert client.stdout == "reply: hello capsock\n"
    assert code == 0, err


def test_capsock_build_plain_script_denied_without_rules(plain_wasm: Path,
                                                         native: NativeServer) -> None:
    server = run_capsock("run", str(plain_wasm), "server", "127.0.0.1", str(free_port()))
    assert server.returncode == 1
    assert "PermissionError: [Errno" in server.stderr, server.stderr
    client = run_capsock("run", "--allow-outbound=tcp://127.0.0.1:1", str(plain_wasm),
                         "client", "127.0.0.1", str(native.port), "x")
    assert client.returncode == 1
    assert "PermissionError: [Errno" in client.stderr, client.stderr
    assert native.connections == []


def test_capsock_build_reports_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def broken(:\n")
    done = run_capsock("build", str(bad), "-o", str(tmp_path / "bad.wasm"))
    assert done.returncode == 1
    assert "bad.py:1" in done.stderr
    missing = run_capsock("build", str(tmp_path / "missing.py"))
    assert missing.returncode == 1 and "cannot read" in missing.stderr


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_udp_sendto_recvfrom_connect(guests: dict[str, Path], host: str) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as peer:
        peer.bind((host, 0))
        peer.settimeout(WAIT)
        port = peer.getsockname()[1]

        def echo() -> None:
            for _ in range(2):
                data, sender = peer.recvfrom(64)
                peer.sendto(data, sender)

        thread = threading.Thread(target=echo, daemon=True)
        thread.start()
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        out = probe_try(guests, "udp", target, f"--allow-outbound=udp://{target}")
        thread.join(timeout=WAIT)
    assert out == f"ok ping pong from {host}:{port}"


def test_udp_sendto_denied_is_permission_error(guests: dict[str, Path]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.bind(("127.0.0.1", 0))
        port = peer.getsockname()[1]
        out = probe_try(guests, "udp", f"127.0.0.1:{port}",
                        f"--allow-outbound=udp://127.0.0.1:{port + 1}")
        peer.setblocking(False)
        with pytest.raises(BlockingIOError):
            peer.recvfrom(64)  # no datagram reached it
    assert out == "PermissionError errno=EACCES socket.error"


def test_getaddrinfo_answers_literals_locally(guests: dict[str, Path]) -> None:
    # No rule at all: no resolver capability, yet literals and None work,
    # and AI_NUMERICHOST refuses a name without asking anyone.
    out = probe_try(guests, "gai", "svc.test")
    assert out == (
        "ok passive=('0.0.0.0', 8080) loop=('::1', 80, 0, 0) "
        "v6=[(<AddressFamily.AF_INET6: 10>, <SocketKind.SOCK_DGRAM: 2>, 17, '', "
        "('::1', 53, 0, 0))] "
        "kinds=[('AF_INET', 'SOCK_STREAM', 6), ('AF_INET', 'SOCK_DGRAM', 17)] "
        "byname=10.1.2.3 numeric=EAI_NONAME")


@pytest.mark.parametrize("backend", ["os", "memory"])
def test_keep_alive_idle_time_set_and_read_back(guests: dict[str, Path], backend: str) -> None:
    """TCP_KEEPIDLE, the option added as WIT lines, one registry row and one
    BSD row, end to end: `setsockopt` in the guest, then `getsockopt`. On
    the OS backend the read-back is `getsockopt` on the host's real
    descriptor (so the kernel holds 30 s); 0 is refused as the contract says."""
    default = (Path("/proc/sys/net/ipv4/tcp_keepalive_time").read_text().strip()
               if backend == "os" else "7200")
    out = probe_try(guests, "keepidle", "30", "--backend", backend,
                    "--allow-outbound=tcp://127.0.0.1:9")  # a TCP capability at all
    assert out == f"ok default={default} set=30 got=30 zero=EINVAL"
