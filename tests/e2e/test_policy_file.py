"""`capsock run --policy FILE` end to end: a real guest (fanout), a real
DNS server and a real TCP server on loopback.

* a database allowed by name, a name whose answer is private denied by
  `deny = ["tcp://private:*"]`, and a per-rule connection quota hit, in one
  run, with the audit lines that say which rule and which limit;
* audit mode, then `capsock policy suggest`, then the suggested policy
  enforced: the same workload succeeds, and without it fails;
* a byte-rate quota that throttles a stream without breaking it.

The private address (10.0.0.5) is never reached if the policy works; the
test checks the policy denies it in-process before the guest runs, so a
broken policy fails the test instead of sending a packet off this machine.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from capsock.policy import Use
from capsock.policy.config import parse_policy_text

from ..dns_server import DnsServer
from .helpers import NativeServer, run_capsock

ZONE = {"db.test": ["127.0.0.1"], "internal.test": ["10.0.0.5"]}


@pytest.fixture(scope="module")
def dns() -> Iterator[DnsServer]:
    with DnsServer(ZONE) as server:
        yield server


@pytest.fixture
def db() -> Iterator[NativeServer]:
    peer = NativeServer()
    yield peer
    peer.close()


class _At:
    def __init__(self, ip: str, port: int) -> None:
        self.ip = ipaddress.ip_address(ip)
        self.port = port


def _audit(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_policy_file_allows_by_name_denies_private_and_enforces_a_quota(
        guests: dict[str, Path], dns: DnsServer, db: NativeServer, tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    policy = tmp_path / "service.toml"
    policy.write_text(f"""\
# The guest may reach its database by name, and nothing private.
[host]
dns = "{dns.address}"

[resolve]
allow = ["internal.test"]      # allowed to resolve, but its answer is private

[outbound]
allow = [
    {{ rule = "tcp://db.test:{db.port}", max-connections = 1 }},
    "tcp://internal.test:5432",
]
deny = ["tcp://private:*", "tcp://metadata:*"]

[audit]
log = "{audit}"
""")
    config = parse_policy_text(policy.read_text(), str(policy))
    resolved = {"internal.test": frozenset({ipaddress.ip_address("10.0.0.5")})}
    assert not config.policy().check(Use.TCP_CONNECT, _At("10.0.0.5", 5432), resolved)

    target = f"db.test:{db.port}"
    done = run_capsock("run", "--policy", str(policy), str(guests["fanout"]),
                       target, target, "internal.test:5432")
    lines = done.stdout.splitlines()
    assert f"{target} received 6 bytes: PING 0" in lines, done.stdout + done.stderr
    assert f"{target} error: limit-reached" in lines, done.stdout + done.stderr
    assert "internal.test:5432 error: access-denied" in lines, done.stdout + done.stderr
    assert done.returncode == 1
    assert len(db.connections) == 1  # the second connect made no syscall

    records = _audit(audit)
    denied = [r for r in records if r["operation"] == "connect" and not r["allowed"]]
    assert [(r["target"], r["rule"]) for r in denied] == [
        ("10.0.0.5:5432", "deny-outbound tcp://private:*")]
    limits = [r for r in records if r["operation"] == "limit"]
    assert len(limits) == 1
    assert limits[0]["rule"] == f"limit max-connections of allow-outbound {'tcp://db.test'}" \
                                f":{db.port}=1"
    allowed = [r for r in records if r["operation"] == "connect" and r["allowed"]]
    assert [r["rule"] for r in allowed][:1] == [f"allow-outbound tcp://db.test:{db.port}"]


def test_flags_add_rules_to_the_file(guests: dict[str, Path], db: NativeServer,
                                     tmp_path: Path) -> None:
    policy = tmp_path / "base.toml"
    policy.write_text('[outbound]\ndeny = ["tcp://private:*"]\n')
    target = f"127.0.0.1:{db.port}"
    denied = run_capsock("run", "--policy", str(policy), str(guests["fanout"]), target)
    assert f"{target} error: access-denied" in denied.stdout, denied.stdout + denied.stderr
    allowed = run_capsock("run", "--policy", str(policy),
                          f"--allow-outbound=tcp://loopback:{db.port}",
                          str(guests["fanout"]), target)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert f"{target} received 6 bytes: PING 0" in allowed.stdout


def test_a_bad_policy_file_names_file_line_and_rule(guests: dict[str, Path],
                                                    tmp_path: Path) -> None:
    policy = tmp_path / "bad.toml"
    policy.write_text('[outbound]\nallow = [\n    "tcp://db.test:5432",\n'
                      '    "tcp://10.0.0.0/33:*",\n]\n')
    for command in (["run", "--policy", str(policy), str(guests["fanout"]), "x:1"],
                    ["serve", "--policy", str(policy), "--tcplisten", "127.0.0.1:0",
                     str(guests["echo"])],
                    ["policy", "check", str(policy)]):
        done = run_capsock(*command)
        assert done.returncode in (1, 2), done.stderr
        assert f"{policy}:4 [outbound] allow: invalid rule 'tcp://10.0.0.0/33:*'" \
            in done.stderr, done.stderr


def test_audit_mode_then_suggest_then_enforce(guests: dict[str, Path], dns: DnsServer,
                                              db: NativeServer, tmp_path: Path) -> None:
    """Write a policy from a running workload: everything is allowed and
    logged in audit mode; `policy suggest` turns the log into a file that
    lets the same workload run enforced, and nothing else is needed."""
    audit = tmp_path / "audit.jsonl"
    target = f"db.test:{db.port}"
    watched = run_capsock("run", "--policy-mode=audit", "--audit-log", str(audit),
                          "--dns", dns.address, str(guests["fanout"]), target)
    assert watched.returncode == 0, watched.stdout + watched.stderr
    assert f"{target} received 6 bytes: PING 0" in watched.stdout
    would = [r for r in _audit(audit) if r.get("would-deny")]
    assert {(r["operation"], r["target"]) for r in would} >= {
        ("resolve", "db.test"), ("connect", f"127.0.0.1:{db.port}")}
    assert all(r["allowed"] is True for r in would)

    suggested = tmp_path / "suggested.toml"
    shown = run_capsock("policy", "suggest", str(audit), "-o", str(suggested))
    assert shown.returncode == 0, shown.stderr
    assert f"--allow-outbound=tcp://127.0.0.1:{db.port}" in shown.stdout
    assert "--allow-resolve=db.test" in shown.stdout
    assert suggested.read_text() in shown.stdout

    enforced = run_capsock("run", "--policy", str(suggested), "--dns", dns.address,
                           str(guests["fanout"]), target)
    assert enforced.returncode == 0, enforced.stdout + enforced.stderr
    assert f"{target} received 6 bytes: PING 0" in enforced.stdout
    without = run_capsock("run", "--dns", dns.address, str(guests["fanout"]), target)
    assert without.returncode == 1
    assert f"{target} error: access-denied" in without.stdout, without.stdout
    assert len(db.connections) == 2  # the audit run's and the enforced run's


def test_byte_rate_quota_throttles_without_breaking_the_stream(
        guests: dict[str, Path], db: NativeServer, tmp_path: Path) -> None:
    policy = tmp_path / "rate.toml"
    policy.write_text(f"""\
[outbound]
allow = ["tcp://127.0.0.1:{db.port}"]

[limits]
max-bytes-per-second-per-destination = 20000
max-bytes-per-second = 50000
""")
    target = f"127.0.0.1:{db.port}"
    done = run_capsock("run", "--policy", str(policy), str(guests["fanout"]), "--bytes", "30000",
                       target)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{target} received 30000 bytes: {'X' * 40}" in done.stdout


def test_serve_reads_the_same_file(guests: dict[str, Path], tmp_path: Path) -> None:
    """`capsock serve --policy`: the file's pre-opened listener and limits
    reach every instance (the http app answers on it)."""
    import re
    import signal
    import socket
    import subprocess

    from ..conftest import capsock_command, capsock_env

    policy = tmp_path / "serve.toml"
    policy.write_text('[preopens]\ntcplisten = ["127.0.0.1:0"]\n\n[limits]\nmax-sockets = 32\n')
    proc = subprocess.Popen(capsock_command("serve", "--policy", str(policy), "--instances", "1",
                                            "--mode", "thread", str(guests["http"])),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=capsock_env())
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        match = re.search(r"127\.0\.0\.1:(\d+)", line)
        assert match, line
        port = int(match.group(1))
        # The listener is open before that line: the kernel queues the
        # connection until the instance accepts it.
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
            conn.sendall(b"GET /api/instance HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            reply = b"".join(iter(lambda: conn.recv(65536), b""))
        assert reply.startswith(b"HTTP/1.1 200"), reply
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 0
