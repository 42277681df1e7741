"""The server-name policy and the TLS limits of `capsock.core.tls`, on the
in-memory backend (no guest, no OS sockets): which names a handshake may
ask for on which connection, under name, address and deny rules, and the
per-instance TLS quotas.

The peer at 10.0.0.5:443 accepts and records what it receives, never
answering: an allowed handshake sends its ClientHello and says
`would-block` (the socket is non-blocking); a denied one is
`access-denied` and the peer receives nothing.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable, Iterator

import pytest

from capsock.addresses import SocketAddress
from capsock.backends.memory import MemoryBackend, VirtualNetwork
from capsock.core import tls
from capsock.core.context import InstanceContext
from capsock.core.limits import Limits
from capsock.core.tcp import TcpSocket, open_tcp
from capsock.errors import ErrorCode, NetError
from capsock.policy import Policy

PEER = SocketAddress(ipaddress.ip_address("10.0.0.5"), 443)


class Recorder:
    """A virtual server that records the bytes of each connection."""

    def __init__(self, network: VirtualNetwork) -> None:
        self.listener = network.listen(("10.0.0.5", 443), timeout=0.2)
        self.received: list[bytearray] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except NetError:
                continue
            conn.sock.set_timeout(10)  # not the accept's 0.2 s
            got = bytearray()
            self.received.append(got)
            threading.Thread(target=self._read, args=(conn, got), daemon=True).start()

    def _read(self, conn: object, got: bytearray) -> None:
        try:
            while data := conn.recv():  # type: ignore[attr-defined]
                got.extend(data)
        except NetError:
            pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.listener.close()


@pytest.fixture
def network() -> Iterator[VirtualNetwork]:
    yield VirtualNetwork()


def _instance(network: VirtualNetwork, limits: Limits | None = None,
              **rules: list[str]) -> InstanceContext:
    context = InstanceContext(Policy.from_flags(**rules), MemoryBackend(network),
                              limits=limits)
    tls.attach(context, tls.TlsSettings())
    return context


def _connected(context: InstanceContext) -> TcpSocket:
    core = open_tcp(context, context.checker, False)
    core.connect(PEER)
    core.set_blocking(False)
    return core


def _handshake(context: InstanceContext, name: str) -> str:
    """`access-denied`, `limit-reached`... or `sent` (would-block after
    the ClientHello went out)."""
    core = _connected(context)
    try:
        tls.client_handshake(core, name, [])
    except NetError as error:
        return "sent" if error.code is ErrorCode.WOULD_BLOCK else error.code.value
    return "ok"


CASES = [
    # (rules, resolved names, server name, outcome)
    ({"allow_outbound": ["tcp://api.test:443"]}, {"api.test"}, "api.test", "sent"),
    ({"allow_outbound": ["tcp://api.test:443"]}, {"api.test"}, "API.test.", "sent"),
    ({"allow_outbound": ["tcp://api.test:443"]}, {"api.test", "other.test"}, "other.test",
     "access-denied"),
    ({"allow_outbound": ["tcp://api.test:443"]}, {"api.test"}, "10.0.0.5", "access-denied"),
    ({"allow_outbound": ["tcp://10.0.0.0/8:443"]}, set(), "anything.test", "sent"),
    ({"allow_outbound": ["tcp://10.0.0.0/8:443"]}, set(), "10.0.0.5", "sent"),
    ({"allow_outbound": ["tcp://*:443"]}, set(), "not a name", "invalid-argument"),
]


@pytest.mark.parametrize(("rules", "resolved", "name", "outcome"), CASES)
def test_server_name_policy(network: VirtualNetwork, rules: dict[str, list[str]],
                            resolved: set[str], name: str, outcome: str) -> None:
    peer = Recorder(network)
    try:
        context = _instance(network, **rules)
        for resolved_name in resolved:
            context.remember_resolved(resolved_name, [PEER.ip])
        assert _handshake(context, name) == outcome
        _wait_until(lambda: len(peer.received) == 1)  # the peer accepted the connection
        if outcome == "sent":
            _wait_until(lambda: bool(peer.received[0]))
            assert peer.received[0][:1] == b"\x16"  # a TLS handshake record
        else:
            assert peer.received[0] == b""  # the connection carried nothing
    finally:
        peer.close()


def test_a_deny_rule_for_a_name_denies_it_on_a_connection_made_by_address(
        network: VirtualNetwork) -> None:
    """The guest connects to 10.0.0.5 by address (allowed: evil.test was
    not resolved yet), then resolves evil.test to that address and asks
    for it as the server name: the deny rule for the name applies."""
    peer = Recorder(network)
    try:
        context = _instance(network, allow_outbound=["tcp://*:443"],
                            deny_outbound=["tcp://evil.test:443"])
        core = _connected(context)
        context.remember_resolved("evil.test", [PEER.ip])
        with pytest.raises(NetError) as denied:
            tls.client_handshake(core, "evil.test", [])
        assert denied.value.code is ErrorCode.ACCESS_DENIED
        assert peer.received == [bytearray()] or not peer.received  # no ClientHello
    finally:
        peer.close()


def _wait_until(condition: Callable[[], bool]) -> None:
    """Wait (bounded: 5 s) for the recorder's threads to catch up."""
    event = threading.Event()
    for _ in range(100):
        if condition():
            return
        event.wait(0.05)
    raise AssertionError("the peer did not see it")


def test_handshakes_per_second(network: VirtualNetwork) -> None:
    peer = Recorder(network)
    try:
        context = _instance(network, Limits(tls_handshakes_per_second=0.001),
                            allow_outbound=["tcp://10.0.0.5:443"])
        assert _handshake(context, "a.test") == "sent"
        assert _handshake(context, "a.test") == "limit-reached"
    finally:
        peer.close()


def test_concurrent_tls_connections_are_counted_until_closed(network: VirtualNetwork) -> None:
    peer = Recorder(network)
    try:
        context = _instance(network, Limits(max_tls_connections=1),
                            allow_outbound=["tcp://10.0.0.5:443"])
        first = _connected(context)
        with pytest.raises(NetError) as blocked:
            tls.client_handshake(first, "a.test", [])
        assert blocked.value.code is ErrorCode.WOULD_BLOCK
        assert _handshake(context, "a.test") == "limit-reached"
        first.close()
        assert _handshake(context, "a.test") == "sent"
    finally:
        peer.close()


def test_no_tls_on_a_plain_socket(network: VirtualNetwork) -> None:
    peer = Recorder(network)
    try:
        context = _instance(network, allow_outbound=["tcp://10.0.0.5:443"])
        core = _connected(context)
        for call in (tls.session, tls.close_notify):
            with pytest.raises(NetError) as error:
                call(core)
            assert error.value.code is ErrorCode.INVALID_STATE
        assert tls.host_terminated(core) is False
    finally:
        peer.close()
