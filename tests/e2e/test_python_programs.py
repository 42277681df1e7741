"""Python network programs written the way the Python docs and tutorials
write them (asyncio, ``select``, threads), built with ``capsock build`` from
``tests/e2e/programs/`` and driven by real clients: plain Python sockets
and curl. Each one also runs without its rule and is denied."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .helpers import NativeServer, Running, echo_over, free_port, run_capsock

try:
    from capsock.conformance.dns_server import DnsServer
except ImportError:  # where it lived before
    from ..dns_server import DnsServer  # type: ignore[no-redef]

PROGRAMS = Path(__file__).parent / "programs"
CURL = shutil.which("curl")
WAIT = 60.0


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every program in PROGRAMS, built with `capsock build` (cached by content)."""
    folder = tmp_path_factory.mktemp("programs")
    out: dict[str, Path] = {}
    for script in sorted(PROGRAMS.glob("*.py")):
        target = folder / f"{script.stem}.wasm"
        done = run_capsock("build", str(script), "-o", str(target), timeout=900)
        assert done.returncode == 0, done.stderr
        out[script.stem] = target
    # Compiled now, into the cache `capsock run` uses: a first run would
    # otherwise compile inside the tests' time limits (~10 s idle, ~50 s loaded).
    done = run_capsock("compile", "-q", *map(str, out.values()), timeout=1800)
    assert done.returncode == 0, done.stderr
    return out


def serve(wasm: Path, port: int, *extra: str, ready: str) -> Running:
    """Run a server program allowed to listen on 127.0.0.1:PORT; wait for ``ready``."""
    server = Running("run", f"--allow-inbound=tcp://127.0.0.1:{port}", *extra, str(wasm),
                     "127.0.0.1", str(port))
    try:
        server.wait_for(ready)
    except BaseException:
        server.kill()
        raise
    return server


def stop(server: Running) -> str:
    """Kill a server program; its stderr so far."""
    server.kill()
    server._drain.join(timeout=10)
    return "".join(server._stderr)


def assert_denied_bind(wasm: Path) -> None:
    """Without an inbound rule the program's bind raises PermissionError."""
    done = run_capsock("run", f"--allow-inbound=tcp://127.0.0.1:{free_port()}", str(wasm),
                       "127.0.0.1", str(free_port()))
    assert done.returncode == 1
    assert "PermissionError: [Errno" in done.stderr, done.stderr


def talk(port: int, payload: bytes) -> bytes:
    """Send ``payload``, half-close, read to the end."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as conn:
        conn.sendall(payload)
        conn.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    return received


# -- asyncio -----------------------------------------------------------------------------


def test_asyncio_docs_echo_server_and_client(built: dict[str, Path]) -> None:
    port = free_port()
    server = serve(built["asyncio_echo_server"], port, ready="Serving on ")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as conn:
            conn.sendall(b"from python")
            assert conn.recv(100) == b"from python"
            assert conn.recv(100) == b""  # the server closed it
        client = run_capsock("run", f"--allow-outbound=tcp://127.0.0.1:{port}",
                             str(built["asyncio_echo_client"]), "127.0.0.1", str(port),
                             "Hello World!")
    finally:
        server.kill()
    assert client.returncode == 0, client.stderr
    assert client.stdout.splitlines() == [
        "Send: 'Hello World!'", "Received: 'Hello World!'", "Close the connection"]
    assert server.lines[0] == f"Serving on ('127.0.0.1', {port})"


def test_asyncio_echo_server_and_client_denied_without_rules(
        built: dict[str, Path], native: NativeServer) -> None:
    assert_denied_bind(built["asyncio_echo_server"])
    client = run_capsock("run", "--allow-outbound=tcp://127.0.0.1:1",
                         str(built["asyncio_echo_client"]), "127.0.0.1", str(native.port), "x")
    assert client.returncode == 1
    assert "PermissionError: [Errno" in client.stderr, client.stderr
    assert native.connections == []


def test_asyncio_200_concurrent_connections_each_echo_64k(built: dict[str, Path]) -> None:
    clients = 200
    port = free_port()
    server = Running("run", f"--allow-inbound=tcp://127.0.0.1:{port}",
                     str(built["asyncio_stream_echo"]), "127.0.0.1", str(port), str(clients))
    try:
        server.wait_for("listening on ")
        payloads = [os.urandom(64 * 1024) for _ in range(clients)]
        # all connections open before any finishes: the guest holds 200 at once
        barrier = threading.Barrier(clients, timeout=WAIT)

        def one(payload: bytes) -> bool:
            with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as conn:
                barrier.wait()
                received = echo_over(conn, payload, WAIT)
            return bytes(received) == payload

        with ThreadPoolExecutor(max_workers=clients) as pool:
            results = list(pool.map(one, payloads))
        assert all(results), f"{results.count(False)} connections were not byte-exact"
        code, out, err = server.finish(timeout=120)
    finally:
        server.kill()
    assert code == 0, err
    lines = server.lines + out.splitlines()
    served = [line for line in lines if line.startswith("connection ")]
    assert len(served) == clients
    assert all(line.endswith(f"echoed {64 * 1024} bytes") for line in served)
    assert lines[-1] == "shut down"  # graceful: asyncio.run returned


@pytest.fixture
def native() -> Iterator[NativeServer]:
    server = NativeServer()
    yield server
    server.close()


class UdpEcho:
    """A native UDP peer that echoes each datagram back."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self.seen: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, sender = self.sock.recvfrom(2048)
            except OSError:
                continue
            self.seen.append(data)
            self.sock.sendto(data, sender)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def udp_echo() -> Iterator[UdpEcho]:
    peer = UdpEcho()
    yield peer
    peer.close()


def test_asyncio_tour_streams_sock_methods_datagrams_timers_cancellation_by_name(
        built: dict[str, Path], native: NativeServer, udp_echo: UdpEcho) -> None:
    with DnsServer({"svc.test": ["127.0.0.1"]}) as dns:
        done = run_capsock("run", "--dns", dns.address, "--allow-resolve=svc.test",
                           f"--allow-outbound=tcp://127.0.0.1:{native.port}",
                           f"--allow-outbound=udp://127.0.0.1:{udp_echo.port}",
                           str(built["asyncio_tour"]), "svc.test", str(native.port),
                           str(udp_echo.port))
        assert dns.queries, "the name went to the resolver capability"
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "streams: STREAMS",
        "sock: SOCK METHODS",
        "udp: datagram",
        "timers: call_later, wait_for timed out, timeout() timed out",
        "cancelled: cleanup ran",
        "cancelled: True",
        "to_thread: 6",
        "gather: [0, 1, 2]",
        "done",
    ]
    assert len(native.connections) == 2
    assert udp_echo.seen == [b"datagram"]


def test_asyncio_tour_denied_name_and_address(built: dict[str, Path], native: NativeServer,
                                              udp_echo: UdpEcho) -> None:
    with DnsServer({"svc.test": ["127.0.0.1"]}) as dns:
        no_name = run_capsock("run", "--dns", dns.address, "--allow-resolve=other.test",
                              f"--allow-outbound=tcp://127.0.0.1:{native.port}",
                              str(built["asyncio_tour"]), "svc.test", str(native.port),
                              str(udp_echo.port))
        assert dns.queries == []
    no_address = run_capsock("run", "--allow-outbound=tcp://127.0.0.1:1",
                             str(built["asyncio_tour"]), "127.0.0.1", str(native.port),
                             str(udp_echo.port))
    for done in (no_name, no_address):
        assert done.returncode == 1
        assert "PermissionError: [Errno" in done.stderr, done.stderr
    assert native.connections == []


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_asyncio_http_server_with_curl(built: dict[str, Path]) -> None:
    assert CURL is not None
    port = free_port()
    server = serve(built["asyncio_http"], port, ready="serving on ")
    try:
        base = f"http://127.0.0.1:{port}"
        # two requests on one kept-alive connection, then a POST
        got = subprocess.run([CURL, "-sS", "--max-time", "30", f"{base}/one", f"{base}/two"],
                             capture_output=True, text=True, timeout=WAIT)
        posted = subprocess.run([CURL, "-sS", "--max-time", "30", "-d", "x=1", f"{base}/form"],
                                capture_output=True, text=True, timeout=WAIT)
    finally:
        server.kill()
    assert got.returncode == 0, got.stderr
    assert got.stdout == "Hello from asyncio: GET /one\nHello from asyncio: GET /two\n"
    assert posted.stdout == "Hello from asyncio: POST /form body='x=1'\n"


def test_asyncio_http_server_denied_without_rule(built: dict[str, Path]) -> None:
    assert_denied_bind(built["asyncio_http"])


# -- select --------------------------------------------------------------------------------


def test_select_chat_server_relays_between_clients(built: dict[str, Path]) -> None:
    port = free_port()
    server = serve(built["select_chat"], port, ready="chat server on ")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as alice, \
                socket.create_connection(("127.0.0.1", port), timeout=WAIT) as bob:
            assert server.wait_for("joined ") == "joined 1"
            assert server.wait_for("joined ") == "joined 2"
            alice.sendall(b"hi bob\n")
            assert bob.recv(100) == b"hi bob\n"
            bob.sendall(b"hi alice\n")
            assert alice.recv(100) == b"hi alice\n"
        assert server.wait_for("left ") == "left 1"
        assert server.wait_for("left ") == "left 0"
    finally:
        server.kill()


def test_select_chat_server_denied_without_rule(built: dict[str, Path]) -> None:
    assert_denied_bind(built["select_chat"])


def test_poll_echo_server(built: dict[str, Path]) -> None:
    port = free_port()
    server = serve(built["poll_echo"], port, ready="poll echo on ")
    try:
        payloads = [os.urandom(100_000), b"second client"]
        with ThreadPoolExecutor(max_workers=2) as pool:
            assert list(pool.map(lambda p: talk(port, p), payloads)) == payloads
    finally:
        server.kill()


def test_poll_echo_server_denied_without_rule(built: dict[str, Path]) -> None:
    assert_denied_bind(built["poll_echo"])


# -- threads ---------------------------------------------------------------------------------


def test_threading_tcp_server_line_echo(built: dict[str, Path]) -> None:
    port = free_port()
    server = serve(built["threading_tcp_echo"], port, ready="serving on ")
    try:
        for _ in range(2):  # a second connection after the first one's handler ran inline
            with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as conn:
                lines = conn.makefile("rwb")
                for line in (b"first line\n", b"second line\n"):
                    lines.write(line)
                    lines.flush()
                    assert lines.readline() == line
                lines.close()
    finally:
        err = stop(server)
    assert "Traceback" not in err, err


def test_threading_tcp_server_denied_without_rule(built: dict[str, Path]) -> None:
    assert_denied_bind(built["threading_tcp_echo"])


def test_thread_per_client_echo_serves_clients_one_after_another(
        built: dict[str, Path]) -> None:
    port = free_port()
    server = serve(built["thread_per_client"], port, ready="listening on ")
    try:
        # Concurrent clients are served in turn (threads run inline in a guest).
        payloads = [os.urandom(50_000) for _ in range(4)]
        with ThreadPoolExecutor(max_workers=4) as pool:
            assert list(pool.map(lambda p: talk(port, p), payloads)) == payloads
        assert [server.wait_for("done with ") for _ in payloads] == ["done with 127.0.0.1"] * 4
    finally:
        err = stop(server)
    assert "Traceback" not in err, err


def test_thread_per_client_echo_denied_without_rule(built: dict[str, Path]) -> None:
    assert_denied_bind(built["thread_per_client"])


def test_thread_per_client_under_serve_instances_serves_two_clients_at_once(
        built: dict[str, Path]) -> None:
    """The program binds its own port; that address pre-opened with
    ``--tcplisten`` is the listener of both instances, so a second client
    is served while the first one's handler is still running."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    server = Running("serve", "--instances", "2", f"--allow-inbound=tcp://{address}",
                     "--tcplisten", address, str(built["thread_per_client"]), "127.0.0.1",
                     str(port))
    try:
        assert server.wait_for("listening on ") == f"listening on {port}"
        assert server.wait_for("listening on ") == f"listening on {port}"
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as first:
            first.sendall(b"first")
            assert first.recv(100) == b"first"  # one instance is now inside its handler
            assert talk(port, b"second, meanwhile") == b"second, meanwhile"
            first.sendall(b" still here")
            assert first.recv(100) == b" still here"
    finally:
        server.process.terminate()  # SIGTERM: serve stops its instances, then exits
        try:
            server.process.wait(timeout=WAIT)
        finally:
            server.kill()


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_threading_http_server_with_curl(built: dict[str, Path]) -> None:
    assert CURL is not None
    port = free_port()
    server = serve(built["threading_http"], port, ready="serving on ")
    try:
        base = f"http://127.0.0.1:{port}"
        got = subprocess.run([CURL, "-sS", "--max-time", "30", f"{base}/a", f"{base}/b"],
                             capture_output=True, text=True, timeout=WAIT)
    finally:
        err = stop(server)
    assert got.returncode == 0, got.stderr
    assert got.stdout == "hello from /a\nhello from /b\n"
    assert "Traceback" not in err, err


def test_threading_http_server_denied_without_rule(built: dict[str, Path]) -> None:
    assert_denied_bind(built["threading_http"])


def test_what_threads_and_select_cannot_do_fails_at_the_call_naming_capsock(
        built: dict[str, Path]) -> None:
    done = run_capsock("run", str(built["runtime_limits"]))
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(": ", 1) for line in done.stdout.splitlines())
    assert lines["thread"] == "['ran', 'after start'] alive: False"  # inline, to completion
    assert lines["pool.map"] == "[4, 9]"
    assert lines["pool.submit"] == "3"
    assert lines["timer"] == "['timer'] waited: True"
    assert lines["Event.wait(0.1)"] == "ok False"
    for name in ("Event.wait()", "Queue.get()"):
        assert lines[name].startswith("RuntimeError: capsock: this wait has no timeout"), lines
        assert "capsock serve --instances N" in lines[name]
    assert lines["select(stdin)"].startswith(
        "ValueError: capsock: select waits on the guest's capsock sockets only")
    assert lines["asyncio wait on nothing"].startswith(
        "RuntimeError: capsock: the asyncio event loop has no socket and no timer")
