"""The existing guests, unchanged, over the in-memory backend in-process.

No OS socket is opened: peers are Python code on the same VirtualNetwork,
and the guest runs in `Host.run` (in a thread when a peer must talk to it
while it runs). Fixed ports are fine: every test has its own network.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from capsock import (
    DictResolver,
    ErrorCode,
    Host,
    MemoryBackend,
    NetError,
    Policy,
    TcpListenSpec,
    UdpBindSpec,
    VirtualConnection,
    VirtualNetwork,
)

from .helpers import run_capsock


@pytest.fixture
def net() -> VirtualNetwork:
    return VirtualNetwork(hosts=["10.0.0.9"])


class Echo:
    """An in-process service: answers each connection with its bytes upper-cased."""

    def __init__(self, net: VirtualNetwork, address: str) -> None:
        self.listener = net.listen(address)
        self.peers: list[str] = []
        self.listener.serve(self._handle)

    def _handle(self, conn: VirtualConnection) -> None:
        self.peers.append(str(conn.remote_address))
        conn.sendall(conn.recv_all().upper())

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def echo(net: VirtualNetwork) -> Iterator[Echo]:
    service = Echo(net, "10.0.0.5:7")
    yield service
    service.close()


class GuestThread:
    """`host.run` in a thread, so an in-process peer can talk to the guest."""

    def __init__(self, host: Host, component: Path, args: list[str]) -> None:
        self.code: int | None = None
        self.thread = threading.Thread(target=self._run, args=(host, component, args),
                                       daemon=True)
        self.thread.start()

    def _run(self, host: Host, component: Path, args: list[str]) -> None:
        self.code = host.run(component, args)

    def join(self, timeout: float = 60) -> int | None:
        self.thread.join(timeout)
        return self.code


def retry(action: Callable[[], VirtualConnection], timeout: float = 60) -> VirtualConnection:
    """Connect once the guest has started (its listener exists)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return action()
        except NetError as error:
            if error.code is not ErrorCode.CONNECTION_REFUSED or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_client_guest_talks_to_an_in_process_service(
        guests: dict[str, Path], net: VirtualNetwork, echo: Echo,
        capfd: pytest.CaptureFixture[str]) -> None:
    host = Host(policy=Policy.from_flags(allow_outbound=["tcp://10.0.0.5:7"]),
                backend=MemoryBackend(net))
    assert host.run(guests["client"], ["10.0.0.5:7", "hello memory"]) == 0
    assert "received: HELLO MEMORY" in capfd.readouterr().out
    # the guest's machine sends from its (only) local address, an ephemeral port
    assert echo.peers == ["127.0.0.1:49152"]


def test_client_guest_by_name_through_the_virtual_name_table(
        guests: dict[str, Path], echo: Echo, capfd: pytest.CaptureFixture[str]) -> None:
    net = echo.listener.sock.network
    net.add_name("svc.test", ["10.0.0.5"])
    host = Host(policy=Policy.from_flags(allow_outbound=["tcp://svc.test:7"]),
                backend=MemoryBackend(net))  # resolver: the network's name table
    assert host.run(guests["client"], ["svc.test:7", "by name"]) == 0
    assert "received: BY NAME" in capfd.readouterr().out


def test_denied_connect_never_reaches_the_service(
        guests: dict[str, Path], net: VirtualNetwork, echo: Echo,
        capfd: pytest.CaptureFixture[str]) -> None:
    host = Host(policy=Policy.from_flags(allow_outbound=["tcp://10.0.0.5:8"]),
                backend=MemoryBackend(net))
    assert host.run(guests["client"], ["10.0.0.5:7", "x"]) != 0
    assert "error: access-denied" in capfd.readouterr().err
    assert echo.peers == []


@pytest.mark.parametrize(("target", "code"), [("127.0.0.1:9", "connection-refused"),
                                              ("10.0.0.9:80", "connection-refused"),
                                              ("10.7.7.7:80", "remote-unreachable")])
def test_client_guest_error_codes(guests: dict[str, Path], net: VirtualNetwork, target: str,
                                  code: str, capfd: pytest.CaptureFixture[str]) -> None:
    host = Host(policy=Policy.from_flags(allow_outbound=[f"tcp://{target}"]),
                backend=MemoryBackend(net))
    assert host.run(guests["client"], [target, "x"]) != 0
    assert f"error: {code}" in capfd.readouterr().err


def test_echo_guest_on_a_virtual_preopen_serves_in_process_clients(
        guests: dict[str, Path], net: VirtualNetwork) -> None:
    host = Host(backend=MemoryBackend(net), tcp_listen=[TcpListenSpec.parse("127.0.0.1:8080")])
    guest = GuestThread(host, guests["echo"], ["--max-connections", "2"])
    big = bytes(range(256)) * 4096  # 1 MiB: more than the send buffer, both ways
    for payload in (big, b"second"):
        with retry(lambda: net.connect("127.0.0.1:8080", timeout=60)) as conn:
            sender = threading.Thread(target=lambda p=payload: (conn.sendall(p),
                                                                conn.shutdown_write()))
            sender.start()
            assert conn.recv_all() == payload
            sender.join(10)
    assert guest.join() == 0


def test_echo_guest_binds_itself_ipv6(guests: dict[str, Path], net: VirtualNetwork) -> None:
    host = Host(policy=Policy.from_flags(allow_inbound=["tcp://[::1]:*"]),
                backend=MemoryBackend(net))
    guest = GuestThread(host, guests["echo"], ["[::1]:7000", "--max-connections", "1"])
    with retry(lambda: net.connect("[::1]:7000", timeout=60)) as conn:
        conn.sendall(b"v6")
        conn.shutdown_write()
        assert conn.recv_all() == b"v6"
    assert guest.join() == 0


def test_probe_bind_sees_a_remote_peer_or_hides_it(
        guests: dict[str, Path], net: VirtualNetwork, capfd: pytest.CaptureFixture[str]) -> None:
    for hidden, shown in ((False, "198.51.100.7:40000"), (True, "192.0.0.8:0")):
        host = Host(policy=Policy.from_flags(allow_inbound=["tcp://127.0.0.1:9000"]),
                    backend=MemoryBackend(net), peer_address="hidden" if hidden else "real")
        guest = GuestThread(host, guests["probe"], ["bind", "127.0.0.1:9000"])
        # a client from a remote address and a fixed port
        client = retry(lambda: net.connect("127.0.0.1:9000", source="198.51.100.7",
                                           source_port=40000))
        assert guest.join() == 0
        client.close()
        out = capfd.readouterr().out
        assert f"accepted {shown} remote {shown}" in out, out


def test_probe_error_paths(guests: dict[str, Path], net: VirtualNetwork, echo: Echo,
                           capfd: pytest.CaptureFixture[str]) -> None:
    host = Host(policy=Policy.from_flags(allow_outbound=["tcp://10.0.0.5:7"]),
                backend=MemoryBackend(net))
    assert host.run(guests["probe"], ["accept-unbound"]) == 0
    assert host.run(guests["probe"], ["send-after-shutdown", "10.0.0.5:7"]) == 0
    assert host.run(guests["probe"], ["connect-twice", "10.0.0.5:7"]) == 0
    results = [line for line in capfd.readouterr().out.splitlines()
               if line.startswith("result:")]
    assert results == ["result: invalid-state",
                       "result: ok", "result: ok", "result: invalid-state",
                       "result: ok", "result: invalid-state"]


def test_poll_guest_wait_nonblocking_and_timeout(
        guests: dict[str, Path], net: VirtualNetwork, capfd: pytest.CaptureFixture[str]) -> None:
    silent = net.listen("127.0.0.1:9000")  # accepts (backlog) and never answers
    late = net.listen("127.0.0.1:9001", timeout=None)

    def answer_late() -> None:
        conn, _ = late.accept()
        time.sleep(0.3)
        conn.sendall(b"late data")
        time.sleep(5)

    threading.Thread(target=answer_late, daemon=True).start()
    host = Host(policy=Policy.from_flags(allow_outbound=["tcp://127.0.0.1:*"],
                                         allow_inbound=["tcp://127.0.0.1:*"]),
                backend=MemoryBackend(net))
    assert host.run(guests["poll"], ["wait", "127.0.0.1:9000", "300"]) == 0
    out = capfd.readouterr().out
    assert "ready: [] " in out
    assert host.run(guests["poll"], ["wait", "127.0.0.1:9001", "10000"]) == 0
    out = capfd.readouterr().out
    assert "ready: [0] " in out and "data: late data" in out
    assert host.run(guests["poll"], ["nonblocking", "127.0.0.1:9000"]) == 0
    assert capfd.readouterr().out.splitlines() == ["recv: would-block", "accept: would-block"]
    assert host.run(guests["poll"], ["timeout", "127.0.0.1:9000", "200"]) == 0
    assert "recv: timeout" in capfd.readouterr().out
    assert host.run(guests["poll"], ["multi", "3"]) == 0
    assert capfd.readouterr().out.splitlines() == ["ready: []", "again: []"]
    silent.close()
    late.close()


def test_udpecho_guest_on_a_virtual_udpbind(guests: dict[str, Path], net: VirtualNetwork,
                                            capfd: pytest.CaptureFixture[str]) -> None:
    host = Host(backend=MemoryBackend(net), udp_bind=[UdpBindSpec.parse("127.0.0.1:5000")])
    guest = GuestThread(host, guests["udpecho"], ["--max-datagrams", "2"])
    with net.udp_bind("10.0.0.20:4000", timeout=0.2) as peer:
        answers: list[bytes] = []
        deadline = time.monotonic() + 60
        while len(answers) < 2 and time.monotonic() < deadline:
            peer.sendto(f"ping {len(answers)}".encode(), "127.0.0.1:5000")
            try:
                data, sender = peer.recvfrom()
            except NetError:
                continue  # the guest was not up yet: the datagram was dropped
            assert str(sender) == "127.0.0.1:5000"
            answers.append(data)
    assert answers == [b"ping 0", b"ping 1"]
    assert guest.join() == 0
    assert "from 10.0.0.20:4000" in capfd.readouterr().out


def test_resolve_guest_with_a_dict_resolver(guests: dict[str, Path],
                                            capfd: pytest.CaptureFixture[str]) -> None:
    resolver = DictResolver({"svc.test": ["10.0.0.5", "fd00::5"],
                             "flaky.test": ErrorCode.TEMPORARY_RESOLVER_FAILURE})
    host = Host(policy=Policy.from_flags(allow_resolve=["*.test"]), backend=MemoryBackend(),
                resolver=resolver)
    assert host.run(guests["resolve"], ["svc.test", "flaky.test", "nope.test"]) == 1
    out = capfd.readouterr().out
    assert "svc.test 10.0.0.5 fd00::5" in out
    assert "flaky.test error: temporary-resolver-failure" in out
    assert "nope.test error: name-unresolvable" in out


def test_cli_backend_memory(guests: dict[str, Path]) -> None:
    done = run_capsock("run", "--backend", "memory", "--allow-outbound=tcp://127.0.0.1:9",
                       str(guests["client"]), "127.0.0.1:9", "x")
    assert done.returncode != 0
    assert "error: connection-refused" in done.stderr
    done = run_capsock("run", "--backend", "memory", "--tcplisten", "127.0.0.1:80",
                       str(guests["probe"]), "udp-from-tcp")
    assert "result: invalid-argument" in done.stdout, done.stderr
    done = run_capsock("run", "--backend", "memory", "--tcplisten", "10.0.0.1:80",
                       str(guests["probe"]), "udp-from-tcp")
    assert done.returncode == 2 and "cannot listen on 10.0.0.1:80" in done.stderr
    done = run_capsock("serve", "--backend", "memory", "--tcplisten", "127.0.0.1:0",
                       str(guests["echo"]))
    assert done.returncode == 2 and "--backend memory" in done.stderr
