"""Remote logging server: RFC 3164 and RFC 5424 syslog over UDP and TCP,
one JSON line per message.

    syslog [--data DIR] [--file NAME] [--stdout]

Serves every pre-opened socket at once on `capsock_guest.Loop`: UDP
sockets (``--udpbind``, one message per datagram, RFC 5426) and TCP
listeners (``--tcplisten``, RFC 6587: octet counting ``LEN SP MSG``, or
a message per line when the frame does not start with a digit). The real
``logger`` command talks to it:

    capsock run --udpbind 127.0.0.1:5514 --tcplisten 127.0.0.1:5514 \\
        --dir ./logs::/data build/syslog.wasm
    logger -n 127.0.0.1 -P 5514 --udp --rfc5424 'hello'

Each message is parsed -- PRI into facility and severity, then the RFC
5424 header (version, timestamp, hostname, app-name, procid, msgid,
structured data) or the RFC 3164 one (``Mmm dd hh:mm:ss host tag[pid]:``),
falling back to the whole text as ``msg`` -- and appended as one JSON
object per line to ``DIR/NAME`` (default ``/data/syslog.jsonl``, the guest
path of a ``--dir`` pre-open), flushed per message so ``tail -f`` sees it
at once. ``--stdout`` writes the lines to stdout instead.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from typing import Any, TextIO

import capsock_guest as cg

FACILITIES = ["kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp",
              "cron", "authpriv", "ftp", "ntp", "security", "console", "solaris-cron",
              "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7"]
SEVERITIES = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"]
#: RFC 6587 does not bound a frame; this does, so one client cannot make
#: the server buffer without end.
MAX_FRAME = 64 * 1024
BOM = "\ufeff"

PRI = re.compile(r"<(\d{1,3})>")
RFC3164_HEAD = re.compile(
    r"(?P<timestamp>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) "
    r"(?:(?P<hostname>[^ :\[\]]+) )?"
    r"(?P<tag>[^ :\[\]]{1,48})(?:\[(?P<pid>[^\]]*)\])?: ?")
SD_ELEMENT = re.compile(r'\[([^ =\]"]+)((?: [^ =\]"]+="(?:[^"\\]|\\.)*")*)\]')
SD_PARAM = re.compile(r' ([^ =\]"]+)="((?:[^"\\]|\\.)*)"')


def nil(field: str) -> str | None:
    """RFC 5424's NILVALUE ``-`` means the field is absent."""
    return None if field == "-" else field


def parse_structured_data(text: str) -> tuple[dict[str, dict[str, str]] | None, str]:
    """``(elements, rest)``: ``-`` or ``[id name="value" ...]...``, with
    the ``\\" \\\\ \\]`` escapes undone."""
    if text.startswith("-"):
        return None, text[1:]
    elements: dict[str, dict[str, str]] = {}
    pos = 0
    while True:
        match = SD_ELEMENT.match(text, pos)
        if match is None:
            break
        params = {name: re.sub(r"\\([\"\\\]])", r"\1", value)
                  for name, value in SD_PARAM.findall(match.group(2))}
        elements[match.group(1)] = params
        pos = match.end()
    if pos == 0:
        raise ValueError("bad structured data")
    return elements, text[pos:]


def parse(raw: bytes) -> dict[str, Any]:
    """One syslog message as a dict; never raises (a message that is not
    syslog is kept whole as ``msg`` with format ``unknown``)."""
    text = raw.decode("utf-8", errors="replace").rstrip("\r\n\0")
    record: dict[str, Any] = {"format": "unknown"}
    match = PRI.match(text)
    if match is None or int(match.group(1)) > 191:
        record["msg"] = text
        return record
    pri = int(match.group(1))
    record.update(facility=pri >> 3, facility_name=FACILITIES[pri >> 3],
                  severity=pri & 7, severity_name=SEVERITIES[pri & 7])
    body = text[match.end():]
    if body.startswith("1 "):
        try:
            return parse_5424(body[2:], record)
        except ValueError:
            pass
    head = RFC3164_HEAD.match(body)
    if head is not None:
        record.update(format="rfc3164", timestamp=head.group("timestamp"),
                      hostname=head.group("hostname"), app=head.group("tag"),
                      procid=head.group("pid"), msg=body[head.end():])
    else:
        record.update(format="rfc3164", msg=body)
    return record


def parse_5424(body: str, record: dict[str, Any]) -> dict[str, Any]:
    fields = body.split(" ", 5)
    if len(fields) < 6:
        if len(fields) == 5:  # no structured data and no message
            fields.append("-")
        else:
            raise ValueError("short RFC 5424 header")
    timestamp, hostname, app, procid, msgid, rest = fields
    structured, rest = parse_structured_data(rest)
    if rest and not rest.startswith(" "):
        raise ValueError("no space after structured data")
    msg = rest[1:]
    if msg.startswith(BOM):
        msg = msg[1:]
    record.update(format="rfc5424", version=1, timestamp=nil(timestamp),
                  hostname=nil(hostname), app=nil(app), procid=nil(procid),
                  msgid=nil(msgid), structured_data=structured, msg=msg)
    return record


class Sink:
    """Appends records as JSON lines, flushed per message."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.count = 0

    def write(self, raw: bytes, transport: str, peer: cg.Address) -> None:
        record = parse(raw)
        line = {"received": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "transport": transport, "peer": cg.format_address(peer), **record}
        self.out.write(json.dumps(line, ensure_ascii=False) + "\n")
        self.out.flush()
        self.count += 1


class Server:
    def __init__(self, loop: cg.Loop, sink: Sink) -> None:
        self.loop = loop
        self.sink = sink
        self.connections: set[cg.TcpStream] = set()

    async def udp(self, sock: cg.UdpSocket) -> None:
        try:
            while True:
                data, peer = await self.loop.recvfrom(sock, 65535)
                if data:
                    self.sink.write(data, "udp", peer)
        except cg.NetError:
            return  # shut down by the host
        finally:
            self.loop.close(sock)

    async def tcp(self, conn: cg.TcpStream, peer: cg.Address) -> None:
        buf = bytearray()
        try:
            while chunk := await self.loop.recv(conn, 65536):
                buf += chunk
                while frame := self.next_frame(buf):
                    if frame.strip():
                        self.sink.write(frame, "tcp", peer)
                if len(buf) > MAX_FRAME:  # no frame end in sight
                    self.sink.write(bytes(buf), "tcp", peer)
                    buf.clear()
            if buf.strip():  # the last line without its newline
                self.sink.write(bytes(buf), "tcp", peer)
        except cg.NetError:
            return
        finally:
            self.connections.discard(conn)
            self.loop.close(conn)

    @staticmethod
    def next_frame(buf: bytearray) -> bytes | None:
        """Take one complete frame off `buf` (RFC 6587 section 3.4):
        octet counting when it starts with a digit, else up to LF."""
        while buf[:1] in (b"\n", b"\r", b"\0", b" "):
            del buf[:1]
        if not buf:
            return None
        if buf[:1].isdigit():
            space = buf.find(b" ")
            if space < 0:
                return None
            if buf[:space].isdigit() and space <= 6:
                size = int(buf[:space])
                if len(buf) < space + 1 + size:
                    return None
                frame = bytes(buf[space + 1:space + 1 + size])
                del buf[:space + 1 + size]
                return frame
        end = buf.find(b"\n")
        if end < 0:
            return None
        frame = bytes(buf[:end])
        del buf[:end + 1]
        return frame

    async def accept_all(self, listener: cg.TcpListener) -> None:
        try:
            async for conn, peer in self.loop.accept_forever(listener):
                self.connections.add(conn)
                self.loop.spawn(self.tcp(conn, peer))
        finally:
            self.loop.close(listener)
        for conn in list(self.connections):  # shutting down: end idle senders
            try:
                conn.shutdown("receive")
            except cg.NetError:
                pass


USAGE = "usage: syslog [--data DIR] [--file NAME] [--stdout]"


def main(argv: list[str]) -> int:
    data_dir = "/data"
    file_name = "syslog.jsonl"
    to_stdout = False
    rest = list(argv)
    while rest:
        arg = rest.pop(0)
        if arg == "--data" and rest:
            data_dir = rest.pop(0)
        elif arg == "--file" and rest:
            file_name = rest.pop(0)
        elif arg == "--stdout":
            to_stdout = True
        else:
            print(USAGE, file=sys.stderr)
            return 2
    udp = cg.preopened_udp_sockets()
    tcp = cg.preopened_tcp_listeners()
    if not udp and not tcp:
        print("syslog: pre-open a socket: --udpbind HOST:PORT and/or --tcplisten HOST:PORT",
              file=sys.stderr)
        return 1
    if to_stdout:
        out: TextIO = sys.stdout
    else:
        if not os.path.isdir(data_dir):
            print(f"syslog: {data_dir} is not a pre-opened directory "
                  f"(--dir HOSTDIR::{data_dir}); or use --stdout", file=sys.stderr)
            return 1
        path = data_dir.rstrip("/") + "/" + file_name
        out = open(path, "a", encoding="utf-8")
        print(f"syslog: appending to {path}", flush=True)
    loop = cg.Loop()
    server = Server(loop, Sink(out))
    for sock in udp:
        print(f"listening on udp {cg.format_address(sock.local_address())}", flush=True)
        loop.spawn(server.udp(sock))
    for listener in tcp:
        print(f"listening on tcp {cg.format_address(listener.local_address())}", flush=True)
        loop.spawn(server.accept_all(listener))
    loop.run()
    print(f"syslog: {server.sink.count} messages", file=sys.stderr, flush=True)
    return 0


Run = cg.run_main(main)
