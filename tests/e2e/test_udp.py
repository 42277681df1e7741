"""UDP end to end: pre-opens, bind/send/connect under the policy, the
receive filter, attenuation, and IPv6 on [::1]. Every denied case checks
that the target saw no datagram."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import Running, run_capsock

WAIT = 10.0


class UdpPeer:
    """A native UDP socket on loopback that records what it receives."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.host = host
        self.port: int = self.sock.getsockname()[1]

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def receive(self, timeout: float = WAIT) -> tuple[bytes, tuple[str, int]]:
        self.sock.settimeout(timeout)
        data, sender = self.sock.recvfrom(65535)
        return data, sender[:2]

    def nothing_received(self) -> bool:
        self.sock.setblocking(False)
        try:
            self.sock.recvfrom(65535)
        except BlockingIOError:
            return True
        return False

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def peer() -> Iterator[UdpPeer]:
    p = UdpPeer()
    yield p
    p.close()


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def _echo_exchange(address: str, messages: list[bytes]) -> list[bytes]:
    host, port = _split(address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as client:
        client.settimeout(WAIT)
        replies = []
        for message in messages:
            client.sendto(message, (host, port))
            data, sender = client.recvfrom(65535)
            assert sender[:2] == (host, port)
            replies.append(data)
    return replies


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]"])
def test_udpecho_on_preopened_socket_needs_no_rule(guests: dict[str, Path], host: str) -> None:
    echo = Running("run", "--udpbind", f"{host}:0", str(guests["udpecho"]),
                   "--max-datagrams", "2")
    try:
        address = echo.wait_for("listening on ").split()[-1]
        assert address.startswith(host)
        assert _echo_exchange(address, [b"one", b"two"]) == [b"one", b"two"]
        code, out, err = echo.finish()
    finally:
        echo.kill()
    assert code == 0, err
    assert "datagram 2 from" in out


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]"])
def test_udp_bind_allowed_by_inbound_rule(guests: dict[str, Path], host: str) -> None:
    echo = Running("run", f"--allow-inbound=udp://{host}:*", str(guests["udpecho"]),
                   f"{host}:0", "--max-datagrams", "1")
    try:
        address = echo.wait_for("listening on ").split()[-1]
        assert _echo_exchange(address, [b"ping"]) == [b"ping"]
        code, _, err = echo.finish()
    finally:
        echo.kill()
    assert code == 0, err


def test_udp_bind_denied_binds_nothing(guests: dict[str, Path], peer: UdpPeer) -> None:
    port = peer.port
    peer.close()  # a port known to be free: the guest must not take it
    done = run_capsock("run", "--allow-inbound=udp://127.0.0.2:*", str(guests["udpecho"]),
                       f"127.0.0.1:{port}")
    assert done.returncode != 0
    assert "error: access-denied" in done.stderr, done.stderr
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as check:
        check.bind(("127.0.0.1", port))


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_udp_send_allowed_and_reply_received(guests: dict[str, Path], host: str) -> None:
    target = UdpPeer(host)
    try:
        probe = Running("run", f"--allow-outbound=udp://{target.address}", str(guests["probe"]),
                        "udp-send", target.address, "hello", "3000")
        try:
            local = _split(probe.wait_for("local ").split()[-1])
            data, sender = target.receive()
            assert data == b"hello" and sender[1] == local[1]
            target.sock.sendto(b"reply", sender)
            line = probe.wait_for("received ")
            code, out, err = probe.finish()
        finally:
            probe.kill()
    finally:
        target.close()
    assert line == f"received {target.address}: reply"
    assert code == 0, err


@pytest.mark.parametrize("rules", [
    ["--allow-outbound=udp://127.0.0.1:{other}"],
    ["--allow-outbound=udp://127.0.0.2:{port}"],
    ["--allow-outbound=tcp://127.0.0.1:{port}"],
    ["--allow-inbound=udp://127.0.0.1:{port}"],
    ["--allow-outbound=udp://127.0.0.1:*", "--deny-outbound=udp://127.0.0.1:{port}"],
    ["--allow-outbound=udp://127.0.0.1:*", "--deny-inbound=udp://*:*"],
], ids=["other-port", "other-address", "tcp-rule", "inbound-only", "deny-wins",
        "implicit-bind-denied"])
def test_udp_send_denied_sends_nothing(guests: dict[str, Path], peer: UdpPeer,
                                       rules: list[str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as spare:
        spare.bind(("127.0.0.1", 0))
        other = spare.getsockname()[1]
    flags = [rule.format(port=peer.port, other=other) for rule in rules]
    done = run_capsock("run", *flags, str(guests["probe"]), "udp-send", peer.address, "x")
    assert "result: access-denied" in done.stdout, done.stdout + done.stderr
    assert peer.nothing_received()


def test_udp_receive_drops_senders_the_policy_does_not_allow(
        guests: dict[str, Path], peer: UdpPeer, tmp_path: Path) -> None:
    """The guest may talk to `peer` only: a datagram from another port to
    the guest's socket is dropped by the host, the peer's reply arrives."""
    audit = tmp_path / "audit.jsonl"
    probe = Running("run", f"--allow-outbound=udp://{peer.address}", "--audit-log", str(audit),
                    str(guests["probe"]), "udp-send", peer.address, "hello", "1500")
    try:
        local = _split(probe.wait_for("local ").split()[-1])
        _, sender = peer.receive()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rogue:
            rogue.bind(("127.0.0.1", 0))
            rogue.sendto(b"rogue", ("127.0.0.1", local[1]))
            rogue_address = f"127.0.0.1:{rogue.getsockname()[1]}"
            peer.sock.sendto(b"reply", sender)
            code, out, err = probe.finish()
    finally:
        probe.kill()
    assert code == 0, err
    assert f"received {peer.address}: reply" in out
    assert "rogue" not in out
    assert "result: timeout" in out
    assert f'"operation": "receive-drop", "protocol": "udp", "target": "{rogue_address}"' in (
        audit.read_text())


def test_udp_connect_and_disconnect_ipv6(guests: dict[str, Path]) -> None:
    target = UdpPeer("::1")
    try:
        probe = Running("run", f"--allow-outbound=udp://{target.address}", str(guests["probe"]),
                        "udp-connect", target.address, "hi")
        try:
            assert probe.wait_for("remote ") == f"remote {target.address}"
            data, sender = target.receive()
            target.sock.sendto(data.upper(), sender)
            code, out, err = probe.finish()
        finally:
            probe.kill()
    finally:
        target.close()
    assert code == 0, err
    lines = [line for line in probe.lines + out.splitlines()
             if line.startswith(("result", "received"))]
    assert lines == ["result: ok", "result: ok", f"received {target.address}: HI",
                     "result: ok", "result: invalid-state"]


@pytest.mark.parametrize(("rule", "expected", "arrives"), [
    ("allow-outbound=udp://127.0.0.1:{port}", ["ok", "ok"], True),
    ("allow-outbound=udp://127.0.0.1:{other}", ["ok", "access-denied"], False),
    ("allow-outbound=udp://*:*", ["ok", "ok"], True),
    ("allow-outbound=tcp://127.0.0.1:{port}", ["invalid-argument"], False),
    ("allow-resolve=example.com", ["invalid-argument"], False),
])
def test_udp_restrict(guests: dict[str, Path], peer: UdpPeer, rule: str,
                      expected: list[str], arrives: bool) -> None:
    done = run_capsock("run", "--allow-outbound=udp://127.0.0.1:*", str(guests["probe"]),
                       "restrict", "udp", rule.format(port=peer.port, other=peer.port + 1),
                       peer.address)
    results = [line.split(": ", 1)[1] for line in done.stdout.splitlines()
               if line.startswith("result: ")]
    assert results == expected, done.stdout + done.stderr
    if arrives:
        assert peer.receive()[0] == b"restricted"
    else:
        assert peer.nothing_received()


def test_restricted_network_never_widens(guests: dict[str, Path], peer: UdpPeer) -> None:
    done = run_capsock("run", f"--allow-outbound=udp://127.0.0.1:{peer.port + 1}",
                       str(guests["probe"]), "restrict", "udp", "allow-outbound=udp://*:*",
                       peer.address)
    assert "result: access-denied" in done.stdout, done.stdout + done.stderr
    assert peer.nothing_received()


def test_no_udp_rule_means_no_udp_network(guests: dict[str, Path], peer: UdpPeer) -> None:
    done = run_capsock("run", "--allow-outbound=tcp://*:*", str(guests["probe"]),
                       "udp-send", peer.address, "x")
    assert "result: access-denied" in done.stdout
    assert peer.nothing_received()


def test_tcp_preopen_is_not_a_udp_socket(guests: dict[str, Path]) -> None:
    done = run_capsock("run", "--tcplisten", "127.0.0.1:0", str(guests["probe"]), "udp-from-tcp")
    assert "result: invalid-argument" in done.stdout, done.stdout + done.stderr


def test_hidden_peer_on_udp_receive(guests: dict[str, Path]) -> None:
    echo = Running("run", "--udpbind", "127.0.0.1:0", "--peer-address=hidden",
                   str(guests["udpecho"]), "--max-datagrams", "1")
    try:
        host, port = _split(echo.wait_for("listening on ").split()[-1])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.sendto(b"who am i", (host, port))
            line = echo.wait_for("datagram 1")
            client.settimeout(10)
            # The stand-in is the reply handle: the echo reaches the sender.
            assert client.recvfrom(100) == (b"who am i", (host, port))
        code, _, err = echo.finish()
    finally:
        echo.kill()
    assert line == "datagram 1 from 192.0.0.8:0: 8 bytes"
    assert code == 0, err
