"""What the core owns and the binding only delegates to: restrict,
readiness waits, pre-open adoption; and the backends' `interrupt` the kill
switch asks for (both backends)."""

from __future__ import annotations

import socket
import threading

import pytest

from capsock.addresses import parse_host_port
from capsock.backends.base import Backend
from capsock.backends.memory import MemoryBackend
from capsock.backends.memory.datagram import MemoryDatagramSocket
from capsock.backends.os import OsBackend, OsDatagramSocket
from capsock.core.context import InstanceContext, Preopen
from capsock.core.preopens import adopt_tcp, adopt_udp, poll, wait
from capsock.core.restrict import restrict
from capsock.core.tcp import TcpState
from capsock.core.udp import UdpState
from capsock.errors import ErrorCode, NetError
from capsock.policy import Policy, Use
from capsock.runtime.host import RunError, TcpListenSpec, UdpBindSpec, open_listener, open_udp

BACKENDS = [OsBackend, MemoryBackend]


def _context(backend: Backend, preopens: list[Preopen] | None = None) -> InstanceContext:
    policy = Policy.from_flags(allow_outbound=["tcp://*:*"], allow_inbound=["tcp://*:*"])
    return InstanceContext(policy, backend, preopens or [])


def test_restrict_narrows_and_refuses_foreign_rules() -> None:
    context = _context(OsBackend())
    narrower = restrict(context, context.checker, ["allow-outbound=tcp://127.0.0.1:80"], "tcp")
    assert context.check(narrower, Use.TCP_CONNECT, parse_host_port("127.0.0.1:80")).allowed
    assert not context.check(narrower, Use.TCP_CONNECT, parse_host_port("127.0.0.1:81")).allowed
    with pytest.raises(NetError) as refused:
        restrict(context, context.checker, ["allow-outbound=udp://*:*"], "tcp")
    assert refused.value.code is ErrorCode.INVALID_ARGUMENT


@pytest.mark.parametrize("make", BACKENDS)
def test_adoption_gives_a_listening_tcp_and_a_bound_udp_socket(make: type[Backend]) -> None:
    backend = make()
    listener = backend.open_listener(parse_host_port("127.0.0.1:0"), 8)
    datagram = backend.open_udp(parse_host_port("127.0.0.1:0"))
    tcp_preopen = Preopen("l", "tcp", False, listener)
    udp_preopen = Preopen("u", "udp", False, datagram)
    context = _context(backend, [tcp_preopen, udp_preopen])
    tcp, udp = adopt_tcp(context, tcp_preopen), adopt_udp(context, udp_preopen)
    assert tcp.state is TcpState.LISTENING and tcp.sock is listener
    assert udp.state is UdpState.BOUND and udp.sock is datagram
    assert not tcp.counted  # the operator's, not the guest's limit
    tcp.close()
    udp.close()


@pytest.mark.parametrize("make", BACKENDS)
def test_adopting_the_wrong_protocol_closes_the_preopen(make: type[Backend]) -> None:
    backend = make()
    datagram = backend.open_udp(parse_host_port("127.0.0.1:0"))
    preopen = Preopen("u", "udp", False, datagram)
    with pytest.raises(NetError) as refused:
        adopt_tcp(_context(backend, [preopen]), preopen)
    assert refused.value.code is ErrorCode.INVALID_ARGUMENT
    assert "not a TCP socket" in (refused.value.detail or str(refused.value))
    assert _closed(datagram)  # the guest gave it up


def _closed(sock: object) -> bool:
    if isinstance(sock, OsDatagramSocket):
        return sock.raw.fileno() == -1
    assert isinstance(sock, MemoryDatagramSocket)
    return sock.closed


@pytest.mark.parametrize("make", BACKENDS)
def test_poll_checks_the_contract_then_waits_on_the_backend(make: type[Backend]) -> None:
    backend = make()
    context = _context(backend)
    with pytest.raises(NetError) as empty:
        poll(context, [], 0.0)
    assert empty.value.code is ErrorCode.INVALID_ARGUMENT
    listener = backend.open_listener(parse_host_port("127.0.0.1:0"), 8)
    assert wait(context, [(listener, True)], 0.0) == []  # nobody connected
    too_many = [(listener, True)] * (context.limits.max_pollables + 1)
    with pytest.raises(NetError):
        poll(context, too_many, 0.0)
    listener.close()


@pytest.mark.parametrize("make", BACKENDS)
def test_interrupt_wakes_a_blocked_accept(make: type[Backend]) -> None:
    backend = make()
    listener = backend.open_listener(parse_host_port("127.0.0.1:0"), 8)
    outcome: list[object] = []

    def accept() -> None:
        try:
            outcome.append(listener.accept())
        except NetError as error:
            outcome.append(error)

    thread = threading.Thread(target=accept)
    thread.start()
    while not outcome and thread.is_alive():
        # interrupt until the accept has started and been woken: a wake
        # before the accept blocks must not be the only one
        assert backend.interrupt(listener, shared=False) is None
        thread.join(0.05)
    thread.join()
    assert len(outcome) == 1 and isinstance(outcome[0], NetError)
    listener.close()


def test_os_interrupt_of_a_shared_listener_gives_back_a_listening_socket() -> None:
    backend = OsBackend()
    listener = backend.open_listener(parse_host_port("127.0.0.1:0"), 8)
    address = listener.local_address()
    restore = backend.interrupt(listener, shared=True)
    assert restore is not None
    restore()
    client = socket.create_connection(address.to_os())  # listening again
    accepted, _ = listener.accept()
    accepted.close()
    client.close()
    listener.close()


def test_shared_preopens_use_the_hosts_backend() -> None:
    sock, name = open_listener(TcpListenSpec.parse("127.0.0.1:0"), OsBackend())
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) and name.startswith("127.")
    sock.close()
    udp, _ = open_udp(UdpBindSpec.parse("127.0.0.1:0"), OsBackend())
    udp.close()
    with pytest.raises(RunError, match="MemoryStreamSocket, use an OS backend"):
        open_listener(TcpListenSpec.parse("127.0.0.1:0"), MemoryBackend())
