"""The `fast-io` lanes and `fast-io.splice` end to end, over real loopback.

Every app guest's bytes travel through the extension's latin-1 and hex
lanes (`tcp-send-latin1`, `udp-receive-hex`, ...;
guest/capsock_guest/_lane.py), so random payloads with every byte value
go through the library (echo, udpecho) and the BSD layer (bsdecho) and
must come back byte-exact. `echo --splice` moves bytes with
`Loop.splice` inside the host: several MiB over many concurrent
connections, and a client that stops reading (the splice's target fills)
must lose nothing nor hold up the other connections. The conformance
suite checks the raw contract (tests/e2e/test_conformance.py); these
check the guest library and the apps on top of it.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from capsock import Host, MemoryBackend, NetError, TcpListenSpec, VirtualNetwork

from .helpers import TIMEOUT, Running, echo_roundtrip

#: Every byte value first, then random bytes: a lane that mangled any
#: value (UTF-8 instead of latin-1, a lost NUL) cannot pass.
ALL = bytes(range(256))


def random_bytes(size: int) -> bytes:
    return (ALL + os.urandom(max(0, size - 256)))[:size]


def _served(lines: list[str]) -> list[int]:
    """The byte counts of the app's ``connection N ...: echoed B bytes`` lines."""
    return sorted(int(line.rsplit("echoed ", 1)[1].split()[0])
                  for line in lines if line.startswith("connection ") and "echoed " in line)


@pytest.fixture
def splice_echo(guests: dict[str, Path],
                request: pytest.FixtureRequest) -> Iterator[tuple[Running, int]]:
    connections = request.param
    echo = Running("run", "--tcplisten", "127.0.0.1:0", str(guests["echo"]), "--splice",
                   "--max-connections", str(connections))
    try:
        port = int(echo.wait_for("listening on ").rsplit(":", 1)[1])
        yield echo, port
    finally:
        echo.kill()


# -- echo --splice -----------------------------------------------------------------------------

@pytest.mark.parametrize("splice_echo", [24], indirect=True)
def test_splice_echo_many_concurrent_connections_byte_exact(
        splice_echo: tuple[Running, int]) -> None:
    echo, port = splice_echo
    # 24 connections at once, ~1 MiB each with different sizes: ~26 MiB
    payloads = [random_bytes((1 << 20) + 4099 * i) for i in range(24)]
    with ThreadPoolExecutor(len(payloads)) as pool:
        echoed = list(pool.map(lambda p: echo_roundtrip(port, p), payloads))
    assert [len(e) for e in echoed] == [len(p) for p in payloads]
    assert all(e == p for e, p in zip(echoed, payloads, strict=True))
    code, out, err = echo.finish()
    assert code == 0, err
    assert _served(echo.lines + out.splitlines()) == sorted(len(p) for p in payloads)


@pytest.mark.parametrize("splice_echo", [1], indirect=True)
def test_splice_echo_one_large_stream(splice_echo: tuple[Running, int]) -> None:
    echo, port = splice_echo
    payload = random_bytes(16 << 20)
    assert echo_roundtrip(port, payload) == payload
    code, out, err = echo.finish()
    assert code == 0, err
    assert _served(echo.lines + out.splitlines()) == [16 << 20]


@pytest.mark.parametrize("splice_echo", [3], indirect=True)
def test_splice_echo_client_that_stops_reading_loses_nothing_and_stalls_no_one(
        splice_echo: tuple[Running, int]) -> None:
    """A client sends 8 MiB and reads nothing for a while: the splice back
    to it fills its send side (would-block, then the loop waits for
    writable). Meanwhile other connections are echoed; then the client
    reads, and gets every byte once, in order."""
    echo, port = splice_echo
    big = random_bytes(8 << 20)
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)  # fills sooner
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
    slow.settimeout(TIMEOUT)
    slow.connect(("127.0.0.1", port))
    with slow:
        def send_all() -> None:
            slow.sendall(big)
            slow.shutdown(socket.SHUT_WR)

        sender = threading.Thread(target=send_all, daemon=True)
        sender.start()
        time.sleep(1.0)  # the guest's splice to `slow` is stuck on a full target now
        assert sender.is_alive(), "8 MiB fit in the buffers: the target never filled"
        for size in (1 << 20, 300_000):  # not held up by the stalled connection
            other = random_bytes(size)
            assert echo_roundtrip(port, other) == other
        received = bytearray()
        while chunk := slow.recv(1 << 16):
            received += chunk
        sender.join(TIMEOUT)
    assert len(received) == len(big)
    assert bytes(received) == big
    code, out, err = echo.finish()
    assert code == 0, err
    assert _served(echo.lines + out.splitlines()) == [300_000, 1 << 20, 8 << 20]


def test_splice_echo_on_the_memory_backend(guests: dict[str, Path]) -> None:
    """The same guest in-process on the in-memory backend: its flow control
    (a 256 KiB send buffer) makes the splice's target fill at once."""
    net = VirtualNetwork()
    host = Host(backend=MemoryBackend(net), tcp_listen=[TcpListenSpec.parse("127.0.0.1:8080")])
    codes: list[int] = []
    guest = threading.Thread(target=lambda: codes.append(
        host.run(guests["echo"], ["--splice", "--max-connections", "4"])), daemon=True)
    guest.start()
    deadline = time.monotonic() + TIMEOUT
    payloads = [random_bytes(3 << 20), ALL * 3, b"", random_bytes(1 << 20)]

    def roundtrip(payload: bytes) -> bytes:
        while True:
            try:
                conn = net.connect("127.0.0.1:8080", timeout=TIMEOUT)
                break
            except NetError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        with conn:
            sender = threading.Thread(target=lambda: (conn.sendall(payload),
                                                      conn.shutdown_write()))
            sender.start()
            received = conn.recv_all()
            sender.join(TIMEOUT)
        return received

    with ThreadPoolExecutor(len(payloads)) as pool:
        echoed = list(pool.map(roundtrip, payloads))
    assert all(e == p for e, p in zip(echoed, payloads, strict=True))
    guest.join(TIMEOUT)
    assert codes == [0]


# -- the lane under the library and the BSD layer ---------------------------------------------

def test_echo_lane_carries_every_byte_value_on_concurrent_connections(
        guests: dict[str, Path]) -> None:
    echo = Running("run", "--tcplisten", "127.0.0.1:0", str(guests["echo"]),
                   "--max-connections", "8")
    try:
        port = int(echo.wait_for("listening on ").rsplit(":", 1)[1])
        payloads = [random_bytes((512 << 10) + 257 * i) for i in range(7)] + [ALL]
        with ThreadPoolExecutor(len(payloads)) as pool:
            echoed = list(pool.map(lambda p: echo_roundtrip(port, p), payloads))
        assert all(e == p for e, p in zip(echoed, payloads, strict=True))
        code, out, err = echo.finish()
    finally:
        echo.kill()
    assert code == 0, err
    assert _served(echo.lines + out.splitlines()) == sorted(len(p) for p in payloads)


def test_bsdecho_lane_carries_every_byte_value(guests: dict[str, Path]) -> None:
    """`socket.recv`/`sendall` of the BSD layer go through the lane too."""
    payloads = [ALL, random_bytes(4 << 20), bytes([0]) * 70_000, bytes([255, 128, 127]) * 9999]
    echo = Running("run", "--tcplisten", "127.0.0.1:0", str(guests["bsdecho"]),
                   "--max-connections", str(len(payloads)))
    try:
        port = int(echo.wait_for("listening on ").rsplit(":", 1)[1])
        for payload in payloads:  # bsdecho serves one connection at a time
            assert echo_roundtrip(port, payload) == payload
        code, out, err = echo.finish()
    finally:
        echo.kill()
    assert code == 0, err
    assert _served(echo.lines + out.splitlines()) == sorted(len(p) for p in payloads)


def test_udpecho_lane_carries_every_byte_value(guests: dict[str, Path]) -> None:
    # binary and ASCII in turn: the guest switches between the hex and latin-1 lanes
    datagrams = [ALL, random_bytes(60_000), b"\x00", bytes(range(255, -1, -1)) * 4,
                 b"plain ascii", random_bytes(3)]
    echo = Running("run", "--udpbind", "127.0.0.1:0", str(guests["udpecho"]),
                   "--max-datagrams", str(len(datagrams)))
    try:
        host, port = echo.wait_for("listening on ").split()[-1].rsplit(":", 1)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(TIMEOUT)
            for datagram in datagrams:
                client.sendto(datagram, (host, int(port)))
                reply, sender = client.recvfrom(65535)
                assert sender == (host, int(port))
                assert reply == datagram
        code, _, err = echo.finish()
    finally:
        echo.kill()
    assert code == 0, err


def _lockstep_echo(port: int, pieces: list[bytes]) -> list[bytes]:
    """Each piece sent and read back whole before the next, on one connection."""
    echoed = []
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as client:
        for piece in pieces:
            client.sendall(piece)
            got = b""
            while len(got) < len(piece):
                chunk = client.recv(len(piece) - len(got))
                assert chunk, "echo closed early"
                got += chunk
            echoed.append(got)
    return echoed


#: ASCII and binary pieces in turn, so a guest's sends and receives switch
#: between the latin-1 and hex lanes both ways, many times.
SWITCHING = [b"GET / HTTP/1.1\r\n" * 600, random_bytes(20_000), b"a", b"\xff", b"plain text",
             b"ascii then \x80 once" * 500, ALL, b"\x00" * 3000, random_bytes(1),
             b"back to ascii" * 1000]


@pytest.mark.parametrize("app", ["echo", "bsdecho"])
def test_lanes_switch_between_ascii_and_binary_on_one_stream(
        guests: dict[str, Path], app: str) -> None:
    echo = Running("run", "--tcplisten", "127.0.0.1:0", str(guests[app]),
                   "--max-connections", "1")
    try:
        port = int(echo.wait_for("listening on ").rsplit(":", 1)[1])
        echoed = _lockstep_echo(port, SWITCHING)
        code, out, err = echo.finish()
    finally:
        echo.kill()
    assert code == 0, err
    assert echoed == SWITCHING
    assert _served(echo.lines + out.splitlines()) == [sum(map(len, SWITCHING))]
