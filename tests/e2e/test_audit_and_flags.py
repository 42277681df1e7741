"""--peer-address=hidden on TCP accept, the --audit-log lines, and start-up
errors for bad values of the flags this host adds (exit 2 naming the flag)."""

from __future__ import annotations

import datetime
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..dns_server import DnsServer
from .helpers import Running, run_capsock


@pytest.fixture(scope="module")
def dns() -> Iterator[DnsServer]:
    with DnsServer({"svc.test": ["127.0.0.1"]}) as server:
        yield server


def _free_tcp_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(("host", "peer_address", "shown"), [
    ("127.0.0.1", "hidden", "192.0.0.8:0"),
    ("::1", "hidden", "[100::]:0"),
    ("127.0.0.1", "real", None),
])
def test_peer_address_on_tcp_accept(guests: dict[str, Path], host: str, peer_address: str,
                                    shown: str | None) -> None:
    port = _free_tcp_port(host)
    bracketed = f"[{host}]" if ":" in host else host
    probe = Running("run", f"--allow-inbound=tcp://{bracketed}:{port}",
                    f"--peer-address={peer_address}", str(guests["probe"]), "bind",
                    f"{bracketed}:{port}")
    try:
        probe.wait_for("bound ")
        with socket.create_connection((host, port), timeout=30) as client:
            real = client.getsockname()
            line = probe.wait_for("accepted")
        code, _, err = probe.finish()
    finally:
        probe.kill()
    assert code == 0, err
    expected = shown or (f"[{real[0]}]:{real[1]}" if ":" in host else f"{real[0]}:{real[1]}")
    assert line == f"accepted {expected} remote {expected}"


def _audit(path: Path) -> list[dict[str, Any]]:
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    for entry in entries:
        assert set(entry) == {"time", "instance", "operation", "protocol", "target",
                              "allowed", "rule"}
        assert datetime.datetime.fromisoformat(entry["time"]).tzinfo is not None
    return entries


def _pick(entry: dict[str, Any]) -> tuple[Any, ...]:
    return (entry["operation"], entry["protocol"], entry["target"], entry["allowed"],
            entry["rule"])


def test_audit_log_records_each_decision(guests: dict[str, Path], dns: DnsServer,
                                         tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        rule = f"tcp://svc.test:{port}"
        common = ["run", "--dns", dns.address, f"--allow-outbound={rule}",
                  "--allow-resolve=other.test", "--audit-log", str(audit)]
        first = run_capsock(*common, str(guests["probe"]), "resolve-connect", "svc.test",
                            f"127.0.0.1:{port}")
        second = run_capsock(*common, str(guests["resolve"]), "nope.test", "svc.test")
        third = run_capsock(*common, str(guests["client"]), f"127.0.0.2:{port}", "x")
    assert "result: ok" in first.stdout, first.stdout + first.stderr
    assert second.returncode == 1 and third.returncode != 0
    entries = _audit(audit)
    assert [_pick(e) for e in entries] == [
        ("resolve", "dns", "svc.test", True, f"allow-outbound {rule}"),
        ("connect", "tcp", f"127.0.0.1:{port}", True, f"allow-outbound {rule}"),
        ("resolve", "dns", "nope.test", False, None),
        ("resolve", "dns", "svc.test", True, f"allow-outbound {rule}"),
        ("connect", "tcp", f"127.0.0.2:{port}", False, None),
    ]
    instances = [e["instance"] for e in entries]
    assert instances[0] == instances[1] and len({instances[0], instances[2], instances[4]}) == 3


def test_audit_log_records_denied_bind(guests: dict[str, Path], tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    port = _free_tcp_port("127.0.0.1")
    done = run_capsock("run", "--allow-inbound=tcp://127.0.0.1:1-2", "--deny-inbound",
                       f"tcp://127.0.0.1:{port}", "--audit-log", str(audit),
                       str(guests["probe"]), "bind", f"127.0.0.1:{port}")
    assert "result: access-denied" in done.stdout
    assert [_pick(e) for e in _audit(audit)] == [
        ("bind", "tcp", f"127.0.0.1:{port}", False, f"deny-inbound tcp://127.0.0.1:{port}")]


@pytest.mark.parametrize(("flags", "named"), [
    (["--udpbind", "1.2.3:53"], "--udpbind"),
    (["--udpbind", "[::1:53"], "--udpbind"),
    (["--udpbind", "localhost:53"], "--udpbind"),
    (["--dns", "dns.example:53"], "--dns"),
    (["--dns", "127.0.0.1:0"], "--dns"),
    (["--dns", "127.0.0.1"], "--dns"),
    (["--peer-address=maybe"], "--peer-address"),
    (["--audit-log", "/nonexistent-dir/audit.jsonl"], "--audit-log"),
    (["--allow-outbound=udp://1.2.3:53"], "--allow-outbound"),
    (["--allow-inbound=udp://[::1:53"], "--allow-inbound"),
    (["--allow-resolve=a*.example.com"], "--allow-resolve"),
    (["--deny-resolve=a..b"], "--deny-resolve"),
    (["--addr-pool=10.0.0.1,10.0.0.0/8"], "--addr-pool"),
])
def test_bad_flag_is_a_startup_error_naming_it(guests: dict[str, Path], flags: list[str],
                                               named: str) -> None:
    done = run_capsock("run", *flags, str(guests["udpecho"]))
    assert done.returncode == 2, done.stdout + done.stderr
    assert named in done.stderr
    assert "listening" not in done.stdout


def test_udpbind_on_a_taken_port_is_a_startup_error(guests: dict[str, Path]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        done = run_capsock("run", "--udpbind", f"127.0.0.1:{port}", str(guests["udpecho"]))
    assert done.returncode == 2
    assert f"cannot bind UDP 127.0.0.1:{port}" in done.stderr
