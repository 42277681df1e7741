"""A fuzzer over the WIT surface, through the binding layer, on both backends.

A hypothesis state machine plays a hostile guest: random sequences of
`socket`, `socket-tcp`, `socket-udp`, `fast-io` and `tls` calls with random and boundary
arguments (every integer width's edges, `2**64 - 1` lengths and durations,
pollable ids never issued, garbage rule and hex strings, every socket
option), made exactly as the trampoline would make them (the WIT-facing
interface objects with the values the codec lifts). Checked:

* every call returns or raises `NetError`: nothing reaches the registrar's
  "unexpected error" path (which would log a traceback and return
  `unknown`);
* a connect, bind or send-to is `access-denied` exactly when the
  independent policy model (`tests/unit/test_policy_properties.py`) says
  deny, and a denied one is never attempted (an invalid-argument address
  may be refused first: that is never "allowed");
* after teardown, the process has no more descriptors or threads than
  before (the OS backend), and every socket is closed.

Every socket is non-blocking and every poll has a zero timeout, so no call
waits on the network. The OS backend only ever touches loopback addresses
(the policy model still sees the full address space on the in-memory
backend). Budget: CAPSOCK_FUZZ_EXAMPLES state machines of up to 40 steps
(CI: 15 each, a few seconds); CAPSOCK_FUZZ_SECONDS runs for that long instead (hours on
request). Failing inputs are printed by hypothesis and kept in its
database (.hypothesis/); pin each one as an `@example`-style regression in
`REGRESSIONS` below.
"""

from __future__ import annotations

import ipaddress
import os
import threading
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from capsock.addresses import SocketAddress
from capsock.backends.base import Backend
from capsock.backends.memory import MemoryBackend, VirtualNetwork
from capsock.backends.os import OsBackend
from capsock.binding.interfaces import interfaces_for
from capsock.core.context import InstanceContext
from capsock.errors import NetError
from capsock.policy import Policy

from ..unit.test_policy_properties import ModelRule, model_decide, model_rules

EXAMPLES = int(os.environ.get("CAPSOCK_FUZZ_EXAMPLES", "15"))
SECONDS = float(os.environ.get("CAPSOCK_FUZZ_SECONDS", "0"))

U8 = [0, 1, 127, 128, 255]
U32 = [0, 1, 2**31 - 1, 2**31, 2**32 - 1]
U64 = [0, 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1]
ints = st.one_of(st.sampled_from(U8 + U32 + U64), st.integers(0, 2**64 - 1))
durations = st.one_of(st.none(), st.sampled_from(U64), st.integers(0, 2**64 - 1))
PORTS = st.one_of(st.sampled_from([0, 1, 80, 1023, 65535]), st.integers(0, 65535))
LOOPBACK = [ipaddress.ip_address(a) for a in ("127.0.0.1", "127.0.0.2", "::1",
                                               "::ffff:127.0.0.1", "0.0.0.0", "::")]
ANY_ADDRESS = st.one_of(
    st.sampled_from(LOOPBACK),
    st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address),
    st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address),
    st.sampled_from([ipaddress.ip_address(a) for a in (
        "255.255.255.255", "224.0.0.1", "169.254.169.254", "10.1.2.3", "ff02::1",
        "fe80::1", "::ffff:10.1.2.3", "64:ff9b::a01:203", "2002:a01:203::1")]))
TEXT = st.one_of(st.text(max_size=40), st.sampled_from(["", "zz", "0", "00ff", "é"]))
RULES = st.lists(st.one_of(st.sampled_from(["tcp://*:*", "udp://*:*", "tcp://127.0.0.1:1-2",
                                            "bogus", "", "tcp://[::1]:*"]), TEXT), max_size=3)


#: IPv6 networks whose addresses designate an IPv4 destination.
EMBEDDING_IPV4 = [ipaddress.ip_network(n) for n in (
    "::/96", "::ffff:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/32")]


class Surface(RuleBasedStateMachine):
    """One hostile instance. Subclasses pick the backend."""

    tcp = Bundle("tcp")
    udp = Bundle("udp")
    pollables = Bundle("pollables")
    loopback_only = False

    def backend(self) -> Backend:
        raise NotImplementedError

    def __init__(self) -> None:
        super().__init__()
        self.live: list[Any] = []
        self.polled: list[Any] = []

    @initialize(allows=st.lists(model_rules(), max_size=4),
                denies=st.lists(model_rules(), max_size=3))
    def start(self, allows: list[ModelRule], denies: list[ModelRule]) -> None:
        self.allows, self.denies = allows, denies
        self.policy = Policy.from_flags(
            allow_outbound=[r.text for r in allows], deny_outbound=[r.text for r in denies],
            allow_inbound=[r.text for r in allows], deny_inbound=[r.text for r in denies])
        self.context = InstanceContext(self.policy, self.backend())
        self.faces = interfaces_for(self.context)

    # -- helpers ------------------------------------------------------------------
    def call(self, action: Any) -> str:
        """Run one call as the trampoline would: ok or an error-code; any
        other exception fails the test (it would be the "unexpected" path)."""
        try:
            action()
        except NetError as error:
            return error.code.value
        return "ok"

    def address(self, data: st.DataObject) -> SocketAddress:
        pool = st.sampled_from(LOOPBACK) if self.loopback_only else ANY_ADDRESS
        ip = data.draw(pool)
        return SocketAddress(ip, data.draw(PORTS))

    def judge(self, protocol: str, address: SocketAddress, outcome: str) -> None:
        """`access-denied` iff the model denies; a denied target never runs."""
        ip = address.ip
        family = 4 if ip.version == 4 else 6
        allowed, _ = model_decide(self.denies, self.allows, protocol, family, int(ip),
                                  address.port)
        if outcome == "access-denied":
            assert not allowed or self._special(address), (protocol, address)
        elif not allowed:
            assert outcome in ("invalid-argument", "invalid-state", "not-supported",
                               "limit-reached", "datagram-too-large"), (protocol, address,
                                                                        outcome)

    @staticmethod
    def _special(address: SocketAddress) -> bool:
        """Addresses the host may deny beside the rules the model knows:
        special ranges, and IPv6 forms embedding an IPv4 address, which are
        judged by the IPv4 rules as well (issue 15, defect 1)."""
        ip = address.ip
        if address.port == 0 or ip.is_multicast or ip.is_unspecified:
            return True
        return ip.version == 6 and any(ip in net for net in EMBEDDING_IPV4)

    # -- creating ---------------------------------------------------------------
    @rule(target=tcp, ipv6=st.booleans())
    def create_tcp(self, ipv6: bool) -> Any:
        network = self.faces["socket-tcp"].network()
        if network is None:
            return None
        sock = network.create_tcp_socket("ipv6" if ipv6 else "ipv4")
        sock.set_blocking(False)
        self.live.append(sock)
        return sock

    @rule(target=udp, ipv6=st.booleans())
    def create_udp(self, ipv6: bool) -> Any:
        network = self.faces["socket-udp"].network()
        if network is None:
            return None
        sock = network.create_udp_socket("ipv6" if ipv6 else "ipv4")
        sock.set_blocking(False)
        self.live.append(sock)
        return sock

    @rule(rules=RULES, protocol=st.sampled_from(["socket-tcp", "socket-udp"]))
    def restrict(self, rules: list[str], protocol: str) -> None:
        network = self.faces[protocol].network()
        if network is not None:
            self.call(lambda: network.restrict(rules))

    # -- addresses, judged by the model -------------------------------------------
    @rule(sock=tcp, data=st.data())
    def tcp_connect(self, sock: Any, data: st.DataObject) -> None:
        if sock is not None:
            target = self.address(data)
            self.judge("tcp", target, self.call(lambda: sock.connect(target)))

    @rule(sock=st.one_of(tcp, udp), data=st.data())
    def bind(self, sock: Any, data: st.DataObject) -> None:
        if sock is not None:
            self.call(lambda: sock.bind(self.address(data)))

    @rule(sock=udp, data=st.data(), payload=st.binary(max_size=64))
    def udp_send_to(self, sock: Any, data: st.DataObject, payload: bytes) -> None:
        if sock is not None:
            target = self.address(data)
            self.judge("udp", target, self.call(lambda: sock.send(payload, target)))

    # -- everything else, with boundary arguments -------------------------------------
    @rule(sock=tcp, backlog=ints)
    def listen(self, sock: Any, backlog: int) -> None:
        if sock is not None:
            self.call(lambda: sock.listen(backlog))

    @rule(sock=tcp)
    def accept(self, sock: Any) -> None:
        if sock is not None:
            result: list[Any] = []
            if self.call(lambda: result.append(sock.accept())) == "ok":
                self.live.append(result[0][0])

    @rule(sock=tcp, length=ints, how=st.sampled_from(["receive", "peek", "tcp_receive_latin1",
                                                      "tcp_receive_hex"]))
    def tcp_receive(self, sock: Any, length: int, how: str) -> None:
        if sock is not None:
            if how.startswith("tcp_"):
                self.call(lambda: getattr(self.faces["fast-io"], how)(sock, length))
            else:
                self.call(lambda: getattr(sock, how)(length))

    @rule(sock=udp, length=ints, how=st.sampled_from(["receive", "peek", "udp_receive_latin1",
                                                      "udp_receive_hex"]))
    def udp_receive(self, sock: Any, length: int, how: str) -> None:
        if sock is not None:
            if how.startswith("udp_"):
                self.call(lambda: getattr(self.faces["fast-io"], how)(sock, length))
            else:
                self.call(lambda: getattr(sock, how)(length))

    @rule(sock=tcp, payload=st.binary(max_size=64), text=TEXT,
          how=st.sampled_from(["send", "tcp_send_latin1", "tcp_send_hex"]))
    def tcp_send(self, sock: Any, payload: bytes, text: str, how: str) -> None:
        if sock is not None:
            if how == "send":
                self.call(lambda: sock.send(payload))
            else:
                self.call(lambda: getattr(self.faces["fast-io"], how)(sock, text))

    @rule(sock=udp, text=TEXT, how=st.sampled_from(["udp_send_latin1", "udp_send_hex"]))
    def udp_send_text_connected(self, sock: Any, text: str, how: str) -> None:
        if sock is not None:
            self.call(lambda: getattr(self.faces["fast-io"], how)(sock, text, None))

    @rule(sock=st.one_of(tcp, udp), value=ints, data=st.data())
    def option(self, sock: Any, value: int, data: st.DataObject) -> None:
        if sock is not None:
            setters = sorted(n for n in dir(sock) if n.startswith("set_"))
            name = data.draw(st.sampled_from(setters))
            if name == "set_blocking":
                return  # stays non-blocking: nothing may wait on the network
            argument: Any = value
            if name == "set_timeout":
                argument = data.draw(durations)
            self.call(lambda: getattr(sock, name)(argument))
            getter = name[len("set_"):]
            if hasattr(sock, getter):
                self.call(lambda: getattr(sock, getter)())

    @rule(sock=st.one_of(tcp, udp), how=st.sampled_from(
        ["local_address", "remote_address", "address_family", "is_listening", "disconnect"]))
    def query(self, sock: Any, how: str) -> None:
        if sock is not None and hasattr(sock, how):
            self.call(lambda: getattr(sock, how)())

    @rule(sock=tcp, how=st.sampled_from(["receive", "send", "both"]))
    def shutdown(self, sock: Any, how: str) -> None:
        if sock is not None:
            self.call(lambda: sock.shutdown(how))

    @rule(sock=tcp, other=tcp, length=ints)
    def splice(self, sock: Any, other: Any, length: int) -> None:
        if sock is not None and other is not None:
            self.call(lambda: self.faces["fast-io"].splice(sock, other, length))

    @rule(sock=tcp, name=st.one_of(TEXT, st.sampled_from(["localhost", "svc.test.", "::1",
                                                          "127.0.0.1", "fe80::1%1", ""])),
          alpn=st.lists(TEXT, max_size=3),
          how=st.sampled_from(["client_handshake", "session", "close_notify",
                               "host_terminated"]))
    def tls(self, sock: Any, name: str, alpn: list[str], how: str) -> None:
        """The tls extension: a handshake writes its own `tls-error` (a
        Case, never an exception); the rest are plain error-code calls."""
        if sock is None:
            return
        face = self.faces["tls"]
        if how == "client_handshake":
            outcome = face.client_handshake(sock, name, alpn)
            assert outcome.tag in ("ok", "err"), outcome
        else:
            self.call(lambda: getattr(face, how)(sock))

    @rule(target=pollables, sock=st.one_of(tcp, udp), readable=st.booleans())
    def subscribe(self, sock: Any, readable: bool) -> Any:
        if sock is None:
            return None
        pollable = sock.subscribe("readable" if readable else "writable")
        self.polled.append(pollable)
        return pollable

    @rule(count=st.integers(0, 4))
    def poll(self, count: int) -> None:
        self.call(lambda: self.faces["socket"].poll(self.polled[-count:] if count else [], 0))

    @rule(pollable=consumes(pollables))
    def drop_pollable(self, pollable: Any) -> None:
        if pollable is not None:  # the HandleTable forgets it (pollables own nothing)
            if pollable in self.polled:
                self.polled.remove(pollable)

    @rule(sock=consumes(tcp))
    def drop_tcp(self, sock: Any) -> None:
        if sock is not None:
            sock.drop()

    @rule(sock=consumes(udp))
    def drop_udp(self, sock: Any) -> None:
        if sock is not None:
            sock.drop()

    @invariant()
    def within_quota(self) -> None:
        if hasattr(self, "context"):
            assert 0 <= self.context.open_sockets <= self.context.limits.max_sockets

    def teardown(self) -> None:
        for sock in self.live:
            sock.drop()
        if hasattr(self, "context"):
            assert self.context.open_sockets == 0


class OsSurface(Surface):
    loopback_only = True

    def backend(self) -> Backend:
        return OsBackend()


class MemorySurface(Surface):
    def backend(self) -> Backend:
        return MemoryBackend(VirtualNetwork())


def _settings() -> settings:
    budget: dict[str, Any] = {"max_examples": EXAMPLES}
    if SECONDS:
        budget = {"max_examples": 10**9}
    return settings(stateful_step_count=40, deadline=None, database=None
                    if not SECONDS else settings.default.database,
                    suppress_health_check=list(HealthCheck), **budget)


def _descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("machine", [OsSurface, MemorySurface], ids=["os", "memory"])
def test_random_calls_never_reach_the_unexpected_path(machine: type[Surface]) -> None:
    fds, threads = _descriptors(), threading.active_count()
    deadline = time.monotonic() + SECONDS
    while True:
        run_state_machine_as_test(machine, settings=_settings())
        if time.monotonic() >= deadline:
            break
    assert _descriptors() <= fds
    assert threading.active_count() <= threads
