"""The conformance guest: runs contract probes against any capsock:net host.

    conformance '[["case-id", "kind", [args...]], ...]'

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
from wit_world.imports import ip_resolve_address as wresolve
from wit_world.imports import socket as wsocket
from wit_world.imports import socket_tcp as wtcp
from wit_world.imports import socket_udp as wudp

import capsock_guest as cg

V4 = wsocket.IpAddressFamily.IPV4
V6 = wsocket.IpAddressFamily.IPV6
READABLE_TCP = wtcp.Readiness.READABLE
WRITABLE_TCP = wtcp.Readiness.WRITABLE


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
        if sock.protocol().name.lower() == protocol:
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


# -- socket ------------------------------------------------------------------

def k_preopen_protocol(protocol: str) -> None:
    raise Value(preopen(protocol)[0].protocol().name.lower())


def k_preopen_family(protocol: str) -> None:
    raise Value(preopen(protocol)[0].address_family().name.lower())


def k_preopen_name(protocol: str) -> None:
    raise Value(preopen(protocol)[1])


def k_preopen_taken_once() -> None:
    raise Value(len(wsocket.preopened_sockets()))


def k_poll_empty() -> None:
    wsocket.poll([], 0)


def k_poll_unknown_id() -> None:
    wsocket.poll([0xFFFF_FFF0], 0)


def k_poll_dropped_id(target: str) -> None:
    sock = connected(target)
    pollable = sock.subscribe(READABLE_TCP)
    ident = pollable.id()
    pollable.__exit__(None, None, None)
    wsocket.poll([ident], 0)


def k_poll_timeout(target: str, millis: int) -> None:
    sock = connected(target)
    pollable = sock.subscribe(READABLE_TCP)
    began = time.monotonic()
    ready = wsocket.poll([pollable.id()], millis * 1_000_000)
    waited = (time.monotonic() - began) * 1000
    raise Value(f"{ready} waited>={millis}ms:{waited >= millis * 0.9}")


def k_poll_readable_after_data(target: str) -> None:
    sock = connected(target)
    sock.send(b"ping")
    pollable = sock.subscribe(READABLE_TCP)
    raise Value(wsocket.poll([pollable.id()], 5_000_000_000))


def k_poll_writable(target: str) -> None:
    sock = connected(target)
    pollable = sock.subscribe(WRITABLE_TCP)
    raise Value(wsocket.poll([pollable.id()], 5_000_000_000))


def k_poll_several(target: str) -> None:
    sock = connected(target)
    quiet = sock.subscribe(READABLE_TCP)
    writable = sock.subscribe(WRITABLE_TCP)
    raise Value(wsocket.poll([quiet.id(), writable.id()], 5_000_000_000))


def k_pollable_ready(target: str) -> None:
    sock = connected(target)
    raise Value(sock.subscribe(READABLE_TCP).ready())


def k_pollable_after_socket_drop(target: str) -> None:
    sock = connected(target)
    pollable = sock.subscribe(READABLE_TCP)
    sock.__exit__(None, None, None)
    raise Value(pollable.ready())


def k_pollable_ids_distinct(target: str) -> None:
    sock = connected(target)
    first, second = sock.subscribe(READABLE_TCP), sock.subscribe(READABLE_TCP)
    raise Value(first.id() != second.id())


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
        wsocket.poll([pollable.id()], 5_000_000_000)
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
    wsocket.poll([pollable.id()], 5_000_000_000)
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


def k_tcp_is_listening_fresh() -> None:
    raise Value(tcp().is_listening())


def k_tcp_set_timeout_zero() -> None:
    tcp().set_timeout(0)


def k_tcp_option(name: str, value: Any) -> None:
    sock = tcp()
    getattr(sock, f"set_{name}")(value)
    got = getattr(sock, name)()
    raise Value(got if not isinstance(got, int) or isinstance(got, bool) else got > 0)


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
    sock = udp()
    getattr(sock, f"set_{name}")(value)
    got = getattr(sock, name)()
    raise Value(got if not isinstance(got, int) or isinstance(got, bool) else got > 0)


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
