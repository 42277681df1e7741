"""`fast-io.splice` in the core, on both backends, with in-process peers.

Two guest sockets are connected to peers the test drives directly: `src`
(its peer `a` writes what is spliced) and `dst` (its peer `b` reads what
arrives, or deliberately does not). The contract checked (wit/fast-io.wit):

- bytes arrive byte-exact, in order, never lost and never duplicated, in
  blocking and non-blocking mode, including when `dst`'s send side is full;
- the mode is the *source's*: non-blocking never waits (whatever the
  target's mode), blocking waits for data and for room in the target;
- 0 means end of stream; `max-len` bounds the count and leaves the rest
  queued; the errors leave every queued byte where it was.

Runs on the in-memory backend (virtual peers) and on the OS backend (real
loopback sockets), so the core's algorithm is checked on both.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import pytest

from capsock.addresses import SocketAddress
from capsock.backends.memory import MemoryBackend, VirtualNetwork
from capsock.backends.options import RECEIVE_BUFFER_SIZE, SEND_BUFFER_SIZE
from capsock.backends.os import OsBackend
from capsock.binding.interfaces.fast_io import FastIo
from capsock.binding.interfaces.socket_tcp import SocketTcp, TcpSocketResource
from capsock.core.context import InstanceContext
from capsock.core.tcp import TcpSocket, open_tcp
from capsock.errors import ErrorCode, NetError
from capsock.policy import Policy

#: Every byte value, so a lane or a splice that mangles any of them shows.
ALL = bytes(range(256))
WAIT = 10.0
#: What a peer sends before the splicing starts: less than the in-memory
#: network's default 256 KiB buffer, so the peer's send never waits.
HEAD = 200 * 1024


def _mixed(size: int) -> bytes:
    """`size` random bytes that contain every byte value (from 256 on)."""
    return (ALL + os.urandom(max(0, size - 256)))[:size]


class Peer(Protocol):
    """The in-process end of a connection (virtual or a real socket)."""

    def send(self, data: bytes) -> None: ...
    def recv(self, size: int) -> bytes: ...
    def shutdown_write(self) -> None: ...
    def close(self) -> None: ...


class _OsPeer:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.settimeout(WAIT)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self, size: int) -> bytes:
        return self.sock.recv(size)

    def shutdown_write(self) -> None:
        self.sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.sock.close()


class _MemoryPeer:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def send(self, data: bytes) -> None:
        self.conn.sendall(data)

    def recv(self, size: int) -> bytes:
        return bytes(self.conn.recv(size))

    def shutdown_write(self) -> None:
        self.conn.shutdown_write()

    def close(self) -> None:
        self.conn.close()


@dataclass
class Rig:
    """A context, and factories for guest sockets connected to peers."""

    context: InstanceContext
    connect: Callable[[int | None], tuple[TcpSocket, Peer]]
    backend: str


def _addr(host: str, port: int) -> SocketAddress:
    return SocketAddress(ipaddress.ip_address(host), port)


@pytest.fixture(params=["memory", "os"])
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    policy = Policy.from_flags(allow_outbound=["tcp://127.0.0.1:*"],
                               allow_inbound=["tcp://127.0.0.1:*"])
    cleanup: list[Callable[[], None]] = []
    if request.param == "memory":
        network = VirtualNetwork()
        context = InstanceContext(policy, MemoryBackend(network))
        ports = iter(range(7100, 7200))

        def connect_memory(peer_receive_buffer: int | None) -> tuple[TcpSocket, Peer]:
            listener = network.listen(("127.0.0.1", next(ports)), timeout=WAIT)
            cleanup.append(listener.close)
            if peer_receive_buffer is not None:
                listener.sock.set_option(RECEIVE_BUFFER_SIZE, peer_receive_buffer)
            sock = open_tcp(context, policy, False)
            sock.connect(listener.address)
            conn, _ = listener.accept()
            peer = _MemoryPeer(conn)
            cleanup.append(peer.close)
            cleanup.append(sock.close)
            return sock, peer

        yield Rig(context, connect_memory, "memory")
    else:
        context = InstanceContext(policy, OsBackend())

        def connect_os(peer_receive_buffer: int | None) -> tuple[TcpSocket, Peer]:
            server = socket.socket()
            cleanup.append(server.close)
            if peer_receive_buffer is not None:
                server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, peer_receive_buffer)
            server.bind(("127.0.0.1", 0))
            server.listen(1)
            sock = open_tcp(context, policy, False)
            sock.connect(_addr("127.0.0.1", server.getsockname()[1]))
            conn, _ = server.accept()
            peer = _OsPeer(conn)
            cleanup.append(peer.close)
            cleanup.append(sock.close)
            return sock, peer

        yield Rig(context, connect_os, "os")
    for step in reversed(cleanup):
        try:
            step()
        except (OSError, NetError):
            pass


def recv_exactly(peer: Peer, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = peer.recv(min(65536, size - len(data)))
        if not chunk:
            break
        data += chunk
    return bytes(data)


def code_of(call: Callable[[], object]) -> str:
    try:
        call()
    except NetError as error:
        return error.code.value
    return "ok"


def fill_target(rig: Rig) -> tuple[TcpSocket, Peer]:
    """A connected `dst` with small buffers whose peer does not read yet."""
    dst, b = rig.connect(4096)
    dst.set_option(SEND_BUFFER_SIZE, 4096)
    return dst, b


def queued(sock: TcpSocket) -> int:
    """Bytes waiting in `sock`'s receive queue (a non-blocking peek)."""
    blocking, timeout = sock.blocking, sock.timeout
    sock.set_blocking(False)
    try:
        return len(sock.receive(1 << 20, peek=True))
    except NetError as error:
        assert error.code is ErrorCode.WOULD_BLOCK
        return 0
    finally:
        sock.set_blocking(blocking)
        sock.set_timeout(timeout)


def wait_queued(sock: TcpSocket, size: int) -> None:
    deadline = time.monotonic() + WAIT
    while queued(sock) < size:
        assert time.monotonic() < deadline, f"{size} bytes never arrived"
        time.sleep(0.005)


# -- the data path ------------------------------------------------------------------------

def test_proxy_moves_every_byte_value_exactly(rig: Rig) -> None:
    src, a = rig.connect(None)
    dst, b = rig.connect(None)
    data = _mixed(3 << 20)
    sender = threading.Thread(target=lambda: (a.send(data), a.shutdown_write()))
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(recv_exactly(b, len(data) + 1)))
    sender.start()
    reader.start()
    total, calls = 0, 0
    while moved := src.splice(dst, 1 << 62):
        total += moved
        calls += 1
    dst.shutdown(False, True)
    sender.join(WAIT)
    reader.join(WAIT)
    assert total == len(data)
    assert received == [data]  # exact, and then end of stream: nothing extra
    assert calls == 1  # blocking: one call moves everything up to end of stream


def test_echo_to_itself(rig: Rig) -> None:
    src, a = rig.connect(None)
    data = _mixed(200_000)
    a.send(data)
    assert src.splice(src, len(data)) == len(data)  # blocking: until max-len moved
    assert recv_exactly(a, len(data)) == data


def test_end_of_stream_is_zero_after_the_rest_moved(rig: Rig) -> None:
    src, a = rig.connect(None)
    a.send(b"last words")
    a.shutdown_write()
    assert src.splice(src, 1 << 20) == 10
    assert src.splice(src, 1 << 20) == 0
    assert src.splice(src, 1 << 20) == 0
    assert recv_exactly(a, 10) == b"last words"


def test_max_len_bounds_the_count_and_leaves_the_rest_queued(rig: Rig) -> None:
    src, a = rig.connect(None)
    dst, b = rig.connect(None)
    a.send(ALL)
    wait_queued(src, 256)
    assert src.splice(dst, 100) == 100
    assert recv_exactly(b, 100) == ALL[:100]
    assert src.receive(1000) == ALL[100:]


def test_nonblocking_with_nothing_queued_would_block(rig: Rig) -> None:
    src, _ = rig.connect(None)
    dst, _ = rig.connect(None)
    src.set_blocking(False)
    assert code_of(lambda: src.splice(dst, 10)) == "would-block"
    assert code_of(lambda: src.splice(src, 10)) == "would-block"


def test_blocking_with_a_timeout_and_nothing_queued_times_out(rig: Rig) -> None:
    src, _ = rig.connect(None)
    src.set_timeout(0.2)
    began = time.monotonic()
    assert code_of(lambda: src.splice(src, 10)) == "timeout"
    assert time.monotonic() - began >= 0.15


# -- a full target: nothing lost, nothing duplicated -------------------------------------------

def _drain_and_finish(src: TcpSocket, dst: TcpSocket, a: Peer, b: Peer, data: bytes,
                      sent_before: int, moved_before: int) -> bytes:
    """Let `b` read while `src` keeps splicing (non-blocking); then end both
    streams and return everything `b` got, up to end of stream."""
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(recv_exactly(b, len(data) + 1)))
    reader.start()
    rest = threading.Thread(target=lambda: (a.send(data[sent_before:]), a.shutdown_write()))
    rest.start()
    src.set_blocking(False)
    moved = moved_before
    deadline = time.monotonic() + WAIT
    while True:
        assert time.monotonic() < deadline, f"stuck after {moved} of {len(data)} bytes"
        try:
            count = src.splice(dst, 1 << 62)
        except NetError as error:
            assert error.code is ErrorCode.WOULD_BLOCK
            time.sleep(0.001)
            continue
        if count == 0:
            break
        moved += count
    dst.shutdown(False, True)
    rest.join(WAIT)
    reader.join(WAIT)
    assert moved == len(data)
    return received[0]


def test_nonblocking_into_a_full_target_returns_partial_counts_and_loses_nothing(
        rig: Rig) -> None:
    src, a = rig.connect(None)
    dst, b = fill_target(rig)
    data = _mixed(1 << 20)
    head = HEAD
    a.send(data[:head])
    wait_queued(src, 1)
    src.set_blocking(False)
    dst.set_blocking(False)
    moved, counts = 0, []
    while True:
        try:
            count = src.splice(dst, 1 << 62)
        except NetError as error:
            assert error.code is ErrorCode.WOULD_BLOCK
            break
        moved += count
        counts.append(count)
    assert 0 < moved < head, counts  # the target filled: a partial count, then would-block
    assert queued(src) > 0  # what did not fit is still queued in src, not lost
    assert code_of(lambda: src.splice(dst, 1 << 62)) == "would-block"
    assert _drain_and_finish(src, dst, a, b, data, head, moved) == data


def test_nonblocking_source_never_waits_for_a_blocking_target(rig: Rig) -> None:
    """The source's mode decides: a blocking (timeout) target that is full
    must not make a non-blocking splice wait, nor lose or repeat bytes."""
    src, a = rig.connect(None)
    dst, b = fill_target(rig)
    dst.set_timeout(2.0)  # blocking, bounded so a wrong host cannot hang the test
    data = _mixed(1 << 20)
    head = HEAD
    a.send(data[:head])
    wait_queued(src, 1)
    src.set_blocking(False)
    moved, slowest = 0, 0.0
    while True:
        began = time.monotonic()
        try:
            count = src.splice(dst, 1 << 62)
        except NetError as error:
            slowest = max(slowest, time.monotonic() - began)
            assert error.code is ErrorCode.WOULD_BLOCK, error
            break
        slowest = max(slowest, time.monotonic() - began)
        moved += count
    assert slowest < 1.0, f"a non-blocking splice waited {slowest:.1f}s for the target"
    assert 0 < moved < head
    assert dst.blocking and dst.timeout == 2.0  # the target's own mode is untouched
    assert _drain_and_finish(src, dst, a, b, data, head, moved) == data


def test_blocking_source_waits_for_room_in_a_nonblocking_target(rig: Rig) -> None:
    """Blocking: each chunk is sent in full, waiting for the target, even
    when the target itself is non-blocking."""
    src, a = rig.connect(None)
    dst, b = fill_target(rig)
    dst.set_blocking(False)
    data = _mixed(512 * 1024)
    feeder = threading.Thread(target=lambda: a.send(data))
    feeder.start()
    wait_queued(src, 1)
    received: list[bytes] = []

    def late_reader() -> None:
        time.sleep(0.3)
        received.append(recv_exactly(b, len(data)))

    reader = threading.Thread(target=late_reader)
    reader.start()
    src.set_timeout(WAIT)
    assert src.splice(dst, len(data)) == len(data)
    feeder.join(WAIT)
    reader.join(WAIT)
    assert received == [data]
    assert not dst.blocking  # the target's own mode is untouched


def test_blocking_timeout_into_a_full_target_loses_and_repeats_nothing(rig: Rig) -> None:
    src, a = rig.connect(None)
    dst, b = fill_target(rig)
    data = _mixed(1 << 20)
    head = HEAD
    a.send(data[:head])
    wait_queued(src, 1)
    src.set_timeout(0.3)
    dst.set_timeout(0.3)
    moved = 0
    outcomes = []
    for _ in range(3):  # the first fills the target; later ones time out
        try:
            count = src.splice(dst, 1 << 62)
            moved += count
            outcomes.append(count)
        except NetError as error:
            outcomes.append(error.code.value)
    assert outcomes[-1] == "timeout", outcomes
    assert 0 < moved < head
    assert _drain_and_finish(src, dst, a, b, data, head, moved) == data


# -- errors leave the bytes where they were -------------------------------------------------

def test_unconnected_source_or_target_is_invalid_state(rig: Rig) -> None:
    src, a = rig.connect(None)
    fresh = open_tcp(rig.context, rig.context.checker, False)
    try:
        a.send(b"keep")
        wait_queued(src, 4)
        assert code_of(lambda: fresh.splice(src, 10)) == "invalid-state"
        assert code_of(lambda: src.splice(fresh, 10)) == "invalid-state"
        assert src.receive(10) == b"keep"
    finally:
        fresh.close()


def test_target_after_shutdown_send_is_invalid_state(rig: Rig) -> None:
    src, a = rig.connect(None)
    dst, _ = rig.connect(None)
    a.send(b"keep")
    wait_queued(src, 4)
    dst.shutdown(False, True)
    assert code_of(lambda: src.splice(dst, 10)) == "invalid-state"
    src.shutdown(False, True)
    assert code_of(lambda: src.splice(src, 10)) == "invalid-state"
    assert src.receive(10) == b"keep"


def test_error_after_bytes_moved_returns_the_count_then_the_error(rig: Rig) -> None:
    """A target whose peer is gone: the guest learns on the next call."""
    src, a = rig.connect(None)
    dst, b = rig.connect(None)
    b.close()
    a.send(b"x" * 1000)
    wait_queued(src, 1000)
    src.set_blocking(False)
    outcomes = []
    for _ in range(20):
        try:
            outcomes.append(str(src.splice(dst, 10)))
        except NetError as error:
            outcomes.append(error.code.value)
            break
        time.sleep(0.01)
    assert outcomes[-1] == "connection-reset", outcomes


# -- the target, through the binding ----------------------------------------------------------

def test_the_target_is_the_borrowed_socket_not_a_number(rig: Rig) -> None:
    """`fast-io.splice` gets both sockets as borrowed handles: the binding
    hands the core the objects behind them, so no process-wide id names a
    socket any more. A target the guest still holds but that cannot take
    bytes (unconnected, or closed) is refused and nothing is consumed."""
    capability = SocketTcp(rig.context).network()
    assert capability is not None
    unconnected, closed = (capability.create_tcp_socket("ipv4"),
                           capability.create_tcp_socket("ipv4"))
    closed.drop()
    src, a = rig.connect(None)
    source = TcpSocketResource(src)
    a.send(b"keep")
    wait_queued(src, 4)
    assert code_of(lambda: FastIo.splice(source, unconnected, 10)) == "invalid-state"
    assert code_of(lambda: FastIo.splice(source, closed, 10)) == "invalid-state"
    assert code_of(lambda: FastIo.splice(unconnected, source, 10)) == "invalid-state"
    assert queued(src) == 4
    assert not hasattr(src, "socket_id") and not hasattr(rig.context, "streams")
    dst, b = rig.connect(None)
    assert FastIo.splice(source, TcpSocketResource(dst), 4) == 4
    assert b.recv(4) == b"keep"
    unconnected.drop()
