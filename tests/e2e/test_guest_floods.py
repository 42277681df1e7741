"""Issue 15, defect 7: a guest cannot flood the host's logs.

Two halves of one class (SECURITY.md, promises 4 and 8): no guest input
reaches the binding's "unexpected exception" path (every numeric argument
at its boundaries gets a defined result, through a real guest on both
backends), and the lines a guest can make the host write (denials, in the
audit log and on stderr) are rate-limited per instance with a summary.
"""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import pytest

from capsock import AuditLog, Host, MemoryBackend, Policy, VirtualNetwork
from capsock._log import LINES_BURST, LineBudget

from .helpers import run_capsock

FLOOD = 20_000


def _results(lines: list[str]) -> dict[str, str]:
    assert lines[-1] == "done", lines
    return dict(line.split(": ", 1) for line in lines[:-1])


def _assert_defined(results: dict[str, str]) -> None:
    """Every call has a result, none is the unexpected path's `unknown`,
    and a huge timeout is clamped (the WIT makes only zero invalid)."""
    assert "unknown" not in results.values(), results
    assert results["tcp.set-timeout.max"] == "ok"
    assert results["udp.set-timeout.max"] == "ok"
    assert results["poll.max"] == "ok"
    assert results["tcp.set-timeout.zero"] == "invalid-argument"
    assert results["udp.send.too-large"] == "datagram-too-large"


def test_boundary_values_get_defined_results_on_the_os_backend(guests: dict[str, Path]) -> None:
    with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        tcp.bind(("127.0.0.1", 0))
        tcp.listen(4)
        udp.bind(("127.0.0.1", 0))
        tcp_port, udp_port = tcp.getsockname()[1], udp.getsockname()[1]
        done = run_capsock("run", f"--allow-outbound=tcp://127.0.0.1:{tcp_port}",
                           f"--allow-outbound=udp://127.0.0.1:{udp_port}",
                           "--allow-inbound=tcp://*:*", str(guests["hostile"]), "boundaries",
                           f"127.0.0.1:{tcp_port}", f"127.0.0.1:{udp_port}")
    assert done.returncode == 0, done.stderr
    _assert_defined(_results(done.stdout.splitlines()))
    assert "Traceback" not in done.stderr
    assert "unexpected" not in done.stderr


def test_boundary_values_get_defined_results_on_the_memory_backend(
        guests: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    net = VirtualNetwork()
    listener = net.listen("127.0.0.1:7000")
    peer = net.udp_bind("127.0.0.1:7001")
    host = Host(policy=Policy.from_flags(
        allow_outbound=["tcp://127.0.0.1:7000", "udp://127.0.0.1:7001"],
        allow_inbound=["tcp://*:*"]), backend=MemoryBackend(net))
    out = tmp_path / "out.txt"
    try:
        with caplog.at_level(logging.INFO, logger="capsock"):
            assert host.run(guests["hostile"], ["boundaries", "127.0.0.1:7000",
                                                "127.0.0.1:7001"], stdout=out) == 0
    finally:
        listener.close()
        peer.close()
    _assert_defined(_results(out.read_text().splitlines()))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


def test_20000_denials_make_a_bounded_log_with_a_summary(guests: dict[str, Path],
                                                         tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    done = run_capsock("run", "-v", f"--audit-log={audit}",
                       "--allow-outbound=tcp://127.0.0.1:1", str(guests["hostile"]),
                       "deny-flood", str(FLOOD), "127.0.0.1:2", timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == [f"codes access-denied={FLOOD}"]

    records = [json.loads(line) for line in audit.read_text().splitlines()]
    denials = [r for r in records if r["operation"] == "connect"]
    summaries = [r for r in records if r["operation"] == "suppressed"]
    # The first lines are intact: the start of the flood, whole.
    assert len(denials) >= LINES_BURST
    for record in denials[:LINES_BURST]:
        assert record["target"] == "127.0.0.1:2"
        assert record["allowed"] is False
    # Every denial is accounted for, written or counted in a summary.
    assert summaries
    assert summaries[-1] == records[-1]  # the end-of-instance summary
    assert all(s["target"] == f"{s['count']} more denials suppressed" for s in summaries)
    assert len(denials) + sum(s["count"] for s in summaries) == FLOOD
    # Bounded: a burst, then a trickle (20,000 lines without the budget).
    assert len(records) < FLOOD // 10

    stderr = done.stderr.splitlines()
    # One line per written denial: the first in full without -v (the
    # operator's hint), the rest as -v's "denied" lines.
    denied = [line for line in stderr
              if line.startswith(("capsock: denied connect", "capsock: connect tcp://"))]
    suppressed = [line for line in stderr if "more denials suppressed" in line]
    assert len(denied) == len(denials)
    assert len(suppressed) == len(summaries)
    assert len(stderr) < FLOOD // 10


def test_line_budget_edges() -> None:
    """The budget alone, on a hand-driven clock: burst, refill, one summary
    per interval, and the flush."""
    now = [0.0]
    budget = LineBudget(burst=3, rate=1.0, interval=1.0, clock=lambda: now[0])
    assert [budget.admit() for _ in range(5)] == [(True, 0)] * 3 + [(False, 0)] * 2
    now[0] = 0.5   # half a token, and the interval not over: still counting
    assert budget.admit() == (False, 0)
    now[0] = 1.0   # a token again, and the first summary (3 suppressed)
    assert budget.admit() == (True, 3)
    assert budget.admit() == (False, 0)
    assert budget.flush() == 1
    assert budget.flush() == 0


def test_audit_file_survives_the_flood_for_the_next_instance(guests: dict[str, Path],
                                                             tmp_path: Path) -> None:
    """The budget is per instance: a flooding instance leaves the next one
    its own whole burst."""
    log = AuditLog(tmp_path / "audit.jsonl")
    host = Host(policy=Policy.from_flags(allow_outbound=["tcp://127.0.0.1:1"]), audit_log=log)
    try:
        for _ in range(2):
            assert host.run(guests["hostile"], ["deny-flood", "500", "127.0.0.1:2"],
                            stdout=tmp_path / "out.txt") == 0
    finally:
        log.close()
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    by_instance: dict[str, list[dict[str, object]]] = {}
    for record in records:
        by_instance.setdefault(str(record["instance"]), []).append(record)
    assert len(by_instance) == 2
    for lines in by_instance.values():
        written = [r for r in lines if r["operation"] == "connect"]
        counted = sum(int(r["count"]) for r in lines  # type: ignore[call-overload]
                      if r["operation"] == "suppressed")
        assert len(written) >= LINES_BURST
        assert len(written) + counted == 500
