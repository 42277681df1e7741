"""Per-instance limits (core/limits.py), each hit by a real guest.

Every quota must refuse with `limit-reached` and write an audit line
(operation ``limit``); every cap must shrink the request; and the host must
keep working for the next instance.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from capsock import AuditLog, Host, Limits, MemoryBackend, Policy, SocketAddress, VirtualNetwork
from capsock.core.context import InstanceContext
from capsock.core.tcp import open_tcp

from .peers import Peer, blast, drain, echo

LOCAL = ["tcp://127.0.0.1:*", "udp://127.0.0.1:*"]


def run(guests: dict[str, Path], tmp_path: Path, limits: Limits, *args: str,
        audit: bool = False) -> tuple[int, list[str], list[dict[str, object]]]:
    """Run the hostile guest in-process; its stdout lines and audit records."""
    log = AuditLog(tmp_path / "audit.jsonl") if audit else None
    host = Host(policy=Policy.from_flags(allow_outbound=LOCAL, allow_inbound=LOCAL),
                limits=limits, audit_log=log)
    out = tmp_path / "out.txt"
    try:
        code = host.run(guests["hostile"], list(args), stdout=out)
    finally:
        if log is not None:
            log.close()
    records = []
    if audit:
        records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    return code, out.read_text().splitlines(), records


def limit_records(records: list[dict[str, object]]) -> list[dict[str, object]]:
    return [r for r in records if r["operation"] == "limit"]


@pytest.mark.parametrize("protocol", ["tcp", "udp"])
def test_max_sockets(guests: dict[str, Path], tmp_path: Path, protocol: str) -> None:
    code, out, records = run(guests, tmp_path, Limits(max_sockets=5), "hold", protocol, "50",
                             audit=True)
    assert code == 0
    assert out == ["held 5", "result: limit-reached"]
    [record] = limit_records(records)
    assert record["allowed"] is False
    assert record["rule"] == "limit max_sockets=5"
    assert record["protocol"] == protocol


def test_max_sockets_default_far_below_the_process_limit(guests: dict[str, Path],
                                                          tmp_path: Path) -> None:
    """The default quota (1024) stops a guest long before the host's fds run out."""
    code, out, _ = run(guests, tmp_path, Limits(), "hold", "udp", "5000")
    assert code == 0
    assert out == ["held 1024", "result: limit-reached"]


def test_accept_refused_at_the_socket_limit(guests: dict[str, Path], tmp_path: Path) -> None:
    """Listener + client = 2 sockets: the accept is refused before accept()."""
    code, out, records = run(guests, tmp_path, Limits(max_sockets=2), "accept-at-limit",
                             "127.0.0.1:0", audit=True)
    assert code == 0
    assert out == ["result: limit-reached"]
    assert "accept" in str(limit_records(records)[0]["target"])
    code, out, _ = run(guests, tmp_path, Limits(max_sockets=3), "accept-at-limit", "127.0.0.1:0")
    assert out == ["result: ok"]


def test_receive_is_capped(guests: dict[str, Path], tmp_path: Path) -> None:
    """receive(2**64 - 1) returns at most max-io-bytes (default 1 MiB)."""
    peer = Peer(blast(4 << 20))
    try:
        _, out, _ = run(guests, tmp_path, Limits(max_io_bytes=1000), "receive", peer.address,
                        "1", str(2**64 - 1))
        assert out[0].startswith("received ") and 0 < int(out[0].split()[1]) <= 1000
        _, out, _ = run(guests, tmp_path, Limits(), "receive", peer.address, "1",
                        str(2**64 - 1))
        assert 0 < int(out[0].split()[1]) <= 1 << 20
    finally:
        peer.close()


def test_send_is_capped(guests: dict[str, Path], tmp_path: Path) -> None:
    peer = Peer(drain)
    try:
        _, out, _ = run(guests, tmp_path, Limits(max_io_bytes=1000), "send", peer.address,
                        "100000")
        assert out == ["sent 1000"]
    finally:
        peer.close()


def test_max_pollables(guests: dict[str, Path], tmp_path: Path) -> None:
    peer = Peer(echo)
    try:
        _, out, records = run(guests, tmp_path, Limits(max_pollables=8), "poll-many",
                              peer.address, "9", audit=True)
        assert out == ["result: limit-reached"]
        assert limit_records(records)[0]["rule"] == "limit max_pollables=8"
        _, out, _ = run(guests, tmp_path, Limits(max_pollables=8), "poll-many", peer.address,
                        "8")
        assert out == ["result: ok 8"]
    finally:
        peer.close()


@pytest.mark.parametrize("protocol", ["tcp", "udp"])
def test_buffer_size_is_capped(guests: dict[str, Path], tmp_path: Path, protocol: str) -> None:
    """On the in-memory network the buffer is exactly what the host allowed."""
    host = Host(policy=Policy.from_flags(allow_outbound=LOCAL, allow_inbound=LOCAL),
                backend=MemoryBackend(VirtualNetwork()),
                limits=Limits(max_buffer_bytes=65536))
    out = tmp_path / "out.txt"
    assert host.run(guests["hostile"], ["buffer", protocol, str(1 << 40)], stdout=out) == 0
    assert out.read_text().split() == ["buffer", "65536"]


def test_max_backlog_caps_listen() -> None:
    """listen(huge) reaches the backend as max-backlog (core, in-process)."""
    seen: list[int] = []
    context = InstanceContext(Policy.from_flags(allow_inbound=LOCAL),
                              MemoryBackend(VirtualNetwork()), limits=Limits(max_backlog=7))
    sock = open_tcp(context, context.checker, False)
    real_listen = sock.sock.listen

    def listen(backlog: int) -> None:
        seen.append(backlog)
        real_listen(backlog)

    sock.sock.listen = listen  # type: ignore[method-assign]
    sock.bind(SocketAddress(ipaddress.ip_address("127.0.0.1"), 0))
    sock.listen(2**32 - 1)
    assert seen == [7]
    assert context.open_sockets == 1
    sock.close()
    assert context.open_sockets == 0


def conformance_plan(guests: dict[str, Path], tmp_path: Path, host: Host,
                     plan: list[tuple[str, list[object]]]) -> list[str]:
    """Run conformance-guest probes (kind, args) in one guest; their outcomes."""
    out = tmp_path / "plan.jsonl"
    cases = [[f"c{i}", kind, args] for i, (kind, args) in enumerate(plan)]
    assert host.run(guests["conformance"], [json.dumps(cases)], stdout=out) == 0
    return [json.loads(line)["got"] for line in out.read_text().splitlines()]


def test_max_datagram(guests: dict[str, Path], tmp_path: Path) -> None:
    """Over max-datagram: `datagram-too-large`, nothing sent."""
    network = VirtualNetwork()
    host = Host(policy=Policy.from_flags(allow_outbound=["udp://127.0.0.9:*"]),
                backend=MemoryBackend(network), limits=Limits(max_datagram=100))
    got = conformance_plan(guests, tmp_path, host, [("udp-send", ["127.0.0.9:53", 100]),
                                                    ("udp-send", ["127.0.0.9:53", 101])])
    assert got == ["ok", "datagram-too-large"]


def test_resolves_per_second(guests: dict[str, Path], tmp_path: Path) -> None:
    """A burst beyond the bucket is refused before the resolver is asked;
    a denied name stays `access-denied` (the policy comes first)."""
    asked: list[str] = []
    network = VirtualNetwork(names={"svc.test": ["127.0.0.1"]})
    backend = MemoryBackend(network)
    resolver = backend.default_resolver()
    real = resolver.resolve

    def counting(name: str, ipv6: bool | None) -> list[object]:
        asked.append(name)
        return real(name, ipv6)  # type: ignore[return-value]

    resolver.resolve = counting  # type: ignore[assignment,method-assign]
    log = AuditLog(tmp_path / "audit.jsonl")
    host = Host(policy=Policy.from_flags(allow_resolve=["svc.test"]), backend=backend,
                resolver=resolver, limits=Limits(resolves_per_second=3), audit_log=log)
    got = conformance_plan(guests, tmp_path, host,
                           [("resolve", ["svc.test"])] * 5 + [("resolve", ["other.test"])])
    log.close()
    assert got[:3] == ["value:127.0.0.1"] * 3
    assert got[3:] == ["limit-reached", "limit-reached", "access-denied"]
    assert len(asked) == 3
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [r["rule"] for r in limit_records(records)] == ["limit resolves_per_second=3"] * 2


def test_token_bucket_refills() -> None:
    from capsock.core.limits import TokenBucket

    now = [0.0]
    bucket = TokenBucket(2, clock=lambda: now[0])
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    now[0] += 0.5
    assert [bucket.take(), bucket.take()] == [True, False]


def test_limits_reject_nonsense() -> None:
    with pytest.raises(ValueError):
        Limits(max_sockets=0)
    with pytest.raises(ValueError):
        Limits(max_datagram=70000)
    with pytest.raises(ValueError):
        Limits(resolves_per_second=0)


def test_cli_flags_reach_the_host() -> None:
    from capsock.cli import ConfigError, build_parser, host_from_args

    parser = build_parser()
    args = parser.parse_args(["run", "--max-sockets", "7", "--max-resolves-per-second", "2.5",
                              "--max-io-bytes", "4096", "x.wasm"])
    limits = host_from_args(args).limits
    assert (limits.max_sockets, limits.resolves_per_second, limits.max_io_bytes) == (7, 2.5, 4096)
    assert limits.max_pollables == Limits().max_pollables
    with pytest.raises(ConfigError, match="--max-sockets"):
        host_from_args(parser.parse_args(["run", "--max-sockets", "0", "x.wasm"]))
