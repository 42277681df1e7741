"""An embedder's own checker decides every socket operation (docs/embedding.md).

`Host(checker=...)` instead of a policy, and nothing else changes: real
guests (probe, udpecho) on the in-memory network do every kind of socket
operation, each typed `Use` reaches the checker with its target, and its
answer is what the guest gets: allow-all, deny-all, and a custom rule.
`restrict` over a custom checker still only narrows.
"""

from __future__ import annotations

import ipaddress
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from capsock import (
    Decision,
    Endpoint,
    ErrorCode,
    Host,
    MemoryBackend,
    NetError,
    Use,
    VirtualConnection,
    VirtualNetwork,
)
from capsock.policy import Resolved

from ..conftest import ROOT, capsock_env

Decide = Callable[[Use, Endpoint | str], Decision | bool]


class Recording:
    """A checker: `decide` answers, and every question is kept."""

    def __init__(self, decide: Decide) -> None:
        self.decide = decide
        self.asked: list[tuple[Use, str]] = []
        self.lock = threading.Lock()

    def check(self, use: Use, target: Endpoint | str, resolved: Resolved) -> Decision | bool:
        with self.lock:
            self.asked.append((use, str(target)))
        return self.decide(use, target)

    def uses(self) -> set[Use]:
        return {use for use, _ in self.asked}


def in_test_net(use: Use, target: Endpoint | str) -> Decision:
    """The custom rule: names under .test; addresses in 10/8, loopback or
    unspecified; never TCP port 9000 (a port this embedder keeps)."""
    if isinstance(target, str):
        return Decision(target.endswith(".test"), "names under .test")
    if use is Use.TCP_BIND and target.port == 9000:
        return Decision(False, "port 9000 is the embedder's")
    ip = target.ip
    ok = ip.is_loopback or ip.is_unspecified or ip in ipaddress.ip_network("10.0.0.0/8")
    return Decision(ok, "10/8 and this machine")


@pytest.fixture
def network() -> Iterator[VirtualNetwork]:
    net = VirtualNetwork(hosts=["10.0.0.6", "192.168.1.1"],
                         names={"svc.test": ["10.0.0.5"], "svc.example": ["10.0.0.5"]})
    service = net.listen("10.0.0.5:7")
    service.serve(lambda conn: conn.close())
    yield net
    service.close()


def run(host: Host, guest: Path, args: list[str], tmp_path: Path,
        peer: Callable[[threading.Event], None] | None = None) -> str:
    """Run `guest` to its end (with `peer` in a thread until then); its stdout."""
    out = tmp_path / f"out-{time.monotonic_ns()}.txt"
    done = threading.Event()
    helper = threading.Thread(target=peer, args=(done,), daemon=True) if peer else None
    if helper is not None:
        helper.start()
    try:
        host.run(guest, args, stdout=out)
    finally:
        done.set()
    if helper is not None:
        helper.join(30)
    return out.read_text()


def tcp_client(net: VirtualNetwork, address: str) -> Callable[[threading.Event], None]:
    """Connect to the guest's listener once it exists."""
    def peer(done: threading.Event) -> None:
        while not done.is_set():
            try:
                conn: VirtualConnection = net.connect(address, timeout=5)
            except NetError:
                time.sleep(0.02)
                continue
            conn.close()
            return
    return peer


def udp_echo(net: VirtualNetwork, address: str) -> Callable[[threading.Event], None]:
    """A UDP service at `address` that answers one datagram."""
    sock = net.udp_bind(address, timeout=0.2)

    def peer(done: threading.Event) -> None:
        with sock:
            while not done.is_set():
                try:
                    data, sender = sock.recvfrom()
                except NetError:
                    continue
                sock.sendto(b"echo " + data, sender)
    return peer


def udp_client(net: VirtualNetwork, address: str) -> Callable[[threading.Event], None]:
    """Send to the guest's UDP socket until it answers."""
    sock = net.udp_bind("127.0.0.1:0", timeout=0.2)

    def peer(done: threading.Event) -> None:
        with sock:
            while not done.is_set():
                sock.sendto(b"ping", address)
                try:
                    sock.recvfrom()
                    return
                except NetError as error:
                    assert error.code is ErrorCode.TIMEOUT
    return peer


def every_operation(host: Host, net: VirtualNetwork, guests: dict[str, Path],
                    tmp_path: Path) -> list[str]:
    """The guests' outputs for one operation of each kind."""
    probe, udpecho = guests["probe"], guests["udpecho"]
    return [
        # resolve, tcp-connect (and its implicit bind)
        run(host, probe, ["resolve-connect", "svc.test", "10.0.0.5:7"], tmp_path),
        # tcp-bind
        run(host, probe, ["bind", "127.0.0.1:9000"], tmp_path,
            tcp_client(net, "127.0.0.1:9000")),
        # udp-send (and its implicit bind), udp-receive (the filter)
        run(host, probe, ["udp-send", "10.0.0.6:53", "hello", "300"], tmp_path,
            udp_echo(net, "10.0.0.6:53")),
        # udp-connect
        run(host, probe, ["udp-connect", "10.0.0.6:53", "hi"], tmp_path,
            udp_echo(net, "10.0.0.6:53")),
        # udp-bind, then udp-reply to the sender
        run(host, udpecho, ["127.0.0.1:9001", "--max-datagrams", "1"], tmp_path,
            udp_client(net, "127.0.0.1:9001")),
    ]


def test_allow_all_checker_is_asked_about_every_use(
        guests: dict[str, Path], network: VirtualNetwork, tmp_path: Path) -> None:
    checker = Recording(lambda use, target: True)
    host = Host(checker=checker, backend=MemoryBackend(network))
    connect, bind, send, connected, echo = every_operation(host, network, guests, tmp_path)
    assert connect == "result: ok\nresolved 10.0.0.5\nresult: ok\n"
    assert bind.startswith("result: ok\nbound 127.0.0.1:9000\naccepted 127.0.0.1:")
    assert "received 10.0.0.6:53: echo hello" in send
    assert "received 10.0.0.6:53: echo hi" in connected
    assert "datagram 1 from 127.0.0.1:" in echo and "reply error" not in echo
    assert checker.uses() == set(Use)
    asked = set(checker.asked)
    assert {(Use.RESOLVE, "svc.test"), (Use.TCP_CONNECT, "10.0.0.5:7"),
            (Use.TCP_IMPLICIT_BIND, "0.0.0.0:0"), (Use.TCP_BIND, "127.0.0.1:9000"),
            (Use.UDP_SEND, "10.0.0.6:53"), (Use.UDP_IMPLICIT_BIND, "0.0.0.0:0"),
            (Use.UDP_RECEIVE, "10.0.0.6:53"), (Use.UDP_CONNECT, "10.0.0.6:53"),
            (Use.UDP_BIND, "127.0.0.1:9001")} <= asked
    assert any(use is Use.UDP_REPLY and target.startswith("127.0.0.1:")
               for use, target in asked)


def test_deny_all_checker_denies_every_operation(
        guests: dict[str, Path], network: VirtualNetwork, tmp_path: Path) -> None:
    checker = Recording(lambda use, target: Decision(False, "deny-all"))
    host = Host(checker=checker, backend=MemoryBackend(network))
    connect, bind, send, connected, echo = every_operation(host, network, guests, tmp_path)
    assert connect == "result: access-denied\nresult: access-denied\n"
    assert bind == "result: access-denied\n"
    assert send == "result: access-denied\n"
    assert connected == "result: access-denied\n"
    assert echo == ""  # udpecho reports "error: access-denied" on stderr and exits 1
    # each first operation was asked, and nothing after it happened
    assert [use for use, _ in checker.asked] == [
        Use.RESOLVE, Use.TCP_CONNECT, Use.TCP_BIND, Use.UDP_SEND, Use.UDP_CONNECT,
        Use.UDP_BIND]


def test_custom_rule_checker(guests: dict[str, Path], network: VirtualNetwork,
                             tmp_path: Path) -> None:
    checker = Recording(in_test_net)
    host = Host(checker=checker, backend=MemoryBackend(network))
    connect, bind, send, connected, echo = every_operation(host, network, guests, tmp_path)
    assert connect == "result: ok\nresolved 10.0.0.5\nresult: ok\n"
    assert bind == "result: access-denied\n"  # port 9000 is kept
    assert "received 10.0.0.6:53: echo hello" in send
    assert "received 10.0.0.6:53: echo hi" in connected
    assert "datagram 1 from 127.0.0.1:" in echo
    probe = guests["probe"]
    # outside the rule: a name not under .test, an address outside 10/8
    assert run(host, probe, ["resolve-connect", "svc.example", "192.168.1.1:7"],
               tmp_path) == "result: access-denied\nresult: access-denied\n"
    # restrict narrows a custom checker: the layer alone denies 10.0.0.5:7 ...
    assert run(host, probe, ["restrict", "tcp", "allow-outbound=tcp://10.0.0.5:8",
                             "10.0.0.5:7"], tmp_path) == "result: ok\nresult: access-denied\n"
    # ... and a wide layer cannot reach what the checker denies
    assert run(host, probe, ["restrict", "tcp", "allow-outbound=tcp://*:*",
                             "192.168.1.1:7"], tmp_path) == "result: ok\nresult: access-denied\n"
    assert run(host, probe, ["restrict", "tcp", "allow-outbound=tcp://*:*", "10.0.0.5:7"],
               tmp_path) == "result: ok\nresult: ok\n"


def test_a_checker_answer_that_is_not_a_decision_denies(
        guests: dict[str, Path], network: VirtualNetwork, tmp_path: Path) -> None:
    """A tuple is truthy: taking it for a yes would allow everything."""
    host = Host(checker=Recording(lambda use, target: (False, "tuple")),  # type: ignore[arg-type,return-value]
                backend=MemoryBackend(network))
    out = run(host, guests["probe"], ["connect-twice", "10.0.0.5:7"], tmp_path)
    assert out == "result: unknown\nresult: unknown\n"


def test_custom_checker_example(guests: dict[str, Path]) -> None:
    """examples/custom_checker.py runs as docs/embedding.md says."""
    build = guests["client"].parent
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "custom_checker.py"),
                           str(build)], capture_output=True, text=True, timeout=300,
                          env=capsock_env())
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "[checker] resolve svc.test: allow (registry names)" in out
    assert "[checker] tcp-connect 10.0.0.5:7: allow (registry svc.test:7)" in out
    assert "[service] 127.0.0.1:49152 sent b'hello from the guest'" in out
    assert "[checker] tcp-connect 10.0.0.5:8: deny (None)" in out
    assert "should not arrive" not in out
    assert "error: access-denied" in done.stderr
