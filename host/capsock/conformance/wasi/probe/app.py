"""The wasi:sockets probe: runs named checks of `wasi:sockets@0.2` on any host.

    wasi-probe '[["case-id", "kind", [args...]], ...]'

Built by componentize-py against the standard WASI 0.2 WIT alone (the world
in ``capsock.conformance.wasi.build``: ``wasi:sockets/*``, ``wasi:io``,
``wasi:clocks/monotonic-clock``, exporting ``wasi:cli/run``), without
capsock's guest library or contract, so the very same ``.wasm`` runs on the
wasmtime CLI, jco and capsock.

Each *kind* below calls the raw bindings, a function at a time, as the 0.2
documentation describes them. For every case it prints one JSON line
``{"case": ID, "got": OUTCOME}``: ``"ok"``; the name of the first
``error-code`` a call returned (``"access-denied"``); ``"stream:closed"`` or
``"stream:last-operation-failed"`` for a stream error; or ``"value:<text>"``
for a probe that reports what it saw. The expected outcomes live with the
case table (``capsock.conformance.wasi.cases``), not here: this guest only
reports. Every wait is bounded (`WAIT_NS`); a probe that traps ends the
run, and the harness reruns the cases after it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import (
    instance_network,
    ip_name_lookup,
    monotonic_clock,
    tcp_create_socket,
    udp_create_socket,
)
from wit_world.imports import network as wnet
from wit_world.imports import poll as wpoll
from wit_world.imports import streams as wstreams
from wit_world.imports import tcp as wtcp
from wit_world.imports import udp as wudp

WAIT_NS = 5_000_000_000  # the longest any single wait may take
SECOND = 1_000_000_000
V4 = wnet.IpAddressFamily.IPV4
V6 = wnet.IpAddressFamily.IPV6


class Value(Exception):
    """Raised by a probe to report a value instead of ok."""

    def __init__(self, value: object) -> None:
        super().__init__(str(value))
        self.value = str(value)


# -- addresses ---------------------------------------------------------------------

def sa(text: str) -> wnet.IpSocketAddress:
    """``127.0.0.1:80`` or ``[::1]:80`` as a WIT socket address."""
    host, _, port = text.rpartition(":")
    if host.startswith("["):
        return wnet.IpSocketAddress_Ipv6(wnet.Ipv6SocketAddress(
            int(port), 0, v6_words(host[1:-1]), 0))
    return wnet.IpSocketAddress_Ipv4(wnet.Ipv4SocketAddress(
        int(port), tuple(int(part) for part in host.split("."))))  # type: ignore[arg-type]


def v6_words(text: str) -> tuple[int, int, int, int, int, int, int, int]:
    head, sep, tail = text.partition("::")
    if "." in text:  # ::ffff:a.b.c.d
        prefix, _, v4 = text.rpartition(":")
        octets = [int(part) for part in v4.split(".")]
        text = f"{prefix}:{octets[0] << 8 | octets[1]:x}:{octets[2] << 8 | octets[3]:x}"
        head, sep, tail = text.partition("::")
    left = [int(w, 16) for w in head.split(":") if w]
    right = [int(w, 16) for w in tail.split(":") if w]
    words = left + [0] * (8 - len(left) - len(right)) + right if sep else left
    return tuple(words)  # type: ignore[return-value]


def ip_text(address: Any) -> str:
    if isinstance(address, wnet.IpAddress_Ipv4):
        return ".".join(str(part) for part in address.value)
    return v6_text(address.value)


def v6_text(words: tuple[int, ...]) -> str:
    best, run, start = (0, 0), 0, 0
    for index, word in enumerate(list(words) + [1]):
        if word == 0:
            if run == 0:
                start = index
            run += 1
        else:
            if run > best[1] and run > 1:
                best = (start, run)
            run = 0
    hexes = [f"{word:x}" for word in words]
    if best[1]:
        return ":".join(hexes[:best[0]]) + "::" + ":".join(hexes[best[0] + best[1]:])
    return ":".join(hexes)


def fmt(address: wnet.IpSocketAddress) -> str:
    if isinstance(address, wnet.IpSocketAddress_Ipv4):
        return ".".join(str(part) for part in address.value.address) + f":{address.value.port}"
    return f"[{v6_text(address.value.address)}]:{address.value.port}"


def family(text: str) -> wnet.IpAddressFamily:
    return V6 if text == "ipv6" else V4


# -- waiting -------------------------------------------------------------------------

def drop(*resources: Any) -> None:
    """Release resources now, children first (a stream or pollable before
    its socket): a host may refuse to drop a resource with live children."""
    for resource in resources:
        if resource is not None:
            resource.__exit__(None, None, None)


def ready(pollable: wpoll.Pollable, timeout_ns: int = 0) -> bool:
    """Whether `pollable` is ready within `timeout_ns` (0: right now);
    `poll` with a clock pollable beside it, so no wait is unbounded."""
    timer = monotonic_clock.subscribe_duration(timeout_ns)
    try:
        return 0 in wpoll.poll([pollable, timer])
    finally:
        drop(timer)


def wait_on(resource: Any, timeout_ns: int = WAIT_NS) -> bool:
    pollable = resource.subscribe()
    try:
        return ready(pollable, timeout_ns)
    finally:
        drop(pollable)


def finish(resource: Any, call: Callable[[], Any]) -> Any:
    """A start/finish pair's second half: retry `call` while it says
    would-block, waiting on the resource's pollable (bounded)."""
    for _ in range(100):
        try:
            return call()
        except Err as error:
            if code(error) != "would-block":
                raise
        if not wait_on(resource):
            raise Value("timeout waiting for would-block to end")
    raise Value("still would-block after 100 waits")


def code(error: Err[Any]) -> str:
    value = error.value
    if isinstance(value, wstreams.StreamError_Closed):
        return "stream:closed"
    if isinstance(value, wstreams.StreamError_LastOperationFailed):
        return "stream:last-operation-failed"
    return str(value.name).lower().replace("_", "-")


# -- building blocks -----------------------------------------------------------------

_NETWORK: list[wnet.Network] = []


def net() -> wnet.Network:
    if not _NETWORK:
        _NETWORK.append(instance_network.instance_network())
    return _NETWORK[0]


def tcp(fam: str = "ipv4") -> wtcp.TcpSocket:
    return tcp_create_socket.create_tcp_socket(family(fam))


def udp(fam: str = "ipv4") -> wudp.UdpSocket:
    return udp_create_socket.create_udp_socket(family(fam))


def bind(sock: Any, address: str) -> None:
    sock.start_bind(net(), sa(address))
    finish(sock, sock.finish_bind)


def connect(sock: wtcp.TcpSocket, address: str) -> tuple[wstreams.InputStream,
                                                        wstreams.OutputStream]:
    sock.start_connect(net(), sa(address))
    return finish(sock, sock.finish_connect)  # type: ignore[no-any-return]


def listen(sock: wtcp.TcpSocket) -> None:
    sock.start_listen()
    finish(sock, sock.finish_listen)


def write_all(out: wstreams.OutputStream, data: bytes) -> None:
    for offset in range(0, len(data), 4096):
        out.blocking_write_and_flush(data[offset:offset + 4096])


def read_exactly(stream: wstreams.InputStream, size: int) -> bytes:
    data = b""
    for _ in range(10_000):
        if len(data) >= size:
            return data
        chunk = stream.read(size - len(data))
        if not chunk and not wait_on(stream):
            raise Value(f"timeout after {len(data)} bytes")
        data += chunk
    raise Value(f"no progress after {len(data)} bytes")


def read_to_end(stream: wstreams.InputStream, limit: int = 1 << 20) -> tuple[bytes, str]:
    """Read until a stream error; the bytes and that error's outcome."""
    data = b""
    for _ in range(10_000):
        try:
            chunk = stream.read(65536)
        except Err as error:
            return data, code(error)
        if not chunk and not wait_on(stream):
            return data, "timeout"
        data += chunk
        if len(data) > limit:
            return data, "too-much"
    return data, "no-end"


def tcp_pair(fam: str = "ipv4") -> tuple[Any, ...]:
    """A listener bound on loopback, a client connected to it and the
    accepted server side: (listener, client, cin, cout, server, sin, sout)."""
    host = "[::1]:0" if fam == "ipv6" else "127.0.0.1:0"
    listener = tcp(fam)
    bind(listener, host)
    listen(listener)
    client = tcp(fam)
    cin, cout = connect(client, fmt(listener.local_address()))
    server, sin, sout = finish(listener, listener.accept)
    return listener, client, cin, cout, server, sin, sout


def bind_local(sock: wudp.UdpSocket, address: str) -> None:
    """The bind before the step a UDP probe is about: its failure is
    reported as ``value:bind:<code>``, apart from that step's own outcome."""
    try:
        bind(sock, address)
    except Err as error:
        raise Value(f"bind:{code(error)}") from None


def udp_stream(sock: wudp.UdpSocket, remote: str | None) -> tuple[Any, Any]:
    return sock.stream(sa(remote) if remote else None)  # type: ignore[no-any-return]


def send(out: wudp.OutgoingDatagramStream, data: bytes, remote: str | None) -> int:
    if not wait_on(out) or out.check_send() == 0:
        raise Value("check-send stayed 0")
    return out.send([wudp.OutgoingDatagram(data, sa(remote) if remote else None)])


def receive_one(incoming: wudp.IncomingDatagramStream) -> wudp.IncomingDatagram:
    for _ in range(100):
        got = incoming.receive(1)
        if got:
            return got[0]
        if not wait_on(incoming):
            raise Value("nothing received")
    raise Value("nothing received after 100 waits")


# -- probes: network and creation ------------------------------------------------------

def p_instance_network() -> None:
    drop(instance_network.instance_network())


def p_tcp_create(fam: str) -> None:
    drop(tcp(fam))


def p_udp_create(fam: str) -> None:
    drop(udp(fam))


def p_create_many(kind: str, count: int) -> None:
    made = [tcp() if kind == "tcp" else udp() for _ in range(count)]
    drop(*made)
    raise Value(len(made))


# -- probes: TCP bind ------------------------------------------------------------------

def p_tcp_bind(address: str, fam: str = "ipv4") -> None:
    sock = tcp(fam)
    try:
        bind(sock, address)
        raise Value(fmt(sock.local_address()))
    finally:
        drop(sock)


def p_tcp_finish_bind_only() -> None:
    sock = tcp()
    try:
        sock.finish_bind()
    finally:
        drop(sock)


def p_tcp_finish_bind_twice(address: str) -> None:
    sock = tcp()
    try:
        bind(sock, address)
        sock.finish_bind()
    finally:
        drop(sock)


def p_tcp_bind_twice(first: str, second: str) -> None:
    sock = tcp()
    try:
        bind(sock, first)
        sock.start_bind(net(), sa(second))
    finally:
        drop(sock)


def p_tcp_start_bind_twice(address: str) -> None:
    sock = tcp()
    try:
        sock.start_bind(net(), sa(address))
        sock.start_bind(net(), sa(address))
    finally:
        drop(sock)


def p_tcp_bind_retry(denied: str, allowed: str) -> None:
    """A failed bind leaves the socket unbound: bind again."""
    sock = tcp()
    try:
        try:
            bind(sock, denied)
            raise Value("first bind succeeded")
        except Err as error:
            first = code(error)
        bind(sock, allowed)
        raise Value(f"{first},ok")
    finally:
        drop(sock)


def p_tcp_bind_in_use(address: str) -> None:
    """Bind where a listener already is (another of this guest's sockets)."""
    first = tcp()
    second = tcp()
    try:
        bind(first, address)
        listen(first)
        bind(second, fmt(first.local_address()))
    finally:
        drop(second, first)


def p_tcp_rebind_after_close() -> None:
    """Bind the port of a listener whose accepted connection this side
    closed first (its TIME_WAIT): the spec's implementors note says a bind
    must not be affected (an implicit SO_REUSEADDR)."""
    listener, client, cin, cout, server, sin, sout = tcp_pair()
    port = listener.local_address().value.port
    server.shutdown(wtcp.ShutdownType.BOTH)
    drop(sin, sout, server)
    read_to_end(cin)
    drop(cin, cout, client, listener)
    again = tcp()
    try:
        bind(again, f"127.0.0.1:{port}")
        listen(again)
    finally:
        drop(again)


def p_tcp_local_address_unbound() -> None:
    sock = tcp()
    try:
        sock.local_address()
    finally:
        drop(sock)


def p_tcp_remote_address(bound: str) -> None:
    sock = tcp()
    try:
        if bound:
            bind(sock, bound)
        sock.remote_address()
    finally:
        drop(sock)


# -- probes: TCP connect ---------------------------------------------------------------

def p_tcp_connect(address: str, fam: str = "ipv4") -> None:
    sock = tcp(fam)
    try:
        streams = connect(sock, address)
        drop(*streams)
    finally:
        drop(sock)


def p_tcp_connect_addresses(address: str) -> None:
    sock = tcp()
    try:
        streams = connect(sock, address)
        try:
            port = sock.local_address().value.port
            raise Value(f"remote={fmt(sock.remote_address())} local-port-set={port != 0}")
        finally:
            drop(*streams)
    finally:
        drop(sock)


def p_tcp_finish_connect_only() -> None:
    sock = tcp()
    try:
        sock.finish_connect()
    finally:
        drop(sock)


def p_tcp_connect_progress(address: str) -> None:
    """start-connect, then finish-connect at once (would-block while in
    progress is allowed), then after the pollable is ready: it must be done."""
    sock = tcp()
    try:
        sock.start_connect(net(), sa(address))
        try:
            streams = sock.finish_connect()
            drop(*streams)
            raise Value("ok-at-once:ok")
        except Err as error:
            first = code(error)
        if first != "would-block":
            raise Value(first)
        if not wait_on(sock):
            raise Value("would-block,never-ready")
        streams = sock.finish_connect()
        drop(*streams)
        raise Value("would-block,ok")
    finally:
        drop(sock)


def p_tcp_connect_twice(address: str) -> None:
    sock = tcp()
    try:
        streams = connect(sock, address)
        try:
            sock.start_connect(net(), sa(address))
        finally:
            drop(*streams)
    finally:
        drop(sock)


def p_tcp_start_connect_twice(address: str) -> None:
    sock = tcp()
    try:
        sock.start_connect(net(), sa(address))
        sock.start_connect(net(), sa(address))
    finally:
        drop(sock)


def p_tcp_connect_after_failure(refused: str, second: str) -> None:
    sock = tcp()
    try:
        try:
            connect(sock, refused)
            raise Value("first connect succeeded")
        except Err as error:
            first = code(error)
        try:
            sock.start_connect(net(), sa(second))
            raise Value(f"{first},ok")
        except Err as error:
            raise Value(f"{first},{code(error)}") from None
    finally:
        drop(sock)


def p_tcp_connect_listening(address: str) -> None:
    sock = tcp()
    try:
        bind(sock, "127.0.0.1:0")
        listen(sock)
        sock.start_connect(net(), sa(address))
    finally:
        drop(sock)


# -- probes: listen and accept ---------------------------------------------------------

def p_tcp_listen_unbound() -> None:
    sock = tcp()
    try:
        sock.start_listen()
    finally:
        drop(sock)


def p_tcp_finish_listen_only(address: str) -> None:
    sock = tcp()
    try:
        bind(sock, address)
        sock.finish_listen()
    finally:
        drop(sock)


def p_tcp_is_listening(address: str) -> None:
    sock = tcp()
    try:
        before = sock.is_listening()
        bind(sock, address)
        listen(sock)
        raise Value(f"{before},{sock.is_listening()}")
    finally:
        drop(sock)


def p_tcp_listen_twice(address: str) -> None:
    sock = tcp()
    try:
        bind(sock, address)
        listen(sock)
        sock.start_listen()
    finally:
        drop(sock)


def p_tcp_listen_connected(address: str) -> None:
    sock = tcp()
    try:
        streams = connect(sock, address)
        try:
            sock.start_listen()
        finally:
            drop(*streams)
    finally:
        drop(sock)


def p_tcp_backlog(address: str, value: int) -> None:
    sock = tcp()
    try:
        bind(sock, address)
        sock.set_listen_backlog_size(value)
        listen(sock)
    finally:
        drop(sock)


def p_tcp_backlog_after_listen(address: str, value: int) -> None:
    sock = tcp()
    try:
        bind(sock, address)
        listen(sock)
        sock.set_listen_backlog_size(value)
    finally:
        drop(sock)


def p_tcp_accept_not_listening(address: str) -> None:
    sock = tcp()
    try:
        bind(sock, address)
        sock.accept()
    finally:
        drop(sock)


def p_tcp_accept_nothing(address: str) -> None:
    sock = tcp()
    try:
        bind(sock, address)
        listen(sock)
        sock.accept()
    finally:
        drop(sock)


def p_tcp_accept(fam: str) -> None:
    """The accepted socket's peer is the client, and bytes flow both ways."""
    parts = tcp_pair(fam)
    listener, client, cin, cout, server, sin, sout = parts
    try:
        same = fmt(server.remote_address()) == fmt(client.local_address())
        write_all(cout, b"ping")
        got = read_exactly(sin, 4)
        write_all(sout, b"pong")
        back = read_exactly(cin, 4)
        raise Value(f"peer-is-client={same} {got.decode()},{back.decode()}")
    finally:
        drop(sin, sout, server, cin, cout, client, listener)


def p_tcp_accepted_peer(fam: str) -> None:
    """What the accepted socket says its peer is."""
    listener, client, cin, cout, server, sin, sout = tcp_pair(fam)
    try:
        raise Value(fmt(server.remote_address()))
    finally:
        drop(sin, sout, server, cin, cout, client, listener)


def p_tcp_accept_inherits(option: str, value: Any) -> None:
    """A property set on the listener is inherited by the accepted socket."""
    listener = tcp()
    try:
        getattr(listener, f"set_{option}")(value)
        bind(listener, "127.0.0.1:0")
        listen(listener)
        client = tcp()
        cin, cout = connect(client, fmt(listener.local_address()))
        server, sin, sout = finish(listener, listener.accept)
        try:
            raise Value(getattr(server, option)())
        finally:
            drop(sin, sout, server, cin, cout, client)
    finally:
        drop(listener)


def p_tcp_listen_denied_connect(address: str) -> None:
    """The guest listens (allowed), then connects to itself (denied?)."""
    listener = tcp()
    try:
        bind(listener, address)
        listen(listener)
        client = tcp()
        try:
            streams = connect(client, fmt(listener.local_address()))
            drop(*streams)
        finally:
            drop(client)
    finally:
        drop(listener)


# -- probes: streams and shutdown ------------------------------------------------------

def p_stream_echo(address: str, size: int) -> None:
    sock = tcp()
    try:
        cin, cout = connect(sock, address)
        try:
            payload = bytes(index % 251 for index in range(size))
            write_all(cout, payload)
            back = read_exactly(cin, size)
            raise Value(f"{len(back)} exact={back == payload}")
        finally:
            drop(cin, cout)
    finally:
        drop(sock)


def p_stream_read_nothing(address: str) -> None:
    """A read with no data waiting returns no bytes at once (not an error)."""
    sock = tcp()
    try:
        cin, cout = connect(sock, address)
        try:
            raise Value(len(cin.read(100)))
        finally:
            drop(cin, cout)
    finally:
        drop(sock)


def p_stream_readiness(address: str, send_first: bool) -> None:
    sock = tcp()
    try:
        cin, cout = connect(sock, address)
        try:
            if send_first:
                write_all(cout, b"x")
                raise Value(wait_on(cin))
            raise Value(wait_on(cin, 50_000_000))
        finally:
            drop(cin, cout)
    finally:
        drop(sock)


def p_stream_check_write(address: str) -> None:
    sock = tcp()
    try:
        cin, cout = connect(sock, address)
        try:
            wait_on(cout)
            raise Value(cout.check_write() > 0)
        finally:
            drop(cin, cout)
    finally:
        drop(sock)


def p_stream_peer_closes(address: str) -> None:
    """Half-close our side; the echo peer sends the rest and closes."""
    sock = tcp()
    try:
        cin, cout = connect(sock, address)
        try:
            write_all(cout, b"bye")
            sock.shutdown(wtcp.ShutdownType.SEND)
            data, end = read_to_end(cin)
            raise Value(f"{data.decode()},{end}")
        finally:
            drop(cin, cout)
    finally:
        drop(sock)


def p_stream_after_shutdown(address: str, how: str) -> None:
    """After shutdown(send) the output stream is closed (check-write says
    so); after shutdown(receive) a read reports the end."""
    sock = tcp()
    try:
        cin, cout = connect(sock, address)
        try:
            if how == "send":
                sock.shutdown(wtcp.ShutdownType.SEND)
                permit = cout.check_write()  # write without a permit may trap (the spec)
                if permit == 0:
                    raise Value("check-write permits 0")
                cout.write(b"late"[:permit])
                cout.blocking_flush()
                raise Value("write accepted")
            sock.shutdown(wtcp.ShutdownType.RECEIVE)
            data, end = read_to_end(cin)
            raise Value(f"{len(data)},{end}")
        finally:
            drop(cin, cout)
    finally:
        drop(sock)


def p_shutdown_unconnected(bound: str) -> None:
    sock = tcp()
    try:
        if bound:
            bind(sock, bound)
        sock.shutdown(wtcp.ShutdownType.BOTH)
    finally:
        drop(sock)


def p_shutdown_both(address: str) -> None:
    sock = tcp()
    try:
        cin, cout = connect(sock, address)
        try:
            sock.shutdown(wtcp.ShutdownType.BOTH)
        finally:
            drop(cin, cout)
    finally:
        drop(sock)


def p_stream_after_socket_drop(address: str) -> None:
    """The socket dropped before its streams: hosts may refuse (a trap) or
    keep the streams; this probe reports what the streams do then."""
    sock = tcp()
    cin, cout = connect(sock, address)
    try:
        drop(sock)
    except Exception as error:  # noqa: BLE001 - reported, not hidden
        raise Value(f"drop refused: {type(error).__name__}") from None
    try:
        write_all(cout, b"x")
        raise Value(read_exactly(cin, 1).decode())
    finally:
        drop(cin, cout)


# -- probes: options -------------------------------------------------------------------

def p_tcp_option(option: str, value: Any, connected_to: str = "") -> None:
    sock = tcp()
    streams: tuple[Any, ...] = ()
    try:
        if connected_to:
            streams = connect(sock, connected_to)
        getattr(sock, f"set_{option}")(value)
        raise Value(getattr(sock, option)())
    finally:
        drop(*streams)
        drop(sock)


def p_udp_option(option: str, value: Any) -> None:
    sock = udp()
    try:
        getattr(sock, f"set_{option}")(value)
        raise Value(getattr(sock, option)())
    finally:
        drop(sock)


# -- probes: UDP -------------------------------------------------------------------------

def p_udp_bind(address: str, fam: str = "ipv4") -> None:
    sock = udp(fam)
    try:
        bind(sock, address)
        raise Value(fmt(sock.local_address()))
    finally:
        drop(sock)


def p_udp_finish_bind_only() -> None:
    sock = udp()
    try:
        sock.finish_bind()
    finally:
        drop(sock)


def p_udp_bind_twice(address: str) -> None:
    sock = udp()
    try:
        bind(sock, address)
        sock.start_bind(net(), sa(address))
    finally:
        drop(sock)


def p_udp_local_address_unbound() -> None:
    sock = udp()
    try:
        sock.local_address()
    finally:
        drop(sock)


def p_udp_stream_unbound(remote: str) -> None:
    sock = udp()
    try:
        streams = udp_stream(sock, remote or None)
        drop(*streams)
    finally:
        drop(sock)


def p_udp_stream(local: str, remote: str, fam: str = "ipv4") -> None:
    sock = udp(fam)
    try:
        bind_local(sock, local)
        streams = udp_stream(sock, remote or None)
        drop(*streams)
    finally:
        drop(sock)


def p_udp_echo(local: str, connect_to: str, send_to: str, fam: str = "ipv4") -> None:
    """Bind, stream (connected to `connect_to`, or not), send one datagram
    (to `send_to`, or none for the connected peer) and receive the echo."""
    sock = udp(fam)
    try:
        bind_local(sock, local)
        incoming, outgoing = udp_stream(sock, connect_to or None)
        try:
            sent = send(outgoing, b"ping", send_to or None)
            got = receive_one(incoming)
            raise Value(f"sent={sent} {got.data.decode()} from={fmt(got.remote_address)}")
        finally:
            drop(incoming, outgoing)
    finally:
        drop(sock)


# The UDP probes spell out try/finally rather than share a
# contextlib.contextmanager: its __exit__ sets __traceback__ on the
# exception, and componentize-py's `Err` is a frozen dataclass, so every
# expected error would become FrozenInstanceError (tried, 6 cases crashed).


def p_udp_send(local: str, connect_to: str, send_to: str, size: int = 4) -> None:
    sock = udp()
    try:
        bind_local(sock, local)
        incoming, outgoing = udp_stream(sock, connect_to or None)
        try:
            raise Value(f"sent={send(outgoing, b'x' * size, send_to or None)}")
        finally:
            drop(incoming, outgoing)
    finally:
        drop(sock)


def p_udp_receive_nothing(local: str) -> None:
    sock = udp()
    try:
        bind_local(sock, local)
        incoming, outgoing = udp_stream(sock, None)
        try:
            raise Value(len(incoming.receive(10)))
        finally:
            drop(incoming, outgoing)
    finally:
        drop(sock)


def p_udp_receive_zero(local: str) -> None:
    sock = udp()
    try:
        bind_local(sock, local)
        incoming, outgoing = udp_stream(sock, None)
        try:
            raise Value(len(incoming.receive(0)))
        finally:
            drop(incoming, outgoing)
    finally:
        drop(sock)


def p_udp_send_nothing(local: str) -> None:
    sock = udp()
    try:
        bind_local(sock, local)
        incoming, outgoing = udp_stream(sock, None)
        try:
            wait_on(outgoing)
            outgoing.check_send()
            raise Value(outgoing.send([]))
        finally:
            drop(incoming, outgoing)
    finally:
        drop(sock)


def p_udp_disconnect(local: str, remote: str) -> None:
    """stream(remote), then stream(none): the socket is no longer connected."""
    sock = udp()
    try:
        bind_local(sock, local)
        drop(*udp_stream(sock, remote))
        first = fmt(sock.remote_address())
        drop(*udp_stream(sock, None))
        try:
            sock.remote_address()
            raise Value(f"{first},still-connected")
        except Err as error:
            raise Value(f"{first},{code(error)}") from None
    finally:
        drop(sock)


def p_udp_check_send(local: str) -> None:
    sock = udp()
    try:
        bind_local(sock, local)
        incoming, outgoing = udp_stream(sock, None)
        try:
            wait_on(outgoing)
            raise Value(outgoing.check_send() > 0)
        finally:
            drop(incoming, outgoing)
    finally:
        drop(sock)


def p_udp_remote_address(local: str, connect_to: str) -> None:
    sock = udp()
    try:
        bind_local(sock, local)
        streams = udp_stream(sock, connect_to or None)
        try:
            raise Value(fmt(sock.remote_address()))
        finally:
            drop(*streams)
    finally:
        drop(sock)


def p_udp_filter(local: str, control: str) -> None:
    """Ask the control peer to send one datagram from another port (a
    stranger) and then answer from its own: report the first datagram."""
    sock = udp()
    try:
        bind_local(sock, local)
        incoming, outgoing = udp_stream(sock, None)
        try:
            port = sock.local_address().value.port
            send(outgoing, str(port).encode(), control)
            got = receive_one(incoming)
            raise Value(f"{got.data.decode()} from-control={fmt(got.remote_address) == control}")
        finally:
            drop(incoming, outgoing)
    finally:
        drop(sock)


# -- probes: ip-name-lookup -----------------------------------------------------------------

def p_lookup(name: str) -> None:
    stream = ip_name_lookup.resolve_addresses(net(), name)
    try:
        found = []
        for _ in range(64):
            try:
                address = stream.resolve_next_address()
            except Err as error:
                if code(error) != "would-block":
                    raise
                if not wait_on(stream):
                    raise Value("timeout") from None
                continue
            if address is None:
                break
            found.append(ip_text(address))
        raise Value(",".join(sorted(set(found))))
    finally:
        drop(stream)


def p_lookup_exhausted(name: str) -> None:
    """After the last address, resolve-next-address keeps saying none."""
    stream = ip_name_lookup.resolve_addresses(net(), name)
    try:
        ends = 0
        for _ in range(64):
            try:
                address = stream.resolve_next_address()
            except Err as error:
                if code(error) != "would-block":
                    raise
                wait_on(stream)
                continue
            if address is None:
                ends += 1
                if ends == 3:
                    raise Value("none,none,none")
        raise Value(f"ends={ends}")
    finally:
        drop(stream)


def p_lookup_then_connect(name: str, port: int) -> None:
    """Resolve a name, then connect to its first address."""
    stream = ip_name_lookup.resolve_addresses(net(), name)
    try:
        address = None
        for _ in range(64):
            try:
                address = stream.resolve_next_address()
                break
            except Err as error:
                if code(error) != "would-block":
                    raise
                wait_on(stream)
    finally:
        drop(stream)
    if address is None:
        raise Value("no address")
    text = ip_text(address)
    p_tcp_connect(f"[{text}]:{port}" if ":" in text else f"{text}:{port}",
                  "ipv6" if ":" in text else "ipv4")


PROBES: dict[str, Callable[..., None]] = {
    name[2:].replace("_", "-"): function for name, function in list(globals().items())
    if name.startswith("p_") and callable(function)
}


def run_case(kind: str, args: list[Any]) -> str:
    probe = PROBES.get(kind)
    if probe is None:
        return f"unknown-kind:{kind}"
    try:
        probe(*args)
        return "ok"
    except Value as value:
        return f"value:{value.value}"
    except Err as error:
        return code(error)


class Run(exports.Run):
    def run(self) -> None:
        plan = json.loads(sys.argv[1]) if len(sys.argv) > 1 else []
        for case_id, kind, args in plan:
            got = run_case(kind, args)
            print(json.dumps({"case": case_id, "got": got}), flush=True)
