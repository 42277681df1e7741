"""The `wasi:sockets/tcp` start/finish protocol (core/wasi_sockets.py),
function by function, over the real core and the in-memory network: each
illegal call gets the spec's error and leaves the state as it was."""

from __future__ import annotations

import pytest

from capsock import MemoryBackend, Policy, VirtualNetwork
from capsock.addresses import parse_host_port
from capsock.core.context import InstanceContext
from capsock.core.tcp import TcpState, open_tcp
from capsock.core.wasi_sockets import Pending, TcpReader, TcpWriter, WasiTcp
from capsock.errors import ErrorCode, NetError


@pytest.fixture
def net() -> VirtualNetwork:
    return VirtualNetwork()


def _context(net: VirtualNetwork, **rules: list[str]) -> InstanceContext:
    return InstanceContext(Policy.from_flags(**rules), MemoryBackend(net))


def _socket(context: InstanceContext) -> WasiTcp:
    return WasiTcp(open_tcp(context, context.checker, False))


def _fails(code: ErrorCode, call: object, *args: object) -> None:
    with pytest.raises(NetError) as caught:
        call(*args)  # type: ignore[operator]
    assert caught.value.code is code, caught.value


def _state(tcp: WasiTcp) -> tuple[TcpState, Pending | None, bool]:
    return tcp.core.state, tcp.pending, tcp.failed


def test_bind_pair(net: VirtualNetwork) -> None:
    context = _context(net, allow_inbound=["tcp://127.0.0.1:*"])
    tcp = _socket(context)
    _fails(ErrorCode.NOT_IN_PROGRESS, tcp.finish_bind)
    _fails(ErrorCode.INVALID_STATE, tcp.local_address)
    tcp.start_bind(parse_host_port("127.0.0.1:7000"))
    before = _state(tcp)
    _fails(ErrorCode.CONCURRENCY_CONFLICT, tcp.start_bind, parse_host_port("127.0.0.1:7001"))
    _fails(ErrorCode.CONCURRENCY_CONFLICT, tcp.start_listen)
    _fails(ErrorCode.INVALID_STATE, tcp.local_address)  # bind not finished
    assert _state(tcp) == before
    tcp.finish_bind()
    assert str(tcp.local_address()) == "127.0.0.1:7000"
    _fails(ErrorCode.NOT_IN_PROGRESS, tcp.finish_bind)
    _fails(ErrorCode.INVALID_STATE, tcp.start_bind, parse_host_port("127.0.0.1:7002"))


def test_denied_bind_is_access_denied_and_changes_nothing(net: VirtualNetwork) -> None:
    tcp = _socket(_context(net))
    _fails(ErrorCode.ACCESS_DENIED, tcp.start_bind, parse_host_port("127.0.0.1:7000"))
    assert _state(tcp) == (TcpState.UNBOUND, None, False)


def test_listen_pair_and_accept(net: VirtualNetwork) -> None:
    context = _context(net, allow_inbound=["tcp://127.0.0.1:7000"])
    tcp = _socket(context)
    _fails(ErrorCode.INVALID_STATE, tcp.start_listen)  # not bound
    _fails(ErrorCode.NOT_IN_PROGRESS, tcp.finish_listen)
    tcp.start_bind(parse_host_port("127.0.0.1:7000"))
    tcp.finish_bind()
    tcp.start_listen()
    assert not tcp.listening()
    _fails(ErrorCode.INVALID_STATE, tcp.accept)  # listen not finished
    tcp.finish_listen()
    assert tcp.listening()
    _fails(ErrorCode.INVALID_STATE, tcp.start_listen)
    _fails(ErrorCode.INVALID_STATE, tcp.start_connect, parse_host_port("127.0.0.1:7001"))
    _fails(ErrorCode.WOULD_BLOCK, tcp.accept)
    client = net.connect("127.0.0.1:7000", timeout=5)
    child = tcp.accept()
    assert child.connected()
    writer = TcpWriter(child, 1 << 16)
    writer.write(b"hello")
    assert client.recv(5) == b"hello"
    client.sendall(b"back")
    client.shutdown_write()
    reader = TcpReader(child)
    got = b""
    while (chunk := reader.read(100)) is not None:
        got += chunk
    assert got == b"back"


def test_connect_pair(net: VirtualNetwork) -> None:
    server = net.listen("10.0.0.5:80")
    try:
        context = _context(net, allow_outbound=["tcp://10.0.0.5:80"])
        tcp = _socket(context)
        _fails(ErrorCode.NOT_IN_PROGRESS, tcp.finish_connect)
        _fails(ErrorCode.INVALID_STATE, tcp.remote_address)
        _fails(ErrorCode.ACCESS_DENIED, tcp.start_connect, parse_host_port("10.0.0.6:80"))
        _fails(ErrorCode.INVALID_ARGUMENT, tcp.start_connect, parse_host_port("10.0.0.5:0"))
        assert _state(tcp) == (TcpState.UNBOUND, None, False)
        tcp.start_connect(parse_host_port("10.0.0.5:80"))
        _fails(ErrorCode.CONCURRENCY_CONFLICT, tcp.start_connect,
               parse_host_port("10.0.0.5:80"))
        while True:
            try:
                tcp.finish_connect()
                break
            except NetError as error:
                assert error.code is ErrorCode.WOULD_BLOCK
                readiness = tcp.readiness()
                assert readiness is not None
                context.backend.poll([readiness], 5.0)
        assert tcp.connected()
        assert str(tcp.remote_address()) == "10.0.0.5:80"
        _fails(ErrorCode.NOT_IN_PROGRESS, tcp.finish_connect)
        _fails(ErrorCode.INVALID_STATE, tcp.start_connect, parse_host_port("10.0.0.5:80"))
    finally:
        server.close()


def test_a_failed_connect_closes_the_socket(net: VirtualNetwork) -> None:
    context = _context(net, allow_outbound=["tcp://127.0.0.1:9"])
    tcp = _socket(context)
    tcp.start_connect(parse_host_port("127.0.0.1:9"))  # nothing listens there
    for _ in range(1000):  # bounded: the virtual network answers at once
        try:
            tcp.finish_connect()
        except NetError as error:
            if error.code is ErrorCode.WOULD_BLOCK:
                context.backend.poll([(tcp.core.sock, False)], 0.01)
                continue
            assert error.code is ErrorCode.CONNECTION_REFUSED
            break
    assert tcp.failed
    for call in (tcp.finish_connect, tcp.start_listen, tcp.local_address, tcp.accept):
        _fails(ErrorCode.INVALID_STATE, call)
