"""Virtual addresses (`->` rules, issue 19) through real guests.

Real targets are loopback addresses (127.0.0.0/8); the guest-side ones
(10.225.0.x) are never reached: the host translates them. Each test checks
what the guest printed (only guest-side addresses), what the native peer
saw, and for denials that the peer saw nothing.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from capsock import (
    ErrorCode,
    Host,
    MappingTable,
    MemoryBackend,
    NetError,
    Policy,
    VirtualConnection,
    VirtualNetwork,
)

from ..conftest import BUILD, ROOT, capsock_env
from ..dns_server import DnsServer
from .helpers import NativeServer, Running, free_port, run_capsock


@pytest.fixture(scope="module")
def vnet() -> Path:
    """The vnet guest (guest/apps/vnet), built if changed."""
    done = subprocess.run([sys.executable, str(ROOT / "guest" / "build.py"), "vnet"], cwd=ROOT,
                          capture_output=True, text=True, timeout=900, env=capsock_env())
    if done.returncode != 0:
        pytest.fail(f"guest build failed:\n{done.stdout}\n{done.stderr}")
    return BUILD / "vnet.wasm"


@pytest.fixture
def db() -> Iterator[NativeServer]:
    """A native server on 127.0.0.2 (a real target no guest-side address names)."""
    server = NativeServer(host="127.0.0.2")
    yield server
    server.close()


def lines(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


def audit_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_guest_reaches_db_internal_and_sees_only_guest_side_addresses(
        vnet: Path, db: NativeServer, tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    done = run_capsock("run", f"--audit-log={audit}",
                       f"--allow-outbound=tcp://db.internal->127.0.0.2:5432->{db.port}",
                       str(vnet), "connect", "db.internal:5432", "hello")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert lines(out, "resolved") == ["resolved 10.225.0.1"]
    assert lines(out, "remote") == ["remote 10.225.0.1:5432"]
    # Bound by the host for a connect through a mapping: no real source address.
    assert lines(out, "local")[0].startswith("local 0.0.0.0:")
    assert lines(out, "reply") == ["reply HELLO"]
    assert "127.0.0.2" not in out and str(db.port) not in out
    assert len(db.connections) == 1
    records = audit_lines(audit)
    connect = [r for r in records if r["operation"] == "connect"]
    assert connect == [{**connect[0], "target": "10.225.0.1:5432",
                        "real": f"127.0.0.2:{db.port}", "allowed": True,
                        "rule": f"allow-outbound tcp://db.internal->127.0.0.2:5432->{db.port}"}]
    resolve = [r for r in records if r["operation"] == "resolve"]
    assert resolve[0]["target"] == "db.internal"
    assert resolve[0]["real"] == f"127.0.0.2:{db.port}"


def test_a_real_name_on_the_right_is_resolved_by_the_host_at_connect_time(
        vnet: Path, db: NativeServer) -> None:
    with DnsServer({"db.real.test": ["127.0.0.2"]}) as dns:
        done = run_capsock("run", "--dns", dns.address,
                           f"--allow-outbound=tcp://db.internal->db.real.test:{db.port}",
                           str(vnet), "connect", f"db.internal:{db.port}", "by name")
        assert done.returncode == 0, done.stdout + done.stderr
        # The guest's lookup was answered by the table; the host asked DNS
        # for the real name only when the guest connected.
        assert "db.internal" not in dns.names()
        assert "db.real.test" in dns.names()
    assert lines(done.stdout, "remote") == [f"remote 10.225.0.1:{db.port}"]
    assert lines(done.stdout, "reply") == ["reply BY NAME"]
    assert len(db.connections) == 1


def test_an_alias_answers_the_given_address(vnet: Path, db: NativeServer) -> None:
    done = run_capsock("run", "--allow-resolve=db.internal->127.0.0.2",
                       f"--allow-outbound=tcp://db.internal:{db.port}",
                       str(vnet), "connect", f"db.internal:{db.port}", "alias")
    assert done.returncode == 0, done.stdout + done.stderr
    assert lines(done.stdout, "resolved") == ["resolved 127.0.0.2"]
    assert lines(done.stdout, "reply") == ["reply ALIAS"]


def test_a_range_mounted_as_a_range_keeps_offsets(vnet: Path) -> None:
    server = NativeServer(host="127.0.0.10")
    try:
        done = run_capsock("run", "--allow-outbound=tcp://10.225.0.32/29->127.0.0.8/29:*",
                           str(vnet), "connect", f"10.225.0.34:{server.port}", "range")
    finally:
        server.close()
    assert done.returncode == 0, done.stdout + done.stderr
    assert lines(done.stdout, "remote") == [f"remote 10.225.0.34:{server.port}"]
    assert lines(done.stdout, "reply") == ["reply RANGE"]
    assert len(server.connections) == 1


@pytest.mark.parametrize("flags", [
    ["--deny-outbound=tcp://127.0.0.2:*"],            # a deny rule on the real target
    ["--deny-outbound=tcp://10.225.0.0/16:*"],        # a deny rule on the guest side
])
def test_deny_wins_on_either_side(vnet: Path, db: NativeServer, tmp_path: Path,
                                  flags: list[str]) -> None:
    audit = tmp_path / "audit.jsonl"
    done = run_capsock("run", f"--audit-log={audit}", *flags,
                       f"--allow-outbound=tcp://db.internal->127.0.0.2:{db.port}",
                       str(vnet), "connect", f"db.internal:{db.port}", "x")
    assert done.returncode == 1
    assert lines(done.stdout, "result") == ["result: access-denied"]
    assert db.connections == []
    denied = [r for r in audit_lines(audit) if r["operation"] == "connect"]
    assert len(denied) == 1 and denied[0]["allowed"] is False
    assert denied[0]["target"] == f"10.225.0.1:{db.port}"
    assert denied[0]["rule"] == f"deny-outbound {flags[0].split('=', 1)[1]}"


def test_a_mapping_grants_the_guest_side_not_the_real_target(
        vnet: Path, db: NativeServer) -> None:
    done = run_capsock("run", f"--allow-outbound=tcp://db.internal->127.0.0.2:{db.port}",
                       str(vnet), "connect", f"127.0.0.2:{db.port}", "direct")
    assert done.returncode == 1
    assert lines(done.stdout, "result") == ["result: access-denied"]
    assert db.connections == []


@pytest.mark.parametrize(("rule", "bind", "shown"), [
    ("tcp://*:80->{port}", "127.0.0.1:80", "127.0.0.1:80"),
    ("tcp://10.225.1.1->127.0.0.1:80->{port}", "10.225.1.1:80", "10.225.1.1:80"),
])
def test_inbound_the_guest_binds_80_and_a_native_client_reaches_the_host_port(
        vnet: Path, rule: str, bind: str, shown: str) -> None:
    port = free_port()
    guest = Running("run", f"--allow-inbound={rule.format(port=port)}", str(vnet), "serve", bind)
    try:
        assert guest.wait_for("bound") == f"bound {shown}"
        with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
            client_port = client.getsockname()[1]
            client.sendall(b"inbound")
            client.shutdown(socket.SHUT_WR)
            answer = b""
            while chunk := client.recv(100):
                answer += chunk
        accepted = guest.wait_for("accepted")
        code, _, err = guest.finish()
    finally:
        guest.kill()
    assert code == 0, err
    assert answer == b"INBOUND"
    peer = f"127.0.0.1:{client_port}"
    assert accepted == f"accepted {peer} remote {peer} local {shown}"
    assert str(port) not in "\n".join(guest.lines)


def test_inbound_with_hidden_peers(vnet: Path) -> None:
    port = free_port()
    guest = Running("run", f"--allow-inbound=tcp://*:80->{port}", "--peer-address=hidden",
                    str(vnet), "serve", "127.0.0.1:80")
    try:
        guest.wait_for("bound")
        with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
            client.shutdown(socket.SHUT_WR)
            client.recv(10)
        accepted = guest.wait_for("accepted")
        code, _, err = guest.finish()
    finally:
        guest.kill()
    assert code == 0, err
    assert accepted == "accepted 192.0.0.8:0 remote 192.0.0.8:0 local 127.0.0.1:80"


class UdpPeer:
    """A native UDP peer on 127.0.0.2: answers the first datagram with
    "pong", then records the next one (the guest's reply)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.2", 0))
        self.sock.settimeout(30)
        self.port: int = self.sock.getsockname()[1]
        self.got: list[tuple[bytes, tuple[str, int]]] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            data, sender = self.sock.recvfrom(100)
            self.got.append((data, sender))
            self.sock.sendto(b"pong", sender)
            self.got.append(self.sock.recvfrom(100))
        except OSError:
            pass

    def close(self) -> None:
        self.thread.join(timeout=30)
        self.sock.close()


def test_udp_a_mapped_sender_is_seen_by_its_guest_side_and_replies_go_back_through_the_map(
        vnet: Path) -> None:
    peer = UdpPeer()
    try:
        done = run_capsock("run", f"--allow-outbound=udp://dns.internal->127.0.0.2:53->{peer.port}",
                           str(vnet), "udp", "dns.internal:53", "ping")
    finally:
        peer.close()
    assert done.returncode == 0, done.stdout + done.stderr
    assert lines(done.stdout, "from") == ["from 10.225.0.1:53: pong"]
    assert lines(done.stdout, "local")[0].startswith("local 0.0.0.0:")
    assert [data for data, _ in peer.got] == [b"ping", b"ack:pong"]
    assert peer.got[0][1] == peer.got[1][1]  # one socket, both ways


def test_overlapping_mappings_stop_capsock_naming_both(vnet: Path) -> None:
    first, second = "tcp://10.225.0.32/29->127.0.0.8/29:*", "tcp://10.225.0.33->127.0.0.1:80"
    done = run_capsock("run", f"--allow-outbound={first}", f"--allow-outbound={second}",
                       str(vnet), "connect", "10.225.0.33:80", "x")
    assert done.returncode == 2
    assert first in done.stderr and second in done.stderr


# -- the in-memory backend ----------------------------------------------------------


def test_memory_backend_names_ranges_and_inbound(vnet: Path,
                                                 capfd: pytest.CaptureFixture[str]) -> None:
    net = VirtualNetwork()
    peers: list[str] = []

    def upper(conn: VirtualConnection) -> None:
        peers.append(str(conn.remote_address))
        conn.sendall(conn.recv_all().upper())

    net.listen("192.168.225.9:7").serve(upper)
    net.listen("10.0.0.5:5432").serve(upper)
    net.add_name("db.real.test", ["10.0.0.5"])
    mappings = MappingTable.build(
        outbound=["tcp://10.225.0.32/29->192.168.225.8/29:*",
                  "tcp://db.internal->db.real.test:5432"],
        inbound=["tcp://*:80->8080"])
    host = Host(policy=Policy.deny_all(), backend=MemoryBackend(net), mappings=mappings)
    assert host.run(vnet, ["connect", "10.225.0.33:7", "mounted"]) == 0
    assert host.run(vnet, ["connect", "db.internal:5432", "named"]) == 0
    out = capfd.readouterr().out
    assert lines(out, "remote") == ["remote 10.225.0.33:7", "remote 10.225.0.1:5432"]
    assert lines(out, "reply") == ["reply MOUNTED", "reply NAMED"]
    assert len(peers) == 2
    # Inbound: the guest binds :80, the virtual host listens on :8080.
    result: list[int] = []
    runner = threading.Thread(target=lambda: result.append(
        host.run(vnet, ["serve", "127.0.0.1:80"])), daemon=True)
    runner.start()
    conn = None
    for _ in range(600):
        try:
            conn = net.connect("127.0.0.1:8080", timeout=30)
            break
        except NetError as error:  # refused until the guest listens
            assert error.code is ErrorCode.CONNECTION_REFUSED
            runner.join(0.1)
    assert conn is not None
    with conn:
        conn.sendall(b"in")
        conn.shutdown_write()
        assert conn.recv_all() == b"IN"
    runner.join(60)
    assert result == [0]
    out = capfd.readouterr().out
    assert lines(out, "bound") == ["bound 127.0.0.1:80"]
    assert lines(out, "accepted")[0].endswith("local 127.0.0.1:80")


def test_udp_inbound_the_guest_binds_53_and_answers_a_native_client(vnet: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    guest = Running("run", f"--allow-inbound=udp://127.0.0.1:53->{port}", str(vnet),
                    "udp-serve", "127.0.0.1:53")
    try:
        assert guest.wait_for("bound") == "bound 127.0.0.1:53"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.bind(("127.0.0.1", 0))
            client.settimeout(30)
            client.sendto(b"query", ("127.0.0.1", port))
            answer, source = client.recvfrom(100)
            client_port = client.getsockname()[1]
        shown = guest.wait_for("from")
        code, _, err = guest.finish()
    finally:
        guest.kill()
    assert code == 0, err
    assert (answer, source) == (b"QUERY", ("127.0.0.1", port))
    assert shown == f"from 127.0.0.1:{client_port}: query"


def test_memory_backend_a_resolve_mapping_grants_resolving_and_a_name_rule_the_rest(
        vnet: Path, capfd: pytest.CaptureFixture[str]) -> None:
    net = VirtualNetwork()
    peers: list[str] = []

    def upper(conn: VirtualConnection) -> None:
        peers.append(str(conn.remote_address))
        conn.sendall(conn.recv_all().upper())

    net.listen("10.0.0.7:6379").serve(upper)
    net.add_name("cache.real.test", ["10.0.0.7"])
    mappings = MappingTable.build(resolve=["cache.internal->cache.real.test"])
    alone = Host(backend=MemoryBackend(net), mappings=mappings)
    assert alone.run(vnet, ["connect", "cache.internal:6379", "x"]) == 1
    out = capfd.readouterr().out
    assert lines(out, "resolved") == ["resolved 10.225.0.1"]
    assert lines(out, "result") == ["result: access-denied"]
    assert peers == []
    # `tcp://cache.internal:6379` matches what the name resolved to: the
    # guest-side address.
    named = Host(policy=Policy.from_flags(allow_outbound=["tcp://cache.internal:6379"]),
                 backend=MemoryBackend(net), mappings=mappings)
    assert named.run(vnet, ["connect", "cache.internal:6379", "cached"]) == 0
    out = capfd.readouterr().out
    assert lines(out, "remote") == ["remote 10.225.0.1:6379"]
    assert lines(out, "reply") == ["reply CACHED"]
    assert len(peers) == 1
