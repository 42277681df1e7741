"""The syslog app driven by the real `logger` (util-linux): RFC 3164 and
RFC 5424 over UDP, TCP with newline framing and TCP with octet counting;
every message must appear in the file, parsed."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import capsock_command, capsock_env
from .apps import SyslogGuest as Syslog
from .apps import run_tool, syslog_guest


@pytest.fixture(scope="module")
def syslog(guests: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Syslog]:
    with syslog_guest(guests["syslog"], tmp_path_factory.mktemp("syslog")) as running:
        yield running


def logger(syslog: Syslog, transport: str, *args: str, stdin: str | None = None) -> None:
    port = syslog.udp if transport == "--udp" else syslog.tcp
    done = run_tool("logger", "-n", "127.0.0.1", "-P", str(port), transport, *args,
                    stdin=stdin, timeout=30)
    assert done.returncode == 0, done.stderr


CASES = [  # (transport flags, format flag)
    (["--udp"], "--rfc3164"),
    (["--udp"], "--rfc5424"),
    (["--tcp"], "--rfc3164"),  # newline framing
    (["--tcp"], "--rfc5424"),
    (["--tcp", "--octet-count"], "--rfc3164"),
    (["--tcp", "--octet-count"], "--rfc5424"),
]


@pytest.mark.parametrize(("transport", "fmt"), CASES,
                         ids=[f"{'+'.join(t)}-{f[2:]}" for t, f in CASES])
def test_logger_message_is_parsed(syslog: Syslog, transport: list[str], fmt: str) -> None:
    text = f"hello {uuid.uuid4().hex} ünïcode"
    logger(syslog, transport[0], *transport[1:], fmt, "-t", "myapp", "-i",
           "-p", "local3.warning", text)
    [record] = syslog.wait_for(text)
    assert record["transport"] == transport[0][2:]
    assert record["peer"].startswith("127.0.0.1:")
    assert record["format"] == fmt[2:]
    assert (record["facility"], record["facility_name"]) == (19, "local3")
    assert (record["severity"], record["severity_name"]) == (4, "warning")
    assert record["app"] == "myapp"
    assert record["procid"] and record["procid"].isdigit()
    assert record["hostname"]
    assert record["timestamp"]
    assert record["msg"] == text


def test_rfc5424_structured_data_and_msgid(syslog: Syslog) -> None:
    text = f"structured {uuid.uuid4().hex}"
    logger(syslog, "--udp", "--rfc5424", "-t", "sd", "--msgid", "ID47",
           "--sd-id", "origin@32473", "--sd-param", 'ip="10.0.0.1"',
           "--sd-param", 'note="a \\"quoted\\" \\]"', text)
    [record] = syslog.wait_for(text)
    assert record["msgid"] == "ID47"
    assert record["structured_data"]["origin@32473"] == {"ip": "10.0.0.1",
                                                         "note": 'a "quoted" ]'}
    assert record["timestamp"].startswith(time.strftime("%Y-"))


@pytest.mark.parametrize("framing", [[], ["--octet-count"]], ids=["newline", "octet-count"])
def test_many_messages_on_one_tcp_connection(syslog: Syslog, framing: list[str]) -> None:
    tag = uuid.uuid4().hex
    lines = [f"{tag} line {i}" for i in range(50)]
    logger(syslog, "--tcp", *framing, "--rfc5424", "-t", "batch",
           stdin="\n".join(lines) + "\n")
    records = syslog.wait_for(tag, count=50)
    assert [r["msg"] for r in records] == lines
    assert len({r["peer"] for r in records}) == 1  # one connection


def test_not_syslog_is_kept_whole(syslog: Syslog) -> None:
    text = f"plain text, no PRI {uuid.uuid4().hex}"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(text.encode(), ("127.0.0.1", syslog.udp))
    [record] = syslog.wait_for(text)
    assert record["format"] == "unknown" and record["msg"] == text


def test_serve_shares_udpbind_between_instances(guests: dict[str, Path], tmp_path: Path) -> None:
    """`capsock serve` hands every instance the --udpbind socket too; all
    messages land (each in one instance) and SIGTERM ends them all."""
    proc = subprocess.Popen(capsock_command(
        "serve", "--instances", "2", "--mode", "process", "--grace", "10",
        "--udpbind", "127.0.0.1:0", "--tcplisten", "127.0.0.1:0",
        "--dir", f"{tmp_path}::/data", str(guests["syslog"])),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=capsock_env())
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        ports = [int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", first)]
        assert len(ports) == 2, first
        tcp, udp = ports  # listeners first, then UDP sockets
        log = Syslog(udp, tcp, tmp_path / "syslog.jsonl")
        time.sleep(1.0)  # both instances started
        tag = uuid.uuid4().hex
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for i in range(40):
                sock.sendto(f"<14>1 - h app - - - {tag} {i}".encode(), ("127.0.0.1", udp))
                time.sleep(0.005)
        records = log.wait_for(tag, count=40)
        assert sorted(int(r["msg"].split()[-1]) for r in records) == list(range(40))
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "0 socket(s) still open" in err
