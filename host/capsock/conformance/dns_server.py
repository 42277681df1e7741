"""A tiny real DNS server on loopback (UDP, a thread, dnspython), for tests
and the conformance harness.

It serves a zone given as ``{"svc.test": ["127.0.0.1"], "v6.test": ["::1"]}``
(A and AAAA records; other names are NXDOMAIN) and records every query it
receives, so a test can prove that a denied lookup sent no query at all.
Special names exercise the resolver's error mapping: ``servfail.test``
answers SERVFAIL, ``garbage.test`` answers bytes that are not DNS, and
``silent.test`` never answers.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from types import TracebackType

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

SERVFAIL = "servfail.test"
GARBAGE = "garbage.test"
SILENT = "silent.test"


class DnsServer:
    """``with DnsServer(zone) as dns: ... dns.address ... dns.queries``."""

    def __init__(self, zone: dict[str, list[str]], host: str = "127.0.0.1") -> None:
        self.zone = {name.lower().rstrip("."): list(ips) for name, ips in zone.items()}
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.1)
        self.host = host
        self.port: int = self.sock.getsockname()[1]
        #: (name, type) of every query received, in order.
        self.queries: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        """``HOST:PORT`` for ``--dns``."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def names(self) -> list[str]:
        return [name for name, _ in self.queries]

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                wire, client = self.sock.recvfrom(4096)
            except (TimeoutError, OSError):
                continue
            try:
                query = dns.message.from_wire(wire)
            except Exception:
                continue
            question = query.question[0]
            name = question.name.to_text(omit_final_dot=True).lower()
            self.queries.append((name, dns.rdatatype.to_text(question.rdtype)))
            reply = self._answer(query, name, question.rdtype)
            if reply is not None:
                self.sock.sendto(reply, client)

    def _answer(self, query: dns.message.Message, name: str,
                rdtype: dns.rdatatype.RdataType) -> bytes | None:
        if name == SILENT:
            return None
        if name == GARBAGE:
            return b"\x00\x01 this is not a DNS message"
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if name == SERVFAIL:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif name not in self.zone:
            response.set_rcode(dns.rcode.NXDOMAIN)
        else:
            version = 6 if rdtype == dns.rdatatype.AAAA else 4
            ips = [ip for ip in self.zone[name] if ipaddress.ip_address(ip).version == version]
            if ips and rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                response.answer.append(dns.rrset.from_text_list(
                    query.question[0].name, 60, dns.rdataclass.IN, rdtype, ips))
        return bytes(response.to_wire())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()

    def __enter__(self) -> DnsServer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
