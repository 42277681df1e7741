"""The conformance probe: runs contract probes against any capsock:net host.

    conformance '[["case-id", "kind", [args...]], ...]'

Built twice from this file: ``conformance`` for the core world (`imports`,
runs on any host of the core) and ``conformance-fast-io`` for the world
with every extension (`imports-extended`: `fast-io` and `tls`). The
extensions' probes need the second; the harness sends them only to it,
and only for a host that implements them.

Each *kind* below is a small probe of the raw WIT bindings (not the
Pythonic library, so the contract itself is what gets tested). For every
case it prints one JSON line ``{"case": ID, "got": OUTCOME}`` where
OUTCOME is ``"ok"``, an error-code name (``"access-denied"``), or
``"value:<text>"`` for probes that report a value. The expected outcome of
every case lives with the case table in the host package
(`capsock.conformance.cases`), not here: this guest only reports.

A probe that traps the guest ends the run; the harness reports the cases
after it as ``crashed``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

from componentize_py_types import Err

try:
    from wit_world.imports import fast_io
except ImportError:  # the core probe: the extension's kinds are never asked of it
    fast_io = None  # type: ignore[assignment]
try:
    from wit_world.imports import tls as wtls
except ImportError:  # the core probe, as above
    wtls = None  # type: ignore[assignment]
from wit_world.imports import ip_resolve_address as wresolve
from wit_world.imports import socket as wsocket
from wit_world.imports import socket_tcp as wtcp
from wit_world.imports import socket_udp as wudp

import capsock_guest as cg

V4 = wsocket.IpAddressFamily.IPV4
V6 = wsocket.IpAddressFamily.IPV6
READABLE_TCP = wsocket.Readiness.READABLE
WRITABLE_TCP = wsocket.Readiness.WRITABLE


class Value(Exception):
    """Raised by a probe to report a value instead of ok."""

    def __init__(self, value: object) -> None:
        super().__init__(str(value))
        self.value = str(value)


def code(error: Err[Any]) -> str:
    return str(error.value.name).lower().replace("_", "-")


def addr(text: str) -> Any:
    return cg.to_wit(cg.parse_address(text))


def fmt(wit_address: Any) -> str:
    return cg.format_address(cg.from_wit(wit_address))


def family(text: str) -> wsocket.IpAddressFamily:
    return V6 if text == "ipv6" else V4


def tcp(fam: str = "ipv4") -> wtcp.TcpSocket:
    network = wtcp.network()
    if network is None:
        raise Value("no-network")
    return network.create_tcp_socket(family(fam))


def udp(fam: str = "ipv4") -> wudp.UdpSocket:
    network = wudp.network()
    if network is None:
        raise Value("no-network")
    return network.create_udp_socket(family(fam))


def connected(target: str, fam: str = "ipv4") -> wtcp.TcpSocket:
    sock = tcp(fam)
    sock.connect(addr(target))
    return sock


def preopen(protocol: str) -> tuple[wsocket.Socket, str]:
    for sock, name in PREOPENS:
        if sock.protocol().name.lower() == protocol:  # type: ignore[attr-defined]
            return sock, name
    raise Value("no-preopen")


def recv_exact(sock: wtcp.TcpSocket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.receive(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


#: Every byte value: what the latin-1 lane and splice must carry unchanged.
ALL = bytes(range(256))
SEND = wtcp.ShutdownType.SEND


def pattern(size: int) -> bytes:
    """`size` bytes, every value in every 256-byte block, each block rotated
    differently (a shifted or repeated block does not compare equal)."""
    blocks = [ALL[(j * 97) % 256:] + ALL[:(j * 97) % 256] for j in range((size + 255) // 256)]
    return b"".join(blocks)[:size]


def lane_send(sock: wtcp.TcpSocket, lane: str, data: bytes) -> None:
    """Send all of `data` through `send-latin1` ("latin1"), `send-hex`
    ("hex") or `send` ("list")."""
    view = data
    while view:
        if lane == "latin1":
            sent = fast_io.tcp_send_latin1(sock, view.decode("latin-1"))
        elif lane == "hex":
            sent = fast_io.tcp_send_hex(sock, view.hex())
        else:
            sent = sock.send(view)
        view = view[sent:]


def lane_receive(sock: wtcp.TcpSocket, lane: str, size: int) -> bytes:
    """One receive through `receive-latin1`, `receive-hex` or `receive`, as bytes."""
    if lane == "latin1":
        return fast_io.tcp_receive_latin1(sock, size).encode("latin-1")
    if lane == "hex":
        return bytes.fromhex(fast_io.tcp_receive_hex(sock, size))
    return sock.receive(size)


def lane_recv_exact(sock: wtcp.TcpSocket, lane: str, size: int) -> bytes:
    parts: list[bytes] = []
    got = 0
    while got < size:
        chunk = lane_receive(sock, lane, size - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def recv_to_end(sock: wtcp.TcpSocket) -> bytes:
    parts = []
    while chunk := sock.receive(65536):
        parts.append(chunk)
    return b"".join(parts)


def outcome(call: Callable[[], object]) -> str:
    """"ok" or the error-code name of one call."""
    try:
        call()
    except Err as error:
        return code(error)
    return "ok"


def pair(receive_buffer: int | None = None) -> tuple[wtcp.TcpSocket, wtcp.TcpSocket]:
    """Both ends of one connection inside the guest: (client, accepted).

    The listener is bound on 127.0.0.1 (port 0) and dropped once the
    connection is accepted. `receive_buffer` is set on the listener before
    it listens, so the accepted socket starts with it."""
    listener = tcp()
    if receive_buffer is not None:
        listener.set_receive_buffer_size(receive_buffer)
    listener.bind(addr("127.0.0.1:0"))
    listener.listen(4)
    client = tcp()
    client.connect(listener.local_address())
    conn, _ = listener.accept()
    listener.__exit__(None, None, None)
    return client, conn


def queued(sock: wtcp.TcpSocket) -> bool:
    """Whether bytes wait in a non-blocking socket's receive queue."""
    try:
        return len(sock.peek(1)) > 0
    except Err as error:
        if code(error) != "would-block":
            raise
        return False


def wait_queued(sock: wtcp.TcpSocket, size: int) -> None:
    """Wait (blocking peeks) until at least `size` bytes are queued."""
    deadline = time.monotonic() + 10
    while len(sock.peek(size)) < size:
        if time.monotonic() > deadline:
            raise Value(f"fewer than {size} bytes arrived")
        time.sleep(0.005)


# -- socket ------------------------------------------------------------------

def k_preopen_protocol(protocol: str) -> None:
    raise Value(preopen(protocol)[0].protocol().name.lower())  # type: ignore[attr-defined]


def k_preopen_family(protocol: str) -> None:
    raise Value(preopen(protocol)[0].address_family().name.lower())


def k_preopen_name(protocol: str) -> None:
    raise Value(preopen(protocol)[1])


def k_preopen_taken_once() -> None:
    raise Value(len(wsocket.preopened_sockets()))


def k_poll_empty() -> None:
    wsocket.poll([], 0)


def k_poll_same_twice(target: str) -> None:
    """One pollable twice in one call: both indexes report it."""
    pollable = connected(target).subscribe(WRITABLE_TCP)
    raise Value(wsocket.poll([pollable, pollable], 5_000_000_000))


def k_poll_timeout(target: str, millis: int) -> None:
    sock = connected(target)
    pollable = sock.subscribe(READABLE_TCP)
    began = time.monotonic()
    ready = wsocket.poll([pollable], millis * 1_000_000)
    waited = (time.monotonic() - began) * 1000
    raise Value(f"{ready} waited>={millis}ms:{waited >= millis * 0.9}")


def k_poll_readable_after_data(target: str) -> None:
    sock = connected(target)
    sock.send(b"ping")
    pollable = sock.subscribe(READABLE_TCP)
    raise Value(wsocket.poll([pollable], 5_000_000_000))


def k_poll_writable(target: str) -> None:
    sock = connected(target)
    pollable = sock.subscribe(WRITABLE_TCP)
    raise Value(wsocket.poll([pollable], 5_000_000_000))


def k_poll_several(target: str) -> None:
    sock = connected(target)
    quiet = sock.subscribe(READABLE_TCP)
    writable = sock.subscribe(WRITABLE_TCP)
    raise Value(wsocket.poll([quiet, writable], 5_000_000_000))


def k_poll_three(target: str) -> None:
    """Three borrowed pollables in one call (a host must convert several
    borrows per call): only the ready ones are reported, in order."""
    sock = connected(target)
    quiet = sock.subscribe(READABLE_TCP)
    writable = sock.subscribe(WRITABLE_TCP)
    also_writable = sock.subscribe(WRITABLE_TCP)
    raise Value(wsocket.poll([quiet, writable, also_writable], 5_000_000_000))


def k_pollable_ready(target: str) -> None:
    sock = connected(target)
    raise Value(sock.subscribe(READABLE_TCP).ready())


def k_pollable_after_socket_drop(target: str) -> None:
    sock = connected(target)
    pollable = sock.subscribe(READABLE_TCP)
    sock.__exit__(None, None, None)
    raise Value(pollable.ready())


def k_pollable_independent(target: str) -> None:
    """Two pollables of one socket and direction: dropping one leaves the
    other working."""
    sock = connected(target)
    first, second = sock.subscribe(WRITABLE_TCP), sock.subscribe(WRITABLE_TCP)
    first.__exit__(None, None, None)
    raise Value(wsocket.poll([second], 5_000_000_000))


# -- socket-tcp --------------------------------------------------------------

def k_tcp_network() -> None:
    raise Value("none" if wtcp.network() is None else "some")


def k_tcp_create(fam: str) -> None:
    raise Value(tcp(fam).address_family().name.lower())


def k_tcp_connect(target: str, fam: str = "ipv4") -> None:
    tcp(fam).connect(addr(target))


def k_tcp_connect_twice(target: str) -> None:
    sock = connected(target)
    sock.connect(addr(target))


def k_tcp_connect_listening(local: str, target: str) -> None:
    sock = tcp()
    sock.bind(addr(local))
    sock.listen(4)
    sock.connect(addr(target))


def k_tcp_connect_nonblocking(target: str) -> None:
    sock = tcp()
    sock.set_blocking(False)
    outcomes = []
    try:
        sock.connect(addr(target))
        outcomes.append("ok")
    except Err as error:
        outcomes.append(code(error))
        pollable = sock.subscribe(WRITABLE_TCP)
        wsocket.poll([pollable], 5_000_000_000)
        try:
            sock.connect(addr(target))
            outcomes.append("ok")
        except Err as again:
            outcomes.append(code(again))
    raise Value(",".join(outcomes))


def k_tcp_bind(local: str, fam: str = "ipv4") -> None:
    tcp(fam).bind(addr(local))


def k_tcp_bind_twice(local: str) -> None:
    sock = tcp()
    sock.bind(addr(local))
    sock.bind(addr(local))


def k_tcp_bind_in_use(local: str) -> None:
    first = tcp()
    first.bind(addr(local))
    first.listen(4)
    port = cg.from_wit(first.local_address())[1]
    tcp().bind(addr(f"{local.rsplit(':', 1)[0]}:{port}"))


def k_tcp_bind_ephemeral(local: str) -> None:
    sock = tcp()
    sock.bind(addr(local))
    raise Value(cg.from_wit(sock.local_address())[1] != 0)


def k_tcp_listen(local: str | None = None) -> None:
    sock = tcp()
    if local:
        sock.bind(addr(local))
    sock.listen(8)
    raise Value(sock.is_listening())


def k_tcp_listen_twice(local: str) -> None:
    sock = tcp()
    sock.bind(addr(local))
    sock.listen(8)
    sock.listen(8)


def k_tcp_listen_connected(target: str) -> None:
    connected(target).listen(8)


def k_tcp_accept_fresh() -> None:
    tcp().accept()


def k_tcp_accept_bound(local: str) -> None:
    sock = tcp()
    sock.bind(addr(local))
    sock.accept()


def k_tcp_accept_nonblocking(local: str) -> None:
    sock = tcp()
    sock.bind(addr(local))
    sock.listen(4)
    sock.set_blocking(False)
    sock.accept()


def k_tcp_accept_timeout(local: str, millis: int) -> None:
    sock = tcp()
    sock.bind(addr(local))
    sock.listen(4)
    sock.set_timeout(millis * 1_000_000)
    sock.accept()


def k_tcp_accept_preopen_peer() -> None:
    """Connect to the pre-opened listener, accept, report the peer seen."""
    raw, name = preopen("tcp")
    listener = wtcp.TcpSocket.from_socket(raw)
    client = tcp("ipv6" if name.startswith("[") else "ipv4")
    client.connect(addr(name))
    conn, peer = listener.accept()
    mine = fmt(client.local_address())
    seen = fmt(peer)
    remote = fmt(conn.remote_address())
    raise Value("real" if seen == mine == remote else f"{seen} {remote}")


def k_tcp_accept_preopen_echo() -> None:
    raw, name = preopen("tcp")
    listener = wtcp.TcpSocket.from_socket(raw)
    client = tcp("ipv6" if name.startswith("[") else "ipv4")
    client.connect(addr(name))
    conn, _ = listener.accept()
    client.send(b"through the pre-open")
    raise Value(recv_exact(conn, 20).decode())


def k_tcp_receive_unconnected() -> None:
    tcp().receive(10)


def k_tcp_receive_eof(target: str) -> None:
    sock = connected(target)
    sock.send(b"bye")
    sock.shutdown(wtcp.ShutdownType.SEND)
    data = recv_exact(sock, 3)
    raise Value(f"{data.decode()}|{sock.receive(10)!r}")


def k_tcp_receive_nonblocking(target: str) -> None:
    sock = connected(target)
    sock.set_blocking(False)
    sock.receive(10)


def k_tcp_receive_timeout(target: str, millis: int) -> None:
    sock = connected(target)
    sock.set_timeout(millis * 1_000_000)
    sock.receive(10)


def k_tcp_receive_zero(target: str) -> None:
    raise Value(len(connected(target).receive(0)))


def k_tcp_peek(target: str) -> None:
    sock = connected(target)
    sock.send(b"hello")
    pollable = sock.subscribe(READABLE_TCP)
    wsocket.poll([pollable], 5_000_000_000)
    peeked = sock.peek(5)
    raise Value(f"{peeked.decode()}|{recv_exact(sock, 5).decode()}")


def k_tcp_send_unconnected() -> None:
    tcp().send(b"x")


def k_tcp_send_after_shutdown(target: str) -> None:
    sock = connected(target)
    sock.shutdown(wtcp.ShutdownType.SEND)
    sock.send(b"x")


def k_tcp_echo(target: str, size: int, fam: str = "ipv4") -> None:
    """Echo `size` bytes in 16 KiB chunks, each read back before the next."""
    sock = connected(target, fam)
    payload = bytes(i % 251 for i in range(size))
    received = b""
    for offset in range(0, size, 16384):
        chunk = payload[offset:offset + 16384]
        view = chunk
        while view:
            view = view[sock.send(view):]
        received += recv_exact(sock, len(chunk))
    raise Value(f"{len(received)} exact:{received == payload}")


def k_tcp_shutdown_unconnected() -> None:
    tcp().shutdown(wtcp.ShutdownType.BOTH)


def k_tcp_shutdown_both(target: str) -> None:
    connected(target).shutdown(wtcp.ShutdownType.BOTH)


def k_tcp_local_address_unbound() -> None:
    tcp().local_address()


def k_tcp_local_address_bound(local: str) -> None:
    sock = tcp()
    sock.bind(addr(local))
    raise Value(fmt(sock.local_address()) == local)


def k_tcp_remote_address_unconnected() -> None:
    tcp().remote_address()


def k_tcp_remote_address(target: str) -> None:
    raise Value(fmt(connected(target).remote_address()) == target)


def k_tcp_local_host(target: str) -> None:
    """Connect (the host binds the socket) and report its local address's host."""
    raise Value(fmt(connected(target).local_address()).rsplit(":", 1)[0])


def k_tcp_is_listening_fresh() -> None:
    raise Value(tcp().is_listening())


def k_tcp_set_timeout_zero() -> None:
    tcp().set_timeout(0)


def k_tcp_option(name: str, value: Any) -> None:
    """Set an option by its WIT name and report what reading it returns."""
    sock = tcp()
    getattr(sock, f"set_{name}")(value)
    raise Value(getattr(sock, name)())


def k_tcp_reuse_after_bind(local: str) -> None:
    sock = tcp()
    sock.bind(addr(local))
    sock.set_reuse_address(True)


def k_tcp_from_socket(protocol: str) -> None:
    raw, _ = preopen(protocol)
    wtcp.TcpSocket.from_socket(raw)


def k_tcp_restrict_connect(rules: list[str], target: str) -> None:
    network = wtcp.network()
    if network is None:
        raise Value("no-network")
    narrowed = network.restrict(rules)
    narrowed.create_tcp_socket(V4).connect(addr(target))


# -- socket-tcp: the latin-1 lane --------------------------------------------

def k_tcp_latin1_echo(target: str, send_lane: str, receive_lane: str, size: int) -> None:
    """`size` bytes of every value to the echo peer and back in 16 KiB
    pieces, sent and received through the given lanes ("latin1" or "list":
    mixing them checks each direction of the lane against `list<u8>`)."""
    sock = connected(target)
    data = pattern(size)
    parts = []
    for offset in range(0, size, 16384):
        piece = data[offset:offset + 16384]
        lane_send(sock, send_lane, piece)
        parts.append(lane_recv_exact(sock, receive_lane, len(piece)))
    received = b"".join(parts)
    raise Value(f"{len(received)} exact:{received == data}")


def k_tcp_latin1_send_invalid(target: str, code_point: int) -> None:
    """A string with one code point above 255 after 1000 valid ones: the
    call fails and not even the valid prefix reaches the echo peer."""
    sock = connected(target)
    failed = outcome(lambda: fast_io.tcp_send_latin1(sock, "a" * 1000 + chr(code_point) + "b"))
    sock.send(b"END")
    sock.shutdown(SEND)
    raise Value(f"{failed}|{recv_to_end(sock)!r}")


def k_tcp_hex_send_invalid(target: str, text: str) -> None:
    """Invalid hex after valid digits: the call fails and nothing reaches
    the echo peer."""
    sock = connected(target)
    failed = outcome(lambda: fast_io.tcp_send_hex(sock, "61" * 500 + text))
    sock.send(b"END")
    sock.shutdown(SEND)
    raise Value(f"{failed}|{recv_to_end(sock)!r}")


def k_tcp_hex_receive_shape(target: str) -> None:
    """receive-hex: lowercase digits, max-len counted in bytes, '' at end."""
    sock = connected(target)
    sock.send(bytes([0xAB, 0xCD, 0x01, 0xFF]))
    sock.shutdown(SEND)
    first = fast_io.tcp_receive_hex(sock, 2)
    rest = ""
    while len(rest) < 4:
        rest += fast_io.tcp_receive_hex(sock, 10)
    raise Value(f"{first}|{rest}|{fast_io.tcp_receive_hex(sock, 10)!r}")


def k_tcp_latin1_eof(target: str) -> None:
    sock = connected(target)
    fast_io.tcp_send_latin1(sock, "bye")
    sock.shutdown(SEND)
    data = lane_recv_exact(sock, "latin1", 3)
    raise Value(f"{data.decode()}|{fast_io.tcp_receive_latin1(sock, 10)!r}")


def k_tcp_latin1_receive_unconnected() -> None:
    fast_io.tcp_receive_latin1(tcp(), 10)


def k_tcp_latin1_send_unconnected() -> None:
    fast_io.tcp_send_latin1(tcp(), "x")


def k_tcp_latin1_send_after_shutdown(target: str) -> None:
    sock = connected(target)
    sock.shutdown(SEND)
    fast_io.tcp_send_latin1(sock, "x")


def k_tcp_latin1_receive_nonblocking(target: str) -> None:
    sock = connected(target)
    sock.set_blocking(False)
    fast_io.tcp_receive_latin1(sock, 10)


def k_tcp_latin1_receive_zero(target: str) -> None:
    raise Value(repr(fast_io.tcp_receive_latin1(connected(target), 0)))


# -- socket-tcp: id and splice ---------------------------------------------------

def k_tcp_splice_echo(size: int) -> None:
    """A connection's accepted end spliced to itself echoes to the client,
    in 64 KiB pieces (blocking: one call moves each piece)."""
    client, conn = pair()
    data = pattern(size)
    moved, parts = 0, []
    for offset in range(0, size, 65536):
        piece = data[offset:offset + 65536]
        lane_send(client, "latin1", piece)
        moved += fast_io.splice(conn, conn, len(piece))
        parts.append(lane_recv_exact(client, "latin1", len(piece)))
    received = b"".join(parts)
    raise Value(f"moved:{moved} exact:{received == data}")


def k_tcp_splice_proxy(target: str, size: int) -> None:
    """A proxy: client -> accepted end -splice-> upstream (the echo peer)
    -> upstream -splice-> accepted end -> client."""
    client, conn = pair()
    upstream = connected(target)
    data = pattern(size)
    out = back = 0
    parts = []
    for offset in range(0, size, 65536):
        piece = data[offset:offset + 65536]
        lane_send(client, "latin1", piece)
        out += fast_io.splice(conn, upstream, len(piece))
        back += fast_io.splice(upstream, conn, len(piece))
        parts.append(lane_recv_exact(client, "latin1", len(piece)))
    received = b"".join(parts)
    raise Value(f"moved:{out}/{back} exact:{received == data}")


def k_tcp_splice_eof() -> None:
    """Blocking: moves what came before end of stream, then returns 0."""
    client, conn = pair()
    client.send(b"abc")
    client.shutdown(SEND)
    first = fast_io.splice(conn, conn, 1 << 20)
    second = fast_io.splice(conn, conn, 1 << 20)
    raise Value(f"{first},{second},{lane_recv_exact(client, 'list', 3).decode()}")


def k_tcp_splice_max_len() -> None:
    """At most max-len bytes move; the rest stays queued on the source."""
    client, conn = pair()
    client.send(ALL)
    wait_queued(conn, 256)
    moved = fast_io.splice(conn, conn, 100)
    echoed = lane_recv_exact(client, "list", 100)
    rest = lane_recv_exact(conn, "list", 156)
    raise Value(f"{moved} echoed:{echoed == ALL[:100]} kept:{rest == ALL[100:]}")


def k_tcp_splice_bad_target(kind: str) -> None:
    """splice to a target that cannot take bytes: the error, then the
    source's queued bytes, which must all still be there."""
    client, conn = pair()
    client.send(b"keep")
    wait_queued(conn, 4)
    keep: list[Any] = []
    target: wtcp.TcpSocket
    if kind == "unconnected":
        keep.append(tcp())
        target = keep[0]
    elif kind == "listening":
        listener = tcp()
        listener.bind(addr("127.0.0.1:0"))
        listener.listen(1)
        keep.append(listener)
        target = listener
    elif kind == "shut-down":
        other_client, other = pair()
        keep += [other_client, other]
        other.shutdown(SEND)
        target = other
    elif kind == "self-shut-down":
        conn.shutdown(SEND)
        target = conn
    else:
        raise Value(f"unknown kind {kind}")
    failed = outcome(lambda: fast_io.splice(conn, target, 10))
    raise Value(f"{failed}|{lane_recv_exact(conn, 'list', 4).decode()}")


def k_tcp_splice_bad_source(kind: str) -> None:
    _, conn = pair()
    source = tcp()
    if kind == "listening":
        source.bind(addr("127.0.0.1:0"))
        source.listen(1)
    fast_io.splice(source, conn, 10)


def k_tcp_splice_nonblocking() -> None:
    _, conn = pair()
    conn.set_blocking(False)
    fast_io.splice(conn, conn, 10)


def k_tcp_splice_timeout(millis: int) -> None:
    _, conn = pair()
    conn.set_timeout(millis * 1_000_000)
    fast_io.splice(conn, conn, 10)


def k_tcp_splice_target_full(size: int, target_mode: str, again_mode: str) -> None:
    """Splice into a target whose peer does not read, then let it read.

    c1 -> s1 (the source) -splice-> c2 (the target, small buffers) -> s2,
    everything non-blocking but the target when `target_mode` is
    "blocking" (with a 2 s timeout: the source's mode decides, so no
    splice call may wait). Reports:

    - stalled: the target stayed full (a splice would-block, and again
      200 ms later) while bytes were queued on the source; partial: a
      splice returned a count and left bytes queued (what the target did
      not take stays there);
    - again: one more splice at the stall, non-blocking ("would-block")
      or blocking with a 200 ms timeout ("timeout");
    - exact / extra: after s2 reads, every byte arrived once, in order,
      and nothing follows before end of stream; waited: whether any
      non-blocking splice call took over a second.
    """
    c1, s1 = pair()
    c2, s2 = pair(4096)
    c2.set_send_buffer_size(4096)
    for sock in (c1, s1, s2):
        sock.set_blocking(False)
    if target_mode == "blocking":
        c2.set_blocking(True)
        c2.set_timeout(2_000_000_000)
    else:
        c2.set_blocking(False)
    data = pattern(size)
    target = c2
    writable = c2.subscribe(WRITABLE_TCP)
    readable = s2.subscribe(READABLE_TCP)
    state = {"sent": 0, "moved": 0, "slowest": 0.0}
    deadline = time.monotonic() + 60

    def feed() -> None:
        sent = int(state["sent"])
        if sent < size:
            try:
                piece = data[sent:sent + 65536].decode("latin-1")
                state["sent"] = sent + fast_io.tcp_send_latin1(c1, piece)
            except Err as error:
                if code(error) != "would-block":
                    raise

    def splice_once() -> int | None:
        began = time.monotonic()
        try:
            moved = fast_io.splice(s1, target, 1 << 40)
        except Err as error:
            if code(error) != "would-block":
                raise
            return None
        finally:
            state["slowest"] = max(state["slowest"], time.monotonic() - began)
        state["moved"] += moved
        return moved

    def check_time(what: str) -> None:
        if time.monotonic() > deadline:
            raise Value(f"stuck {what}: sent {state['sent']} moved {state['moved']}")

    stalled = partial = False
    while not stalled:
        check_time("filling")
        feed()
        moved = splice_once()
        if moved and queued(s1):
            partial = True
        if moved is None and queued(s1):
            # Still full 200 ms later? (An OS socket may take a few more
            # bytes while the last segments are acknowledged.)
            wsocket.poll([writable], 200_000_000)
            stalled = splice_once() is None
    if again_mode == "timeout":
        s1.set_blocking(True)
        s1.set_timeout(200_000_000)
    again = outcome(lambda: fast_io.splice(s1, target, 1 << 40))
    s1.set_blocking(False)
    parts: list[bytes] = []
    got = 0
    while got < size:
        check_time(f"draining at {got}")
        feed()
        progress = bool(splice_once())
        try:
            chunk = fast_io.tcp_receive_latin1(s2, 65536).encode("latin-1")
        except Err as error:
            if code(error) != "would-block":
                raise
            chunk = None
        if chunk == b"":
            break
        if chunk:
            parts.append(chunk)
            got += len(chunk)
            progress = True
        if not progress:
            wsocket.poll([readable], 10_000_000)
    c1.shutdown(SEND)
    while splice_once() != 0:  # until end of stream on s1 (nothing more to move)
        check_time("ending")
        time.sleep(0.001)
    c2.shutdown(SEND)
    extra = 0
    while True:
        check_time("reading the end")
        try:
            chunk = fast_io.tcp_receive_latin1(s2, 65536).encode("latin-1")
        except Err as error:
            if code(error) != "would-block":
                raise
            wsocket.poll([readable], 10_000_000)
            continue
        if not chunk:
            break
        extra += len(chunk)
    received = b"".join(parts)
    raise Value(f"stalled:{stalled} partial:{partial} again:{again} "
                f"exact:{received == data} extra:{extra} waited:{state['slowest'] > 1.0}")


# -- socket-udp --------------------------------------------------------------

def k_udp_network() -> None:
    raise Value("none" if wudp.network() is None else "some")


def k_udp_create(fam: str) -> None:
    raise Value(udp(fam).address_family().name.lower())


def k_udp_bind(local: str, fam: str = "ipv4") -> None:
    udp(fam).bind(addr(local))


def k_udp_bind_twice(local: str) -> None:
    sock = udp()
    sock.bind(addr(local))
    sock.bind(addr(local))


def k_udp_bind_in_use(local: str) -> None:
    first = udp()
    first.bind(addr(local))
    port = cg.from_wit(first.local_address())[1]
    udp().bind(addr(f"{local.rsplit(':', 1)[0]}:{port}"))


def k_udp_echo(target: str, fam: str = "ipv4") -> None:
    sock = udp(fam)
    sock.set_timeout(5_000_000_000)
    sock.send(b"datagram", addr(target))
    datagram = sock.receive(100)
    raise Value(f"{datagram.data.decode()} from-target:{fmt(datagram.remote_address) == target}")


def k_udp_send(target: str, size: int = 8) -> None:
    udp().send(b"x" * size, addr(target))


def k_udp_send_unconnected_no_address() -> None:
    udp().send(b"x", None)


def k_udp_connect(target: str) -> None:
    udp().connect(addr(target))


def k_udp_connected_echo(target: str) -> None:
    sock = udp()
    sock.connect(addr(target))
    sock.set_timeout(5_000_000_000)
    sock.send(b"connected", None)
    raise Value(f"{sock.receive(100).data.decode()} remote:{fmt(sock.remote_address()) == target}")


def k_udp_disconnect_unconnected() -> None:
    udp().disconnect()


def k_udp_disconnect(target: str) -> None:
    sock = udp()
    sock.connect(addr(target))
    sock.disconnect()
    sock.remote_address()


def k_udp_remote_unconnected() -> None:
    udp().remote_address()


def k_udp_local_unbound() -> None:
    udp().local_address()


def k_udp_receive_unbound() -> None:
    udp().receive(10)


def k_udp_receive_nonblocking(local: str) -> None:
    sock = udp()
    sock.bind(addr(local))
    sock.set_blocking(False)
    sock.receive(10)


def k_udp_receive_timeout(local: str, millis: int) -> None:
    sock = udp()
    sock.bind(addr(local))
    sock.set_timeout(millis * 1_000_000)
    sock.receive(10)


def k_udp_peek(target: str) -> None:
    sock = udp()
    sock.set_timeout(5_000_000_000)
    sock.send(b"peeked", addr(target))
    first = sock.peek(100).data
    second = sock.receive(100).data
    raise Value(f"{first.decode()}|{second.decode()}")


def k_udp_option(name: str, value: Any) -> None:
    """Set an option by its WIT name and report what reading it returns."""
    sock = udp()
    getattr(sock, f"set_{name}")(value)
    raise Value(getattr(sock, name)())


def k_udp_from_socket(protocol: str) -> None:
    raw, _ = preopen(protocol)
    wudp.UdpSocket.from_socket(raw)


def k_udp_preopen_echo(target: str) -> None:
    raw, _ = preopen("udp")
    sock = wudp.UdpSocket.from_socket(raw)
    sock.set_timeout(5_000_000_000)
    sock.send(b"from the pre-open", addr(target))
    raise Value(sock.receive(100).data.decode())


def k_udp_restrict_send(rules: list[str], target: str) -> None:
    network = wudp.network()
    if network is None:
        raise Value("no-network")
    network.restrict(rules).create_udp_socket(V4).send(b"x", addr(target))


def k_udp_hidden_sender(target: str) -> None:
    sock = udp()
    sock.set_timeout(5_000_000_000)
    sock.send(b"who", addr(target))
    raise Value(fmt(sock.receive(100).remote_address))


def k_udp_latin1_echo(target: str, send_lane: str, receive_lane: str, size: int = 1024) -> None:
    """A datagram of every byte value to the UDP echo peer and back,
    through the given lanes ("latin1" or "list")."""
    sock = udp()
    sock.set_timeout(5_000_000_000)
    data = pattern(size)
    if send_lane == "latin1":
        fast_io.udp_send_latin1(sock, data.decode("latin-1"), addr(target))
    elif send_lane == "hex":
        fast_io.udp_send_hex(sock, data.hex(), addr(target))
    else:
        sock.send(data, addr(target))
    if receive_lane == "latin1":
        datagram = fast_io.udp_receive_latin1(sock, 65535)
        got, sender = datagram.data.encode("latin-1"), datagram.remote_address
    elif receive_lane == "hex":
        datagram = fast_io.udp_receive_hex(sock, 65535)
        got, sender = bytes.fromhex(datagram.data), datagram.remote_address
    else:
        reply = sock.receive(65535)
        got, sender = reply.data, reply.remote_address
    raise Value(f"{len(got)} exact:{got == data} from-target:{fmt(sender) == target}")


def k_udp_latin1_send(target: str) -> None:
    fast_io.udp_send_latin1(udp(), "x", addr(target))


def k_udp_latin1_send_invalid(target: str, code_point: int) -> None:
    """The datagram with a code point above 255 is not sent: the next one
    the echo peer returns is the marker."""
    sock = udp()
    sock.set_timeout(5_000_000_000)
    text = "a" * 100 + chr(code_point)
    failed = outcome(lambda: fast_io.udp_send_latin1(sock, text, addr(target)))
    fast_io.udp_send_latin1(sock, "END", addr(target))
    raise Value(f"{failed}|{fast_io.udp_receive_latin1(sock, 1000).data}")


def k_udp_latin1_connected(target: str) -> None:
    sock = udp()
    sock.connect(addr(target))
    sock.set_timeout(5_000_000_000)
    fast_io.udp_send_latin1(sock, ALL.decode("latin-1"), None)
    raise Value(f"exact:{fast_io.udp_receive_latin1(sock, 1000).data.encode('latin-1') == ALL}")


def k_udp_hex_send_invalid(target: str, text: str) -> None:
    """A datagram of malformed hex is not sent: the next one the echo peer
    returns is the marker."""
    sock = udp()
    sock.set_timeout(5_000_000_000)
    failed = outcome(lambda: fast_io.udp_send_hex(sock, "61" * 50 + text, addr(target)))
    fast_io.udp_send_hex(sock, b"END".hex(), addr(target))
    raise Value(f"{failed}|{bytes.fromhex(fast_io.udp_receive_hex(sock, 1000).data).decode()}")


def k_udp_latin1_truncated(target: str, max_len: int) -> None:
    """receive-latin1 returns at most max-len bytes of the datagram."""
    sock = udp()
    sock.set_timeout(5_000_000_000)
    fast_io.udp_send_latin1(sock, ALL.decode("latin-1"), addr(target))
    got = fast_io.udp_receive_latin1(sock, max_len).data.encode("latin-1")
    raise Value(f"{len(got)} prefix:{got == ALL[:len(got)]}")


def k_udp_latin1_receive_unbound() -> None:
    fast_io.udp_receive_latin1(udp(), 10)


# -- ip-resolve-address --------------------------------------------------------

def k_resolver() -> None:
    raise Value("none" if wresolve.resolver() is None else "some")


def k_resolve(name: str, fam: str | None = None) -> None:
    resolver = wresolve.resolver()
    if resolver is None:
        raise Value("no-resolver")
    options = wresolve.ResolveOptions(address_family=None if fam is None else family(fam))
    found = resolver.resolve_addresses(name, options)
    raise Value(",".join(sorted(cg.ip_from_wit(ip) for ip in found)))


def k_resolve_restricted(rules: list[str], name: str) -> None:
    resolver = wresolve.resolver()
    if resolver is None:
        raise Value("no-resolver")
    narrowed = resolver.restrict(rules)
    narrowed.resolve_addresses(name, wresolve.ResolveOptions(address_family=None))


def k_resolve_connect(name: str, port: int) -> None:
    resolver = wresolve.resolver()
    if resolver is None:
        raise Value("no-resolver")
    found = resolver.resolve_addresses(name, wresolve.ResolveOptions(address_family=V4))
    ip = cg.ip_from_wit(found[0])
    tcp().connect(addr(f"{ip}:{port}"))


# -- the tls extension ---------------------------------------------------------------

def tls_outcome(call: Callable[[], object]) -> str:
    """"ok", or a `tls-error` as text: the error-code name of `socket`,
    ``verify:<verify-reason>``, or ``handshake-failed``."""
    try:
        call()
    except Err as error:
        value = error.value
        if isinstance(value, wtls.TlsError_Socket):
            return str(value.value.name).lower().replace("_", "-")
        if isinstance(value, wtls.TlsError_VerificationFailed):
            return "verify:" + value.value.reason.name.lower().replace("_", "-")
        return "handshake-failed"
    return "ok"


def handshaken(target: str, name: str, alpn: list[str] | None = None) -> wtcp.TcpSocket:
    sock = connected(target)
    got = tls_outcome(lambda: wtls.client_handshake(sock, name, alpn or []))
    if got != "ok":
        raise Value(got)
    return sock


def k_tls_handshake(target: str, name: str, alpn: list[str]) -> None:
    sock = handshaken(target, name, alpn)
    info = wtls.session(sock)
    raise Value(f"ok {info.version} {info.alpn_protocol or '-'}")


def k_tls_handshake_unconnected() -> None:
    sock = tcp()
    raise Value(tls_outcome(lambda: wtls.client_handshake(sock, "localhost", [])))


def k_tls_handshake_twice(target: str, name: str) -> None:
    sock = connected(target)
    first = tls_outcome(lambda: wtls.client_handshake(sock, name, []))
    second = tls_outcome(lambda: wtls.client_handshake(sock, name, []))
    raise Value(f"{first} {second}")


def k_tls_handshake_nonblocking(target: str, name: str, rounds: int) -> None:
    """Up to `rounds` calls, waiting (at most 2 s) for readable between them."""
    sock = connected(target)
    sock.set_blocking(False)
    seen = []
    for _ in range(rounds):
        got = tls_outcome(lambda: wtls.client_handshake(sock, name, []))
        seen.append(got)
        if got != "would-block":
            break
        pollable = sock.subscribe(READABLE_TCP)
        wsocket.poll([pollable], 2_000_000_000)
    raise Value(",".join(seen))


def k_tls_verify_then_send(target: str, name: str) -> None:
    sock = connected(target)
    tls_outcome(lambda: wtls.client_handshake(sock, name, []))
    raise Value(outcome(lambda: sock.send(b"after")))


def k_tls_resolve_handshake(host: str, port: int, name: str) -> None:
    resolver = wresolve.resolver()
    if resolver is None:
        raise Value("no-resolver")
    found = resolver.resolve_addresses(host, wresolve.ResolveOptions(address_family=V4))
    sock = connected(f"{cg.ip_from_wit(found[0])}:{port}")
    raise Value(tls_outcome(lambda: wtls.client_handshake(sock, name, [])))


def k_tls_echo(target: str, name: str, size: int) -> None:
    sock = handshaken(target, name)
    data = pattern(size)
    view = data
    while view:
        view = view[sock.send(view):]
    back = recv_exact(sock, size)
    raise Value(len(back) if back == data else f"mismatch {len(back)}")


def k_tls_session(target: str, name: str) -> None:
    sock = handshaken(target, name)
    info = wtls.session(sock)
    cert = info.peer_certificate
    sans = [f"{kind}:{value}" for kind, value in cert.subject_alt_names] if cert else []
    raise Value(f"{info.server_name} {info.version} "
                f"{'DNS:svc.test' if 'DNS:svc.test' in sans else sans}")


def k_tls_session_plain(target: str) -> None:
    sock = connected(target)
    raise Value(outcome(lambda: wtls.session(sock)))


def k_tls_host_terminated(target: str) -> None:
    raise Value(wtls.host_terminated(connected(target)))


def k_tls_close_notify(target: str, name: str) -> None:
    sock = handshaken(target, name)
    sock.send(b"bye")
    recv_exact(sock, 3)
    done = outcome(lambda: wtls.close_notify(sock))
    raise Value(f"{done} {sock.receive(100)!r}".replace("b''", "''"))


def nonblocking_call(call: Callable[[], Any], sockets: list[wtcp.TcpSocket]) -> Any:
    """`call` until it does not say would-block, polling `sockets`
    (readable, 100 ms) in between; at most 300 rounds."""
    for _ in range(300):
        try:
            return call()
        except Err as error:
            if code(error) != "would-block":
                raise
        wsocket.poll([sock.subscribe(READABLE_TCP) for sock in sockets], 100_000_000)
    raise Value("still would-block")


def k_tls_host_terminated_loop() -> None:
    """Both ends of a --tls-listen connection in this guest, non-blocking:
    the client's handshake and the host's server handshake (driven by the
    accepted end's receive) progress in turns."""
    listener_raw, name = preopen("tcp")
    listener = wtcp.TcpSocket.from_socket(listener_raw)
    client = connected(name)
    server, _ = listener.accept()
    terminated = f"{wtls.host_terminated(listener)} {wtls.host_terminated(server)}"
    client.set_blocking(False)
    server.set_blocking(False)
    done = False
    for _ in range(300):
        if not done:
            got = tls_outcome(lambda: wtls.client_handshake(client, "localhost", ["http/1.1"]))
            if got not in ("ok", "would-block"):
                raise Value(f"client handshake: {got}")
            done = got == "ok"
        try:
            server.receive(100)  # drives the server handshake; nothing to read yet
        except Err as error:
            if code(error) != "would-block":
                raise
        if done:
            break
        wsocket.poll([client.subscribe(READABLE_TCP), server.subscribe(READABLE_TCP)],
                     100_000_000)
    nonblocking_call(lambda: client.send(b"hello"), [client, server])
    data = nonblocking_call(lambda: server.receive(100), [server])
    nonblocking_call(lambda: server.send(b"back"), [client, server])
    back = nonblocking_call(lambda: client.receive(100), [client])
    info = wtls.session(server)
    cert = "no-client-certificate" if info.peer_certificate is None else "client-certificate"
    raise Value(f"{terminated} {data.decode()} {back.decode()} {info.server_name} "
                f"{info.alpn_protocol} {cert}")


def k_tls_truncated(target: str, name: str) -> None:
    sock = handshaken(target, name)
    data = recv_exact(sock, 7)
    failed = outcome(lambda: sock.receive(100))
    after = sock.receive(100)
    raise Value(f"{data.decode()} {failed} {after!r}".replace("b''", "''"))


KINDS: dict[str, Callable[..., None]] = {
    name[2:].replace("_", "-"): function
    for name, function in dict(globals()).items() if name.startswith("k_")
}
PREOPENS: list[tuple[wsocket.Socket, str]] = []


def run_case(case_id: str, kind: str, args: list[Any]) -> str:
    probe = KINDS.get(kind)
    if probe is None:
        return f"unknown-kind:{kind}"
    try:
        probe(*args)
    except Value as value:
        return f"value:{value.value}"
    except Err as error:
        return code(error)
    return "ok"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: conformance CASES-JSON", file=sys.stderr)
        return 2
    PREOPENS.extend(wsocket.preopened_sockets())
    for case_id, kind, args in json.loads(argv[0]):
        got = run_case(case_id, kind, args)
        print(json.dumps({"case": case_id, "got": got}), flush=True)
    return 0


Run = cg.run_main(main)
