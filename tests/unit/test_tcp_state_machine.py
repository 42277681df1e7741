"""Random call sequences through the binding layer, checked against a model.

A hypothesis state machine drives `socket-tcp` exactly as the trampoline
would (the WIT-facing `SocketTcp` interface with the values the codec
lifts: an `ip-socket-address` arrives as a `SocketAddress`) over
the in-memory backend, whose peer is an in-process echo service. Every
call's outcome (ok or error-code) is compared with a small model of the
TCP state machine, and an illegal call must leave the state unchanged.
The budget is fixed for CI; CAPSOCK_HYPOTHESIS_EXAMPLES raises it.
"""

from __future__ import annotations

import ipaddress
import os
import threading
from dataclasses import dataclass
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from capsock.addresses import SocketAddress
from capsock.backends.memory import MemoryBackend, VirtualConnection, VirtualNetwork
from capsock.binding.interfaces.socket_tcp import SocketTcp, TcpSocketResource
from capsock.core.context import InstanceContext
from capsock.errors import NetError
from capsock.policy import Policy

EXAMPLES = int(os.environ.get("CAPSOCK_HYPOTHESIS_EXAMPLES", "40"))
ECHO = SocketAddress(ipaddress.ip_address("127.0.0.1"), 7001)
LOCAL = SocketAddress(ipaddress.ip_address("127.0.0.1"), 0)


def _echo(conn: VirtualConnection) -> None:
    with conn:
        try:
            while data := conn.recv():
                conn.sendall(data)
        except NetError:
            pass


@dataclass
class Model:
    """What a conforming socket's state is after the calls so far."""

    state: str = "unbound"  # unbound | bound | listening | connected
    send_closed: bool = False
    pending: int = 0  # bytes sent to the echo peer and not received back yet


def outcome(call: Any) -> tuple[str, Any]:
    try:
        return "ok", call()
    except NetError as error:
        return error.code.value, None


class TcpStateMachine(RuleBasedStateMachine):
    sockets = Bundle("sockets")

    def __init__(self) -> None:
        super().__init__()
        self.network = VirtualNetwork()
        self.listener = self.network.listen(ECHO, timeout=None)
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()
        policy = Policy.from_flags(allow_outbound=[f"tcp://{ECHO}"],
                                   allow_inbound=["tcp://127.0.0.1:*"])
        self.context = InstanceContext(policy, MemoryBackend(self.network))
        capability = SocketTcp(self.context).network()
        assert capability is not None
        self.capability = capability
        self.models: dict[int, Model] = {}

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except NetError:
                return
            threading.Thread(target=_echo, args=(conn,), daemon=True).start()

    def teardown(self) -> None:
        self.listener.close()

    def model(self, sock: TcpSocketResource) -> Model:
        return self.models[id(sock)]

    def check(self, sock: TcpSocketResource, expected: str, got: str, before: Model) -> None:
        assert got == expected, f"expected {expected}, got {got} in state {before}"
        if got != "ok":
            assert self.model(sock) == before, "a failed call changed the model"
            self.assert_core_state(sock)

    def assert_core_state(self, sock: TcpSocketResource) -> None:
        assert sock.core.state.value == self.model(sock).state

    # -- rules ------------------------------------------------------------------------
    @rule(target=sockets)
    def create(self) -> TcpSocketResource:
        sock = self.capability.create_tcp_socket("ipv4")
        sock.set_timeout(2_000_000_000)
        self.models[id(sock)] = Model()
        return sock

    @rule(sock=sockets)
    def bind(self, sock: TcpSocketResource) -> None:
        before = Model(**vars(self.model(sock)))
        expected = "ok" if before.state == "unbound" else "invalid-state"
        got, _ = outcome(lambda: sock.bind(LOCAL))
        if got == "ok":
            self.model(sock).state = "bound"
        self.check(sock, expected, got, before)

    @rule(sock=sockets)
    def listen(self, sock: TcpSocketResource) -> None:
        before = Model(**vars(self.model(sock)))
        # from unbound the implicit bind is on 0.0.0.0, which no rule allows
        expected = {"unbound": "access-denied", "bound": "ok"}.get(before.state, "invalid-state")
        got, _ = outcome(lambda: sock.listen(16))
        if got == "ok":
            self.model(sock).state = "listening"
        self.check(sock, expected, got, before)

    @rule(sock=sockets)
    def connect(self, sock: TcpSocketResource) -> None:
        before = Model(**vars(self.model(sock)))
        expected = "ok" if before.state in ("unbound", "bound") else "invalid-state"
        got, _ = outcome(lambda: sock.connect(ECHO))
        if got == "ok":
            self.model(sock).state = "connected"
        self.check(sock, expected, got, before)

    @rule(sock=sockets)
    def accept_nonblocking(self, sock: TcpSocketResource) -> None:
        before = Model(**vars(self.model(sock)))
        expected = "would-block" if before.state == "listening" else "invalid-state"
        sock.set_blocking(False)
        got, _ = outcome(sock.accept)
        sock.set_blocking(True)
        self.check(sock, expected, got, before)

    @rule(sock=sockets, data=st.binary(min_size=1, max_size=2048))
    def send(self, sock: TcpSocketResource, data: bytes) -> None:
        before = Model(**vars(self.model(sock)))
        ok = before.state == "connected" and not before.send_closed
        got, sent = outcome(lambda: sock.send(data))
        if got == "ok":
            assert sent == len(data)
            self.model(sock).pending += len(data)
        self.check(sock, "ok" if ok else "invalid-state", got, before)

    @rule(sock=sockets)
    def receive(self, sock: TcpSocketResource) -> None:
        before = Model(**vars(self.model(sock)))
        if before.state != "connected":
            got, _ = outcome(lambda: sock.receive(4096))
            self.check(sock, "invalid-state", got, before)
            return
        if before.pending == 0 and not before.send_closed:
            sock.set_blocking(False)
            got, _ = outcome(lambda: sock.receive(4096))
            sock.set_blocking(True)
            self.check(sock, "would-block", got, before)
            return
        got, data = outcome(lambda: sock.receive(4096))
        assert got == "ok", got
        if before.pending:
            assert 0 < len(data) <= before.pending
        else:
            assert data == b"", "after shutdown(send) and every echo, end of stream"
        self.model(sock).pending -= len(data)

    @rule(sock=sockets)
    def shutdown_send(self, sock: TcpSocketResource) -> None:
        before = Model(**vars(self.model(sock)))
        expected = "ok" if before.state == "connected" else "invalid-state"
        got, _ = outcome(lambda: sock.shutdown("send"))
        if got == "ok":
            self.model(sock).send_closed = True
        self.check(sock, expected, got, before)

    @rule(sock=sockets)
    def local_address(self, sock: TcpSocketResource) -> None:
        before = Model(**vars(self.model(sock)))
        got, _ = outcome(sock.local_address)
        self.check(sock, "invalid-state" if before.state == "unbound" else "ok", got, before)

    @rule(sock=sockets)
    def remote_address(self, sock: TcpSocketResource) -> None:
        before = Model(**vars(self.model(sock)))
        got, value = outcome(sock.remote_address)
        self.check(sock, "ok" if before.state == "connected" else "invalid-state", got, before)
        if got == "ok":
            assert value == ECHO

    @rule(sock=consumes(sockets))
    def drop(self, sock: TcpSocketResource) -> None:
        sock.drop()
        del self.models[id(sock)]

    @invariant()
    def open_sockets_counted(self) -> None:
        assert self.context.open_sockets == len(self.models)


TcpStateMachine.TestCase.settings = settings(max_examples=EXAMPLES, stateful_step_count=25,
                                             deadline=None)
TestTcpStateMachine = TcpStateMachine.TestCase
