"""Audit sinks: syslog (RFC 5424 over UDP and TCP, received by the repo's
own syslog guest), stderr, size rotation, and a sink that is full or stuck
never stalling the guest (lines dropped and counted, also as a metric)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from capsock import AuditLog, Host, Policy
from capsock.core.audit import FileSink
from capsock.core.audit_sinks import SyslogSink, sink_for
from capsock.policy import Decision

from .apps import SyslogGuest, port_of, syslog_guest
from .helpers import TIMEOUT, NativeServer, Running, run_capsock
from .test_metrics import metrics_url, total, until

Collector = SyslogGuest


@pytest.fixture(scope="module")
def collector(guests: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[Collector]:
    with syslog_guest(guests["syslog"], tmp_path_factory.mktemp("collector")) as running:
        yield running


@pytest.mark.parametrize("scheme", ["syslog", "syslog+tcp"])
def test_decisions_reach_a_syslog_collector(guests: dict[str, Path], collector: Collector,
                                            scheme: str) -> None:
    """An allowed and a denied connect of a real guest arrive at the syslog
    guest as RFC 5424 messages: facility 13 (log audit), severity info /
    warning, app capsock, msgid the operation, the JSON line as MSG."""
    server = NativeServer()
    try:
        port = collector.tcp if scheme == "syslog+tcp" else collector.udp
        sink = f"--audit-log={scheme}://127.0.0.1:{port}"
        allow = f"--allow-outbound=tcp://127.0.0.1:{server.port}"
        marker = f"127.0.0.1:{server.port}"
        done = run_capsock("run", allow, sink, str(guests["client"]), marker, "hi")
        assert done.returncode == 0, done.stderr
        denied = run_capsock("run", allow, sink, str(guests["client"]), "127.0.0.1:1", "hi")
        assert denied.returncode != 0
    finally:
        server.close()
    transport = "tcp" if scheme == "syslog+tcp" else "udp"

    def about(target: str) -> Any:
        return lambda r: (r.get("transport") == transport and r.get("format") == "rfc5424"
                          and target in r.get("msg", ""))

    [allowed] = collector.wait_for(about(marker))
    assert (allowed["facility"], allowed["severity_name"], allowed["app"],
            allowed["msgid"]) == (13, "info", "capsock", "connect")
    line = json.loads(allowed["msg"])
    assert (line["target"], line["allowed"]) == (marker, True)
    [refused] = collector.wait_for(about('"127.0.0.1:1"'))
    assert refused["severity_name"] == "warning"
    assert json.loads(refused["msg"])["allowed"] is False


def test_stderr_sink(guests: dict[str, Path]) -> None:
    done = run_capsock("run", "--allow-outbound=tcp://127.0.0.1:1", "--audit-log=-",
                       str(guests["client"]), "127.0.0.1:2", "hi")
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert [(r["operation"], r["target"], r["allowed"]) for r in lines] == [
        ("connect", "127.0.0.1:2", False)]


def test_rotation_by_size(guests: dict[str, Path], tmp_path: Path) -> None:
    """300 denials from a real guest (the first 100 written whole, the rest
    rate-limited): the file rotates at 4000 bytes, two backups kept, no
    line torn or split across files."""
    audit = tmp_path / "audit.jsonl"
    done = run_capsock("run", "--allow-outbound=tcp://127.0.0.1:1", f"--audit-log={audit}",
                       "--audit-log-max-bytes=4000", "--audit-log-backups=2",
                       str(guests["hostile"]), "deny-flood", "300", "127.0.0.1:2")
    assert done.returncode == 0, done.stderr
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]
    for name in files:
        text = (tmp_path / name).read_text()
        assert text.endswith("\n")
        size = len(text.encode())
        longest = max(len(line) + 1 for line in text.splitlines())
        assert size < 4000 + longest  # rotated once it reached the size
        for line in text.splitlines():
            assert json.loads(line)["instance"]
    # The newest lines are in the live file: the last is the summary.
    last = json.loads(audit.read_text().splitlines()[-1])
    assert last["operation"] == "suppressed"


class StuckSink:
    """An embedder's sink that blocks until released: a collector that
    stopped reading."""

    name = "stuck"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lines: list[str] = []

    def write(self, line: str, allowed: bool) -> None:
        self.release.wait()
        self.lines.append(line)

    def reopen(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_a_stuck_sink_never_stalls_the_guest(guests: dict[str, Path], tmp_path: Path) -> None:
    """A guest makes 2,000 denied connects (the first 100 audited whole,
    the rest summarised) while the sink is stuck on its first line: the
    guest runs to its end, what does not fit the 10-line queue is dropped
    and counted, and once the sink moves the log says how many in one
    `dropped` line."""
    sink = StuckSink()
    drops: list[tuple[str, int]] = []
    log = AuditLog(sink=sink, queue_lines=10,
                   on_drop=lambda reason, n: drops.append((reason, n)))
    host = Host(policy=Policy.from_flags(allow_outbound=["tcp://127.0.0.1:1"]), audit_log=log)
    out = tmp_path / "out.txt"
    code = host.run(guests["hostile"], ["deny-flood", "2000", "127.0.0.1:2"], stdout=out)
    assert code == 0
    assert out.read_text().splitlines() == ["codes access-denied=2000"]
    dropped = log.dropped
    assert dropped >= 90  # ~100 lines made, 10 queued, 1 in the stuck write
    assert drops == [("queue-full", 1)] * dropped
    sink.release.set()
    log.close()
    records = [json.loads(line) for line in sink.lines]
    [report] = [r for r in records if r["operation"] == "dropped"]
    assert report["count"] == dropped
    assert report["target"] == f"{dropped} audit lines dropped (queue full)"
    assert 1 < len(records) <= 12  # the stuck one, the queue, the report


def test_write_failures_are_a_metric(guests: dict[str, Path]) -> None:
    """--audit-log=/dev/full under --metrics: the bind the echo guest asks
    for is allowed (and it serves), the line is lost, and counted."""
    app = Running("run", "--metrics", "127.0.0.1:0", "--allow-inbound=tcp://127.0.0.1:*",
                  "--audit-log=/dev/full", str(guests["echo"]), "127.0.0.1:0",
                  "--max-connections", "1")
    try:
        port = port_of(app.wait_for("listening on"))
        url = metrics_url(app)
        samples = until(url, lambda s: total(s, "capsock_audit_lines_dropped_total") >= 1)
        assert total(samples, "capsock_audit_lines_dropped_total", reason="write-failed") >= 1
        assert total(samples, "capsock_decisions_total", operation="bind",
                     outcome="allowed") == 1
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as conn:
            conn.sendall(b"still served")
            conn.shutdown(socket.SHUT_WR)
            assert conn.recv(100) == b"still served"
        code, _, err = app.finish()
        assert code == 0, err
        assert err.count("cannot write") == 1
    finally:
        app.kill()


def test_an_unreachable_collector_is_counted_not_waited_for() -> None:
    """TCP to a port nobody listens on: each line fails at once (the
    connect is refused, then retried at most once a second), counted lost."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: refused
        sink = sink_for(f"syslog+tcp://127.0.0.1:{port}")
        assert isinstance(sink, SyslogSink)
        log = AuditLog(sink=sink)
        for index in range(20):
            log.record("1-1", "connect", "tcp", f"127.0.0.1:{index}", Decision(True, "r"))
        assert log.flush()
        assert log.lost == 20
        log.close()


def test_bad_syslog_address_is_a_startup_error(guests: dict[str, Path]) -> None:
    done = run_capsock("run", "--audit-log=syslog://nowhere", str(guests["client"]), "x", "y")
    assert done.returncode == 2
    assert "invalid --audit-log" in done.stderr


def test_rotation_across_processes(tmp_path: Path) -> None:
    """Three forked writers (as `serve --mode process` has) append 500
    lines each to one rotating file: every line lands whole, in one file,
    and no file grew much past the size (one rotation per crossing)."""
    import os

    path = tmp_path / "audit.jsonl"
    log = AuditLog(sink=FileSink(path, max_bytes=20_000, backups=100))
    children = []
    for index in range(3):
        pid = os.fork()
        if pid == 0:  # pragma: no cover (the child)
            code = 1
            try:
                for line in range(500):
                    log.record(f"child-{index}", "connect", "tcp", f"127.0.0.1:{line}",
                               Decision(True, "r"))
                log.close()
                code = 0
            finally:
                os._exit(code)
        children.append(pid)
    for pid in children:
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    log.close()
    files = sorted(tmp_path.iterdir())
    assert len(files) > 3
    seen: dict[str, set[str]] = {}
    for file in files:
        text = file.read_text()
        assert len(text) < 20_000 + 3 * 200  # each writer may add a line past it
        for line in text.splitlines():
            record = json.loads(line)
            seen.setdefault(record["instance"], set()).add(record["target"])
    assert {name: len(targets) for name, targets in seen.items()} == {
        "child-0": 500, "child-1": 500, "child-2": 500}


def test_a_collector_that_stops_reading_costs_lines_not_time() -> None:
    """A real TCP collector that accepts and never reads: once the kernel's
    buffers are full the writer waits in `send`, the queue fills, and the
    rest of 200,000 decisions are dropped and counted; recording them all
    finishes while the collector still has not read a byte."""
    with socket.create_server(("127.0.0.1", 0)) as collector:
        collector.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        port = collector.getsockname()[1]
        log = AuditLog(sink=sink_for(f"syslog+tcp://127.0.0.1:{port}"), queue_lines=100,
                       close_timeout=1.0)
        decision = Decision(True, "allow-outbound tcp://127.0.0.1:*")
        for index in range(200_000):
            log.record("1-1", "connect", "tcp", f"127.0.0.1:{index % 65535 + 1}", decision)
        conn, _ = collector.accept()  # never read from
        with conn:
            assert log.dropped > 100_000
            log.close()  # the writer is stuck in send: close gives up after 1 s
