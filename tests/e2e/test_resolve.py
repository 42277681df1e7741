"""Name resolution end to end against a real DNS server on loopback (--dns),
and the name-bound rule (`tcp://svc.test:PORT`). Every denied lookup is
checked against the server's query log: no query was sent."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..dns_server import DnsServer
from .helpers import NativeServer, run_capsock

ZONE = {
    "svc.test": ["127.0.0.1"],
    "a.svc.test": ["127.0.0.1"],
    "deep.a.svc.test": ["127.0.0.1"],
    "v6.test": ["::1"],
    "multi.test": ["127.0.0.1", "::1"],
    "other.test": ["127.0.0.2"],
}


@pytest.fixture(scope="module")
def dns() -> Iterator[DnsServer]:
    with DnsServer(ZONE) as server:
        yield server


@pytest.fixture
def server() -> Iterator[NativeServer]:
    peer = NativeServer()
    yield peer
    peer.close()


def resolve(guests: dict[str, Path], dns: DnsServer, *args: str) -> tuple[list[str], list[str]]:
    """Run the resolve guest; its output lines and the names DNS was asked."""
    before = len(dns.queries)
    flags = [a for a in args if a.startswith("--") and "=" in a]
    names = [a for a in args if a not in flags]
    done = run_capsock("run", "--dns", dns.address, *flags, str(guests["resolve"]), *names)
    assert done.returncode in (0, 1), done.stderr
    return done.stdout.splitlines(), [name for name, _ in dns.queries[before:]]


@pytest.mark.parametrize(("args", "output", "queried"), [
    (["--allow-resolve=svc.test", "svc.test"], ["svc.test 127.0.0.1"], ["svc.test"]),
    (["--allow-resolve=*", "multi.test"], ["multi.test 127.0.0.1 ::1"], ["multi.test"]),
    (["--allow-resolve=*", "--ipv6", "multi.test"], ["multi.test ::1"], ["multi.test"]),
    (["--allow-resolve=*.svc.test", "deep.a.svc.test"], ["deep.a.svc.test 127.0.0.1"],
     ["deep.a.svc.test"]),
    (["--allow-resolve=SVC.TEST.", "Svc.Test."], ["Svc.Test. 127.0.0.1"], ["svc.test"]),
    (["--allow-resolve=*", "nope.test"], ["nope.test error: name-unresolvable"], ["nope.test"]),
], ids=["exact", "both-families", "ipv6-only", "wildcard-any-depth", "case-and-dot",
        "nxdomain"])
def test_resolve_allowed(guests: dict[str, Path], dns: DnsServer, args: list[str],
                         output: list[str], queried: list[str]) -> None:
    lines, names = resolve(guests, dns, *args)
    assert lines == output
    assert set(names) == set(queried)


@pytest.mark.parametrize(("args", "output"), [
    (["svc.test"], ["svc.test error: access-denied"]),
    (["--allow-resolve=other.test", "svc.test"], ["svc.test error: access-denied"]),
    (["--allow-resolve=*.svc.test", "svc.test"], ["svc.test error: access-denied"]),
    (["--allow-resolve=*", "--deny-resolve=*.svc.test", "a.svc.test"],
     ["a.svc.test error: access-denied"]),
    (["--allow-resolve=*", "--deny-resolve=*", "svc.test"], ["svc.test error: access-denied"]),
    (["--allow-resolve=*", "127.0.0.1", "::1"],
     ["127.0.0.1 error: invalid-argument", "::1 error: invalid-argument"]),
    (["--allow-resolve=*", "--restrict", "allow-resolve=v6.test", "svc.test"],
     ["svc.test error: access-denied"]),
], ids=["no-rule", "other-name", "wildcard-not-bare", "deny-wins", "deny-all",
        "ip-literal", "restricted"])
def test_resolve_denied_sends_no_query(guests: dict[str, Path], dns: DnsServer,
                                       args: list[str], output: list[str]) -> None:
    lines, names = resolve(guests, dns, *args)
    assert lines == output
    assert names == []


def test_restricted_resolver_allows_its_names(guests: dict[str, Path], dns: DnsServer) -> None:
    lines, names = resolve(guests, dns, "--allow-resolve=*.test", "--restrict",
                           "allow-resolve=v6.test", "v6.test")
    assert lines == ["v6.test ::1"]
    assert set(names) == {"v6.test"}


def test_system_resolver_by_default(guests: dict[str, Path]) -> None:
    done = run_capsock("run", "--allow-resolve=localhost", str(guests["resolve"]), "--ipv4",
                       "localhost")
    assert done.stdout.split()[:2] == ["localhost", "127.0.0.1"], done.stdout + done.stderr


def _no_connection(server: NativeServer) -> bool:
    server.sock.setblocking(False)
    try:
        conn, _ = server.sock.accept()
    except (BlockingIOError, OSError):
        return not server.connections
    conn.close()
    return False


def test_name_rule_allows_resolved_address(guests: dict[str, Path], dns: DnsServer,
                                           server: NativeServer) -> None:
    """`tcp://svc.test:P` implies resolving svc.test and allows its address."""
    done = run_capsock("run", "--dns", dns.address, f"--allow-outbound=tcp://svc.test:{server.port}",
                       str(guests["client"]), f"svc.test:{server.port}", "hello")
    assert done.returncode == 0, done.stderr
    assert "received: HELLO" in done.stdout
    assert len(server.connections) == 1


@pytest.mark.parametrize(("name", "target", "expected"), [
    ("svc.test", "127.0.0.1", ["ok", "ok"]),
    ("-", "127.0.0.1", ["access-denied"]),
    ("other.test", "127.0.0.1", ["access-denied", "access-denied"]),
    ("svc.test", "127.0.0.2", ["ok", "access-denied"]),
], ids=["resolved-then-connect", "same-ip-without-resolving", "other-name-not-implied",
        "ip-the-name-did-not-return"])
def test_name_rule_only_matches_resolved_addresses(
        guests: dict[str, Path], dns: DnsServer, name: str, target: str,
        expected: list[str]) -> None:
    # A listener on the target the guest would reach if the host let it.
    with socket.socket() as listener:
        listener.bind((target, 0))
        listener.listen(4)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        rule = f"--allow-outbound=tcp://svc.test:{port}"
        if name == "-":  # the client connects to the IP literal directly
            done = run_capsock("run", "--dns", dns.address, rule, str(guests["client"]),
                               f"{target}:{port}", "x")
            results = [line.split(": ", 1)[1] for line in done.stderr.splitlines()
                       if line.startswith("error: ")]
        else:
            done = run_capsock("run", "--dns", dns.address, rule, str(guests["probe"]),
                               "resolve-connect", name, f"{target}:{port}")
            results = [line.split(": ", 1)[1] for line in done.stdout.splitlines()
                       if line.startswith("result: ")]
        assert results == expected, done.stdout + done.stderr
        if expected[-1] == "access-denied":
            with pytest.raises(BlockingIOError):
                listener.accept()
        else:
            listener.accept()[0].close()
