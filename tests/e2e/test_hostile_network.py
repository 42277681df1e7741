"""A hostile network against real guests: peers that reset mid-stream,
half-close, never read, open and drop connections by the hundred, trickle
headers (slow-loris), flood datagrams, and a DNS server that is slow, lies,
or answers with garbage. Each test is bounded in time and ends by checking
that the guest still serves a normal client promptly."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from .apps import start_app
from .helpers import Running, echo_over, echo_roundtrip, run_capsock

PROMPT = 5.0  # seconds a normal client may wait while the guest is under attack


def drain_stdout(app: Running) -> None:
    """Keep reading the app's stdout (one line per connection or datagram)
    so a chatty guest never blocks on a full pipe."""
    def read() -> None:
        assert app.process.stdout is not None
        for line in app.process.stdout:
            app.lines.append(line.rstrip("\n"))
    threading.Thread(target=read, daemon=True).start()


@contextmanager
def serve(wasm: Path, *flags: str) -> Iterator[tuple[Running, int]]:
    app, port = start_app(wasm, *flags)
    drain_stdout(app)
    try:
        yield app, port
    finally:
        alive = app.process.poll() is None
        app.kill()
        assert alive, f"the guest died: {app.lines[-5:]}"


@pytest.fixture(scope="module")
def echo(guests: dict[str, Path]) -> Iterator[tuple[Running, int]]:
    with serve(guests["echo"], "--tcplisten", "127.0.0.1:0") as running:
        yield running


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile-site")
    (root / "index.html").write_text("<h1>ok</h1>\n")
    (root / "big.bin").write_bytes(b"b" * (4 << 20))
    return root


@pytest.fixture(scope="module")
def http(guests: dict[str, Path], site: Path) -> Iterator[tuple[Running, int]]:
    with serve(guests["http"], "--tcplisten", "127.0.0.1:0", "--dir", f"{site}::/www") as running:
        yield running


def assert_echo_serves(port: int) -> None:
    began = time.monotonic()
    payload = b"still here " * 1000
    assert echo_roundtrip(port, payload) == payload
    assert time.monotonic() - began < PROMPT


def http_get(port: int, path: str = "/index.html") -> tuple[int, bytes]:
    """One ``Connection: close`` GET on a raw socket: (status, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=PROMPT) as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = bytearray()
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def assert_http_serves(port: int) -> None:
    began = time.monotonic()
    assert http_get(port) == (200, b"<h1>ok</h1>\n")
    assert time.monotonic() - began < PROMPT


def reset(conn: socket.socket) -> None:
    """Close with SO_LINGER 0: the kernel sends RST, not FIN."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


# -- TCP --------------------------------------------------------------------

def test_echo_peer_resets_mid_stream(echo: tuple[Running, int]) -> None:
    _, port = echo
    for _ in range(5):
        conn = socket.create_connection(("127.0.0.1", port), timeout=PROMPT)
        conn.sendall(b"x" * (1 << 20))  # the guest is echoing while we reset
        assert conn.recv(65536)
        reset(conn)
    assert_echo_serves(port)


def test_http_peer_resets_mid_response(http: tuple[Running, int]) -> None:
    _, port = http
    for _ in range(5):
        conn = socket.create_connection(("127.0.0.1", port), timeout=PROMPT)
        conn.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        assert conn.recv(65536).startswith(b"HTTP/1.1 200")
        reset(conn)  # 4 MiB still to send
    assert_http_serves(port)


def test_half_close_still_receives_the_whole_echo(echo: tuple[Running, int]) -> None:
    _, port = echo
    payload = bytes(range(256)) * 4096  # 1 MiB
    with socket.create_connection(("127.0.0.1", port), timeout=PROMPT * 4) as conn:
        received = echo_over(conn, payload, PROMPT)
    assert bytes(received) == payload


def test_http_half_close_after_request_is_answered(http: tuple[Running, int]) -> None:
    _, port = http
    with socket.create_connection(("127.0.0.1", port), timeout=PROMPT) as conn:
        conn.sendall(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n")
        conn.shutdown(socket.SHUT_WR)
        data = bytearray()
        while chunk := conn.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"<h1>ok</h1>\n")


def test_peer_that_never_reads_does_not_stall_other_clients(
        echo: tuple[Running, int]) -> None:
    """8 MiB sent, nothing read: the guest's send to this peer blocks (its
    buffer and ours are full), yet other connections are served."""
    _, port = echo
    hog = socket.create_connection(("127.0.0.1", port), timeout=PROMPT)

    def flood() -> None:
        block = b"h" * 65536
        try:
            for _ in range(128):
                hog.sendall(block)
        except OSError:
            pass  # timed out: the buffers are full, as intended
    flooder = threading.Thread(target=flood, daemon=True)
    flooder.start()
    try:
        time.sleep(1.0)
        for _ in range(3):
            assert_echo_serves(port)
    finally:
        reset(hog)
        flooder.join(timeout=PROMPT * 2)
    assert_echo_serves(port)


@pytest.mark.parametrize("how", ["close", "reset"])
def test_accept_and_close_storm(echo: tuple[Running, int], http: tuple[Running, int],
                                how: str) -> None:
    for _, port in (echo, http):
        for _ in range(200):
            conn = socket.create_connection(("127.0.0.1", port), timeout=PROMPT)
            if how == "reset":
                reset(conn)
            else:
                conn.close()
    assert_echo_serves(echo[1])
    assert_http_serves(http[1])


def test_slow_loris_does_not_block_a_normal_client(http: tuple[Running, int]) -> None:
    _, port = http
    request = b"GET /index.html HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 64
    loris = [socket.create_connection(("127.0.0.1", port), timeout=PROMPT) for _ in range(50)]
    stop = threading.Event()

    def trickle() -> None:
        for i in range(len(request)):
            for conn in loris:
                try:
                    conn.sendall(request[i:i + 1])
                except OSError:
                    pass  # the guest may drop a loris: allowed
            if stop.wait(1.0):
                return
    trickler = threading.Thread(target=trickle, daemon=True)
    trickler.start()
    try:
        time.sleep(1.5)
        for _ in range(3):  # while every loris holds a half-sent header
            assert_http_serves(port)
            time.sleep(0.5)
    finally:
        stop.set()
        trickler.join(timeout=PROMPT)
        for conn in loris:
            conn.close()
    assert_http_serves(port)


# -- UDP --------------------------------------------------------------------

def test_udp_flood_leaves_the_guest_responsive(guests: dict[str, Path]) -> None:
    with serve(guests["udpecho"], "--udpbind", "127.0.0.1:0") as (app, port):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as flooder:
            flooder.setblocking(False)
            deadline, sent = time.monotonic() + 3.0, 0
            while sent < 20_000 and time.monotonic() < deadline:
                try:
                    flooder.sendto(b"f" * 512, ("127.0.0.1", port))
                    sent += 1
                except BlockingIOError:
                    time.sleep(0.001)
            assert sent > 1000
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as legit:
            legit.settimeout(0.5)
            deadline, answer = time.monotonic() + 15.0, b""
            while time.monotonic() < deadline and answer != b"legit":
                legit.sendto(b"legit", ("127.0.0.1", port))
                try:
                    answer = legit.recv(2048)
                except TimeoutError:
                    continue
            assert answer == b"legit", app.lines[-3:]
        assert app.process.poll() is None


# -- DNS --------------------------------------------------------------------

class LyingDns:
    """A DNS server on loopback whose answer per name is a function:
    ``(query) -> wire bytes or None (no answer)``, after ``delay`` s."""

    def __init__(self, answers: dict[str, tuple[float, Callable[[dns.message.Message],
                                                                bytes | None]]]) -> None:
        self.answers = answers
        self.queries: list[str] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                wire, peer = self.sock.recvfrom(4096)
            except (TimeoutError, OSError):
                continue
            query = dns.message.from_wire(wire)
            name = query.question[0].name.to_text(omit_final_dot=True)
            self.queries.append(name)
            delay, answer = self.answers.get(name, (0.0, nxdomain))
            threading.Timer(delay, self._reply, (answer, query, peer)).start()

    def _reply(self, answer: Callable[[dns.message.Message], bytes | None],
               query: dns.message.Message, peer: tuple[str, int]) -> None:
        reply = answer(query)
        if reply is not None and not self._stop.is_set():
            self.sock.sendto(reply, peer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


def nxdomain(query: dns.message.Message) -> bytes:
    response = dns.message.make_response(query)
    response.set_rcode(dns.rcode.NXDOMAIN)
    return response.to_wire()


def records(*rrsets: tuple[str, str]) -> Callable[[dns.message.Message], bytes]:
    """Answer with A records ``(owner name, ip)`` -- owners may differ from
    the question (a lying server); AAAA questions get an empty answer."""
    def answer(query: dns.message.Message) -> bytes:
        response = dns.message.make_response(query)
        if query.question[0].rdtype == dns.rdatatype.A:
            for owner, ip in rrsets:
                response.answer.append(dns.rrset.from_text(owner + ".", 60, "IN", "A", ip))
        return response.to_wire()
    return answer


def wrong_id(query: dns.message.Message) -> bytes:
    response = dns.message.from_wire(records(("svc.test", "127.0.0.1"))(query))
    response.id = (query.id + 1) % 65536
    return response.to_wire()


@pytest.fixture(scope="module")
def lying_dns() -> Iterator[LyingDns]:
    server = LyingDns({
        "svc.test": (0.0, records(("svc.test", "127.0.0.1"))),
        "slow.test": (0.7, records(("slow.test", "127.0.0.1"))),
        "late.test": (3.0, records(("late.test", "127.0.0.1"))),  # after the 2 s timeout
        "garbage.test": (0.0, lambda query: b"\x00\x01not dns at all"),
        "wrongid.test": (0.0, wrong_id),
        "foreign.test": (0.0, records(("foreign.test", "127.0.0.1"),
                                      ("elsewhere.test", "127.0.0.2"))),
    })
    yield server
    server.close()


def test_slow_late_and_garbage_dns_answers(guests: dict[str, Path], lying_dns: LyingDns) -> None:
    """Each failure is a resolver error code for that name only; the next
    name in the same instance still resolves."""
    began = time.monotonic()
    done = run_capsock("run", "--dns", lying_dns.address, "--allow-resolve=*.test",
                       str(guests["resolve"]), "--ipv4", "slow.test", "late.test",
                       "garbage.test", "wrongid.test", "svc.test", timeout=30)
    assert done.stdout.splitlines() == [
        "slow.test 127.0.0.1",
        "late.test error: temporary-resolver-failure",
        "garbage.test error: permanent-resolver-failure",
        "wrongid.test error: permanent-resolver-failure",
        "svc.test 127.0.0.1",
    ], done.stderr
    assert time.monotonic() - began < 20


@pytest.fixture
def listener_on() -> Iterator[Callable[[str], socket.socket]]:
    opened: list[socket.socket] = []

    def make(ip: str) -> socket.socket:
        sock = socket.socket()
        sock.bind((ip, 0))
        sock.listen(4)
        sock.setblocking(False)
        opened.append(sock)
        return sock
    yield make
    for sock in opened:
        sock.close()


def resolve_connect(guests: dict[str, Path], dns_address: str, rules: list[str], name: str,
                    target: str) -> list[str]:
    done = run_capsock("run", "--dns", dns_address, *rules, str(guests["probe"]),
                       "resolve-connect", name, target)
    return [line.split(": ", 1)[1] for line in done.stdout.splitlines()
            if line.startswith("result: ")]


def test_records_for_other_names_grant_nothing(
        guests: dict[str, Path], lying_dns: LyingDns,
        listener_on: Callable[[str], socket.socket]) -> None:
    """foreign.test's answer also carries an A record for elsewhere.test
    (127.0.0.2): the rule `tcp://foreign.test:P` must not reach it."""
    listener = listener_on("127.0.0.2")
    port = listener.getsockname()[1]
    results = resolve_connect(guests, lying_dns.address,
                              [f"--allow-outbound=tcp://foreign.test:{port}"],
                              "foreign.test", f"127.0.0.2:{port}")
    assert results == ["ok", "access-denied"]
    with pytest.raises(BlockingIOError):
        listener.accept()


def test_deny_rule_wins_over_a_name_rule_for_the_address_dns_returned(
        guests: dict[str, Path], lying_dns: LyingDns,
        listener_on: Callable[[str], socket.socket]) -> None:
    listener = listener_on("127.0.0.1")
    port = listener.getsockname()[1]
    results = resolve_connect(guests, lying_dns.address,
                              [f"--allow-outbound=tcp://svc.test:{port}",
                               "--deny-outbound=tcp://127.0.0.1:*"],
                              "svc.test", f"127.0.0.1:{port}")
    assert results == ["ok", "access-denied"]
    with pytest.raises(BlockingIOError):
        listener.accept()
