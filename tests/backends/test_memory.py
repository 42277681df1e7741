"""The in-memory backend on its own: no guest, no OS sockets.

Each test states the OS behaviour it mirrors; the error codes go through
the same errno table as the OS backend's.
"""

from __future__ import annotations

import ipaddress
import threading
import time

import pytest

from capsock.addresses import SocketAddress, parse_host_port
from capsock.backends.memory import (
    MemoryBackend,
    MemoryDatagramSocket,
    MemoryResolver,
    MemoryStreamSocket,
    VirtualNetwork,
)
from capsock.backends.options import (
    HOP_LIMIT,
    NO_DELAY,
    SEND_BUFFER_SIZE,
    OptionKind,
    SocketOption,
)
from capsock.errors import ErrorCode, NetError


def addr(text: str) -> SocketAddress:
    return parse_host_port(text)


def code_of(action: object) -> ErrorCode | None:
    assert callable(action)
    try:
        action()
    except NetError as error:
        return error.code
    return None


@pytest.fixture
def net() -> VirtualNetwork:
    return VirtualNetwork(hosts=["10.0.0.9"])


@pytest.fixture
def backend(net: VirtualNetwork) -> MemoryBackend:
    return MemoryBackend(net)


def listener(backend: MemoryBackend, where: str = "127.0.0.1:0",
             backlog: int = 8) -> MemoryStreamSocket:
    return backend.open_listener(addr(where), backlog)


def test_connect_accept_echo(backend: MemoryBackend) -> None:
    server = listener(backend, "127.0.0.1:8080")
    client = backend.tcp_socket(False)
    client.connect(addr("127.0.0.1:8080"))
    conn, peer = server.accept()
    assert peer == client.local_address()
    assert conn.remote_address() == client.local_address()
    assert conn.local_address() == addr("127.0.0.1:8080")
    assert client.remote_address() == addr("127.0.0.1:8080")
    assert client.send(b"hello") == 5
    assert conn.receive(3, peek=True) == b"hel"
    assert conn.receive(100, peek=False) == b"hello"
    conn.send(b"back")
    assert client.receive(100, False) == b"back"


def test_ipv6_loopback_and_wildcard_listener(backend: MemoryBackend) -> None:
    server = listener(backend, "[::]:0")
    port = server.local_address().port
    client = backend.tcp_socket(True)
    client.connect(addr(f"[::1]:{port}"))
    conn, peer = server.accept()
    assert peer.ip == ipaddress.ip_address("::1")
    assert conn.local_address() == addr(f"[::1]:{port}")


def test_refused_when_nobody_listens_and_unreachable_when_no_such_host(
        backend: MemoryBackend) -> None:
    sock = backend.tcp_socket(False)
    assert code_of(lambda: sock.connect(addr("127.0.0.1:9"))) is ErrorCode.CONNECTION_REFUSED
    # the failed connect gave its ephemeral port back: the socket can retry
    assert code_of(lambda: sock.connect(addr("10.0.0.9:80"))) is ErrorCode.CONNECTION_REFUSED
    assert code_of(lambda: sock.connect(addr("10.9.9.9:80"))) is ErrorCode.REMOTE_UNREACHABLE


def test_address_in_use_and_wildcard_overlap(backend: MemoryBackend) -> None:
    listener(backend, "127.0.0.1:7000")
    again = backend.tcp_socket(False)
    assert code_of(lambda: again.bind(addr("127.0.0.1:7000"))) is ErrorCode.ADDRESS_IN_USE
    wildcard = backend.tcp_socket(False)
    assert code_of(lambda: wildcard.bind(addr("0.0.0.0:7000"))) is ErrorCode.ADDRESS_IN_USE
    other = backend.tcp_socket(False)
    other.bind(addr("127.0.0.2:7000"))  # another local address: free
    udp = backend.udp_socket(False)
    udp.bind(addr("127.0.0.1:7000"))  # another protocol: free
    v6 = backend.tcp_socket(True)
    v6.bind(addr("[::1]:7000"))  # another family (IPv6-only sockets): free


def test_port_is_free_again_after_close(backend: MemoryBackend) -> None:
    listener(backend, "127.0.0.1:7001").close()
    listener(backend, "127.0.0.1:7001")


def test_non_local_bind_is_not_bindable(backend: MemoryBackend) -> None:
    sock = backend.tcp_socket(False)
    assert code_of(lambda: sock.bind(addr("10.0.0.9:80"))) is ErrorCode.ADDRESS_NOT_BINDABLE
    udp = backend.udp_socket(True)
    assert code_of(lambda: udp.bind(addr("[2001:db8::1]:53"))) is ErrorCode.ADDRESS_NOT_BINDABLE
    assert code_of(lambda: backend.open_listener(addr("192.0.2.1:80"), 1)) \
        is ErrorCode.ADDRESS_NOT_BINDABLE


def test_extra_local_range_is_bindable() -> None:
    backend = MemoryBackend(VirtualNetwork(["127.0.0.0/8", "10.1.0.0/16"]))
    backend.tcp_socket(False).bind(addr("10.1.2.3:80"))


def test_shutdown_send_is_end_of_stream_and_other_direction_stays(
        backend: MemoryBackend) -> None:
    server = listener(backend)
    client = backend.tcp_socket(False)
    client.connect(server.local_address())
    conn, _ = server.accept()
    client.send(b"last words")
    client.shutdown(receive=False, send=True)
    assert conn.receive(100, False) == b"last words"
    assert conn.receive(100, False) == b""
    assert code_of(lambda: client.send(b"more")) is ErrorCode.CONNECTION_RESET  # EPIPE
    conn.send(b"reply")
    assert client.receive(100, False) == b"reply"
    client.shutdown(receive=True, send=False)
    assert client.receive(100, False) == b""


def test_close_is_fin_and_close_with_unread_data_is_reset(backend: MemoryBackend) -> None:
    server = listener(backend)
    first = backend.tcp_socket(False)
    first.connect(server.local_address())
    conn, _ = server.accept()
    first.send(b"bye")
    first.close()
    assert conn.receive(100, False) == b"bye"
    assert conn.receive(100, False) == b""

    second = backend.tcp_socket(False)
    second.connect(server.local_address())
    conn2, _ = server.accept()
    second.send(b"never read")
    conn2.send(b"queued")
    conn2.close()  # unread "never read": RST
    assert second.receive(100, False) == b"queued"
    assert code_of(lambda: second.receive(100, False)) is ErrorCode.CONNECTION_RESET
    assert code_of(lambda: second.send(b"x")) is ErrorCode.CONNECTION_RESET


def test_reset_on_unread_close_can_be_turned_off() -> None:
    backend = MemoryBackend(VirtualNetwork(reset_on_unread_close=False))
    server = listener(backend)
    client = backend.tcp_socket(False)
    client.connect(server.local_address())
    conn, _ = server.accept()
    client.send(b"unread")
    conn.close()
    assert client.receive(10, False) == b""


def test_closing_a_listener_resets_connections_never_accepted(backend: MemoryBackend) -> None:
    server = listener(backend)
    client = backend.tcp_socket(False)
    client.connect(server.local_address())
    server.close()
    assert code_of(lambda: client.receive(10, False)) is ErrorCode.CONNECTION_RESET


def test_non_blocking_would_block(backend: MemoryBackend) -> None:
    server = listener(backend)
    server.set_blocking(False)
    assert code_of(server.accept) is ErrorCode.WOULD_BLOCK
    client = backend.tcp_socket(False)
    client.set_blocking(False)
    # like a TCP handshake: would-block first, the outcome on the next connect
    assert code_of(lambda: client.connect(server.local_address())) is ErrorCode.WOULD_BLOCK
    assert backend.poll([(client, False)], 0) == [0]
    client.connect(server.local_address())
    conn, _ = server.accept()
    assert code_of(lambda: client.receive(10, False)) is ErrorCode.WOULD_BLOCK
    # a full send buffer: a partial send, then would-block
    size = client.get_option(SEND_BUFFER_SIZE)
    assert client.send(b"x" * (size + 10)) == size
    assert code_of(lambda: client.send(b"y")) is ErrorCode.WOULD_BLOCK
    assert len(conn.receive(size, False)) == size
    assert client.send(b"y") == 1


def test_non_blocking_connect_refused_on_second_connect(backend: MemoryBackend) -> None:
    client = backend.tcp_socket(False)
    client.set_blocking(False)
    target = addr("127.0.0.1:9")
    assert code_of(lambda: client.connect(target)) is ErrorCode.WOULD_BLOCK
    assert backend.poll([(client, False)], 0) == [0]
    assert code_of(lambda: client.connect(target)) is ErrorCode.CONNECTION_REFUSED


def test_timeouts(backend: MemoryBackend) -> None:
    server = listener(backend)
    server.set_timeout(0.1)
    started = time.monotonic()
    assert code_of(server.accept) is ErrorCode.TIMEOUT
    assert 0.09 <= time.monotonic() - started < 2
    client = backend.tcp_socket(False)
    client.connect(server.local_address())
    client.set_timeout(0.1)
    assert code_of(lambda: client.receive(10, False)) is ErrorCode.TIMEOUT
    # a blocking send into a peer that never reads
    assert code_of(lambda: client.send(b"z" * (client.get_option(SEND_BUFFER_SIZE) + 1))) \
        is ErrorCode.TIMEOUT


def test_blocking_receive_wakes_when_data_arrives(backend: MemoryBackend) -> None:
    server = listener(backend)
    client = backend.tcp_socket(False)
    client.connect(server.local_address())
    conn, _ = server.accept()
    threading.Timer(0.1, lambda: conn.send(b"late")).start()
    client.set_timeout(5)
    assert client.receive(10, False) == b"late"


def test_backlog_full_connect_waits(backend: MemoryBackend) -> None:
    server = listener(backend, backlog=1)
    first = backend.tcp_socket(False)
    first.connect(server.local_address())
    second = backend.tcp_socket(False)
    second.set_timeout(0.1)
    assert code_of(lambda: second.connect(server.local_address())) is ErrorCode.TIMEOUT
    third = backend.tcp_socket(False)
    threading.Timer(0.1, server.accept).start()
    third.set_timeout(5)
    third.connect(server.local_address())  # succeeds once the backlog has room


def test_datagrams(backend: MemoryBackend) -> None:
    receiver = backend.open_udp(addr("127.0.0.1:5353"))
    sender = backend.udp_socket(False)
    assert sender.send(b"one", addr("127.0.0.1:5353")) == 3
    sender.send(b"two", addr("127.0.0.1:5353"))
    data, source = receiver.receive(100, peek=True)
    # the implicit bind is to the wildcard (as getsockname shows on Linux);
    # the datagram comes from the routed address
    assert sender.local_address() == addr(f"0.0.0.0:{source.port}")
    assert (data, source) == (b"one", addr("127.0.0.1:49152"))
    assert receiver.receive(100, False) == (b"one", source)
    assert receiver.receive(2, False) == (b"tw", source)  # truncated, rest discarded
    receiver.set_blocking(False)
    assert code_of(lambda: receiver.receive(100, False)) is ErrorCode.WOULD_BLOCK
    receiver.send(b"reply", source)
    assert sender.receive(100, False) == (b"reply", addr("127.0.0.1:5353"))
    # to a port nobody bound: dropped silently; to no such host: unreachable
    assert sender.send(b"lost", addr("127.0.0.1:9")) == 4
    assert code_of(lambda: sender.send(b"x", addr("10.8.8.8:53"))) is ErrorCode.REMOTE_UNREACHABLE


def test_connected_udp_hears_only_its_peer_and_disconnect_releases_port(
        backend: MemoryBackend) -> None:
    a = backend.open_udp(addr("127.0.0.1:6000"))
    b = backend.open_udp(addr("127.0.0.1:6001"))
    sock = backend.udp_socket(False)
    sock.connect(addr("127.0.0.1:6000"))
    local = sock.local_address()
    assert local.ip == ipaddress.ip_address("127.0.0.1")
    b.send(b"stranger", local)
    a.send(b"peer", local)
    sock.set_timeout(1)
    assert sock.receive(100, False) == (b"peer", addr("127.0.0.1:6000"))
    sock.disconnect()
    assert sock.local_address().port == 0  # the OS-picked port is given back
    assert code_of(sock.remote_address) is ErrorCode.INVALID_STATE


def test_datagram_too_large() -> None:
    backend = MemoryBackend(VirtualNetwork(max_datagram=1000))
    sock = backend.udp_socket(False)
    assert code_of(lambda: sock.send(b"x" * 1001, addr("127.0.0.1:53"))) \
        is ErrorCode.DATAGRAM_TOO_LARGE
    default = MemoryBackend().udp_socket(False)
    assert code_of(lambda: default.send(b"x" * 65508, addr("127.0.0.1:53"))) \
        is ErrorCode.DATAGRAM_TOO_LARGE
    MemoryBackend().udp_socket(True).send(b"x" * 65527, addr("[::1]:53"))


def test_udp_receive_buffer_drops_when_full() -> None:
    backend = MemoryBackend(VirtualNetwork(receive_buffer=10))
    receiver = backend.open_udp(addr("127.0.0.1:0"))
    sender = backend.udp_socket(False)
    for _ in range(3):
        sender.send(b"12345", receiver.local_address())
    receiver.set_blocking(False)
    assert [receiver.receive(10, False)[0] for _ in range(2)] == [b"12345", b"12345"]
    assert code_of(lambda: receiver.receive(10, False)) is ErrorCode.WOULD_BLOCK


def test_poll_readiness(backend: MemoryBackend) -> None:
    server = listener(backend)
    udp = backend.open_udp(addr("127.0.0.1:0"))
    assert backend.poll([(server, True), (udp, True)], 0) == []
    started = time.monotonic()
    assert backend.poll([(server, True)], 0.1) == []
    assert time.monotonic() - started >= 0.09
    client = backend.tcp_socket(False)
    threading.Timer(0.1, lambda: client.connect(server.local_address())).start()
    assert backend.poll([(udp, True), (server, True)], 5) == [1]
    conn, _ = server.accept()
    assert backend.poll([(conn, True), (conn, False), (udp, False)], 0) == [1, 2]
    client.send(b"x")
    assert backend.poll([(conn, True)], 0) == [0]
    closed = backend.tcp_socket(False)
    closed.close()
    assert backend.poll([(closed, True)], None) == [0]  # closed: ready at once


def test_poll_rejects_foreign_sockets(backend: MemoryBackend) -> None:
    other = MemoryBackend().tcp_socket(False)
    assert code_of(lambda: backend.poll([(other, True)], 0)) is ErrorCode.INVALID_ARGUMENT


def test_ephemeral_ports_are_deterministic() -> None:
    def ports() -> list[int]:
        backend = MemoryBackend()
        server = listener(backend)
        out = [server.local_address().port]
        for _ in range(3):
            client = backend.tcp_socket(False)
            client.connect(server.local_address())
            out.append(client.local_address().port)
        udp = backend.udp_socket(False)
        udp.send(b"x", server.local_address())
        out.append(udp.local_address().port)
        return out

    assert ports() == ports() == [49152, 49153, 49154, 49155, 49152]


def test_ephemeral_ports_skip_ports_in_use() -> None:
    backend = MemoryBackend(VirtualNetwork(ephemeral_ports=(50000, 50002)))
    listener(backend, "127.0.0.1:50000")
    assert listener(backend).local_address().port == 50001
    assert listener(backend).local_address().port == 50002
    assert code_of(lambda: listener(backend)) is ErrorCode.ADDRESS_IN_USE


def test_options_are_stored_and_unknown_ones_not_supported(backend: MemoryBackend) -> None:
    sock = backend.tcp_socket(False)
    sock.set_option(NO_DELAY, 1)
    assert sock.get_option(NO_DELAY) == 1
    assert sock.get_option(HOP_LIMIT) == 64
    bogus = SocketOption("bogus", OptionKind.FLAG, frozenset({"tcp"}), (0, 0), default=None)
    assert code_of(lambda: sock.get_option(bogus)) is ErrorCode.NOT_SUPPORTED


def test_adopting_os_sockets_is_not_supported(backend: MemoryBackend) -> None:
    assert code_of(lambda: backend.adopt_tcp(object())) is ErrorCode.NOT_SUPPORTED


def test_resolver_answers_from_the_name_table() -> None:
    net = VirtualNetwork(names={"svc.test": ["10.0.0.5", "fd00::5"],
                                "flaky.test": ErrorCode.TEMPORARY_RESOLVER_FAILURE})
    resolver = MemoryBackend(net).default_resolver()
    assert isinstance(resolver, MemoryResolver)
    assert [str(ip) for ip in resolver.resolve("svc.test", None)] == ["10.0.0.5", "fd00::5"]
    assert [str(ip) for ip in resolver.resolve("svc.test", True)] == ["fd00::5"]
    net.add_name("late.test", ["10.0.0.6"])  # live: added after the resolver was made
    assert [str(ip) for ip in resolver.resolve("late.test", False)] == ["10.0.0.6"]
    assert code_of(lambda: resolver.resolve("nope.test", None)) is ErrorCode.NAME_UNRESOLVABLE
    assert code_of(lambda: resolver.resolve("flaky.test", None)) \
        is ErrorCode.TEMPORARY_RESOLVER_FAILURE


# -- the in-process peer API ------------------------------------------------------

def test_peer_api_round_trip_and_remote_peers(net: VirtualNetwork) -> None:
    backend = MemoryBackend(net)
    service = net.listen("10.0.0.5:7")  # a remote host, made to exist by listening

    def echo(conn: object) -> None:
        from capsock.backends.memory import VirtualConnection
        assert isinstance(conn, VirtualConnection)
        conn.sendall(conn.recv_all().upper())

    service.serve(echo)
    guest_side = backend.tcp_socket(False)
    guest_side.connect(addr("10.0.0.5:7"))
    assert guest_side.local_address().ip == ipaddress.ip_address("127.0.0.1")
    guest_side.send(b"hello")
    guest_side.shutdown(False, True)
    guest_side.set_timeout(5)
    assert guest_side.receive(100, False) == b"HELLO"
    service.close()

    guest_listener = listener(backend, "127.0.0.1:8080")
    with net.connect("127.0.0.1:8080", source="198.51.100.7") as client:
        conn, peer = guest_listener.accept()
        assert peer.ip == ipaddress.ip_address("198.51.100.7")
        client.sendall(b"ping")
        assert conn.receive(10, False) == b"ping"
    assert conn.receive(10, False) == b""


def test_peer_udp(net: VirtualNetwork) -> None:
    backend = MemoryBackend(net)
    with net.udp_bind("10.0.0.53:53") as dns:
        guest = backend.udp_socket(False)
        guest.send(b"query", dns.address)
        data, sender = dns.recvfrom()
        assert data == b"query"
        dns.sendto(b"answer", sender)
        assert guest.receive(100, False)[0] == b"answer"


def test_peer_timeouts(net: VirtualNetwork) -> None:
    with net.listen("127.0.0.1:9999", timeout=0.05) as service:
        assert code_of(service.accept) is ErrorCode.TIMEOUT
    assert code_of(lambda: net.connect("127.0.0.1:9999")) is ErrorCode.CONNECTION_REFUSED


def test_memory_sockets_have_no_descriptor() -> None:
    assert MemoryStreamSocket(VirtualNetwork(), False).fileno() == -1
    assert MemoryDatagramSocket(VirtualNetwork(), False).fileno() == -1
