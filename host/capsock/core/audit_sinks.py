"""Audit sinks besides the file: stderr, and a syslog collector (RFC 5424).

`audit.py` owns the queue, the writer thread and the loss accounting; a
sink only delivers one line or raises OSError. `sink_for` turns the
`--audit-log` value into a sink:

==================================  =========================================
``FILE``                            append to FILE (`FileSink`; rotated by
                                    ``--audit-log-max-bytes``)
``-`` or ``stderr``                 capsock's stderr, one line per decision
``syslog://HOST:PORT``              RFC 5424 over UDP (RFC 5426), one
``syslog+udp://HOST:PORT``          message per datagram
``syslog+tcp://HOST:PORT``          RFC 5424 over TCP with octet counting
                                    (RFC 6587: ``LEN SP MSG``)
==================================  =========================================

A syslog message carries the JSON line as its MSG, with facility 13 (log
audit), severity 6 (informational) for an allowed decision and 4
(warning) for anything else, APP-NAME ``capsock``, PROCID the pid and
MSGID the decision's operation (``connect``, ``bind``, ...)::

    <110>1 2025-01-01T12:00:00.123456Z web-1 capsock 4242 connect - {"time": ...}

A collector that is unreachable or slow never stalls the guest (the
writer thread is the one waiting, and `audit.py` drops what does not fit
its queue); each failed delivery raises OSError and is counted as lost.
TCP connects lazily, with `TIMEOUT` for the connect and each send, and
after a failure waits `RETRY` seconds before trying again (lines meanwhile
are lost at once, not after a timeout each).
"""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

from ..addresses import SocketAddress, parse_host_port
from .audit import AuditSink, FileSink

#: RFC 5424 facility 13: "log audit".
FACILITY_LOG_AUDIT = 13
SEVERITY_INFO = 6
SEVERITY_WARNING = 4
#: Seconds for a TCP connect or send to the collector.
TIMEOUT = 2.0
#: Seconds between TCP reconnection attempts.
RETRY = 1.0


class StreamSink:
    """Lines to a file descriptor (stderr): one `write(2)` per line."""

    def __init__(self, fd: int = 2, name: str = "stderr") -> None:
        self.fd = fd
        self.name = name

    def write(self, line: str, allowed: bool) -> None:
        view = memoryview((line + "\n").encode("utf-8"))
        while view:
            written = os.write(self.fd, view)
            if not written:
                raise OSError(f"wrote nothing of {len(view)} bytes")
            view = view[written:]

    def reopen(self) -> None:
        pass

    def close(self) -> None:
        pass  # not ours


class SyslogSink:
    """RFC 5424 messages to a collector over UDP or TCP."""

    def __init__(self, address: SocketAddress, transport: str = "udp",
                 hostname: str | None = None) -> None:
        if transport not in ("udp", "tcp"):
            raise ValueError(f"syslog transport {transport!r}: udp or tcp")
        self.address = address
        self.transport = transport
        self.name = f"syslog+{transport}://{address}"
        self.hostname = _header_field(hostname or socket.gethostname(), 255)
        self.pid = os.getpid()
        self._sock: socket.socket | None = None
        self._retry_at = 0.0
        self._family = socket.AF_INET6 if address.is_ipv6 else socket.AF_INET
        self._target = (str(address.ip), address.port)
        if transport == "udp":  # opened now: a UDP socket needs no peer
            self._sock = self._udp()

    def _udp(self) -> socket.socket:
        sock = socket.socket(self._family, socket.SOCK_DGRAM)
        sock.settimeout(TIMEOUT)  # a full send buffer is a lost line, not a stall
        return sock

    def message(self, line: str, allowed: bool) -> bytes:
        """The RFC 5424 message for one audit line."""
        import json

        try:
            operation = str(json.loads(line).get("operation") or "-")
        except ValueError:
            operation = "-"
        severity = SEVERITY_INFO if allowed else SEVERITY_WARNING
        priority = FACILITY_LOG_AUDIT * 8 + severity
        return (f"<{priority}>1 {_timestamp()} {self.hostname} capsock {self.pid} "
                f"{_header_field(operation, 32)} - {line}").encode()

    def write(self, line: str, allowed: bool) -> None:
        data = self.message(line, allowed)
        if self.transport == "udp":
            assert self._sock is not None
            self._sock.sendto(data, self._target)
            return
        sock = self._connected()
        try:
            sock.sendall(b"%d %s" % (len(data), data))
        except OSError:
            self._drop_connection()
            raise

    def _connected(self) -> socket.socket:
        if self._sock is not None:
            return self._sock
        now = time.monotonic()
        if now < self._retry_at:
            raise OSError(f"collector {self.address} unreachable; retrying in "
                          f"{self._retry_at - now:.1f}s")
        sock = socket.socket(self._family, socket.SOCK_STREAM)
        sock.settimeout(TIMEOUT)
        try:
            sock.connect(self._target)
        except OSError:
            sock.close()
            self._retry_at = now + RETRY
            raise
        self._sock = sock
        return sock

    def _drop_connection(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._retry_at = time.monotonic() + RETRY

    def reopen(self) -> None:
        """In a forked child: its own socket (a shared TCP stream would
        interleave two processes' frames)."""
        self.pid = os.getpid()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self.transport == "udp":
            self._sock = self._udp()
        self._retry_at = 0.0

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def sink_for(target: str | Path, max_bytes: int = 0, backups: int = 5) -> AuditSink:
    """The sink an `--audit-log` value names (see the module docstring).
    ValueError for a malformed syslog address; OSError for a file that
    cannot be opened; rotation applies to files only."""
    text = str(target)
    if text in ("-", "stderr"):
        return StreamSink(sys.stderr.fileno())
    scheme, sep, rest = text.partition("://")
    if sep and scheme in ("syslog", "syslog+udp", "syslog+tcp"):
        address = parse_host_port(rest)
        if address.port == 0:
            raise ValueError(f"{text!r}: the collector's port cannot be 0")
        return SyslogSink(address, "tcp" if scheme == "syslog+tcp" else "udp")
    if sep:
        raise ValueError(f"{text!r}: a file, '-', or syslog[+udp|+tcp]://HOST:PORT")
    return FileSink(text, max_bytes, backups)


def _timestamp() -> str:
    import datetime

    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _header_field(text: str, limit: int) -> str:
    """RFC 5424 header fields are printable US-ASCII without spaces."""
    cleaned = "".join(c for c in text if 33 <= ord(c) <= 126)[:limit]
    return cleaned or "-"


__all__ = ["SyslogSink", "StreamSink", "sink_for"]
