"""Resolver backends: the system's resolver, or a DNS server the operator names.

Both take a name the core already validated, normalized and checked against
the policy, and return IP addresses only. Their failures are mapped onto the
three resolver error codes of the contract, so a guest can tell "no such
name" from "try again" from "the resolver is broken" -- and all three from
`access-denied`, which only the policy returns.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # dnspython costs ~65 ms to import: only `--dns` pays it
    import dns.message
    import dns.name
    import dns.rdatatype

from ..addresses import IPAddress, SocketAddress
from ..errors import ErrorCode, NetError

#: getaddrinfo's EAI_* codes -> error-code. EAI_NODATA and EAI_ADDRFAMILY
#: are glibc extensions, absent from some platforms' `socket` module.
_EAI_TO_CODE: dict[int, ErrorCode] = {
    socket.EAI_NONAME: ErrorCode.NAME_UNRESOLVABLE,
    socket.EAI_AGAIN: ErrorCode.TEMPORARY_RESOLVER_FAILURE,
    socket.EAI_FAIL: ErrorCode.PERMANENT_RESOLVER_FAILURE,
    socket.EAI_MEMORY: ErrorCode.OUT_OF_MEMORY,
}
for _name in ("EAI_NODATA", "EAI_ADDRFAMILY"):
    if hasattr(socket, _name):
        _EAI_TO_CODE[getattr(socket, _name)] = ErrorCode.NAME_UNRESOLVABLE


def _unique(addresses: list[IPAddress]) -> list[IPAddress]:
    """Drop duplicates, keeping the resolver's order (it may be meaningful)."""
    return list(dict.fromkeys(addresses))


class SystemResolver:
    """The host's own resolver, through `getaddrinfo`.

    `AI_ADDRCONFIG` is off so the answer does not depend on which
    interfaces happen to be configured (a loopback-only sandbox would
    otherwise never see AAAA records); `AI_NUMERICHOST` is never needed
    because IP literals are refused before a resolver is called.
    """

    def resolve(self, name: str, ipv6: bool | None) -> list[IPAddress]:
        family = socket.AF_UNSPEC if ipv6 is None else (
            socket.AF_INET6 if ipv6 else socket.AF_INET)
        try:
            infos = socket.getaddrinfo(name, None, family, socket.SOCK_STREAM, 0, 0)
        except socket.gaierror as error:
            code = _EAI_TO_CODE.get(error.errno or 0, ErrorCode.PERMANENT_RESOLVER_FAILURE)
            raise NetError(code, f"{name}: {error.strerror}") from None
        except (UnicodeError, OSError) as error:
            raise NetError(ErrorCode.PERMANENT_RESOLVER_FAILURE, f"{name}: {error}") from None
        addresses: list[IPAddress] = []
        for info_family, _, _, _, sockaddr in infos:
            if info_family in (socket.AF_INET, socket.AF_INET6):
                addresses.append(ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0]))
        if not addresses:
            raise NetError(ErrorCode.NAME_UNRESOLVABLE, name)
        return _unique(addresses)


class DnsResolver:
    """Real DNS over UDP to one server (`--dns HOST:PORT`), with dnspython.

    A and AAAA are asked separately (both when no family is requested), with
    recursion desired. Mapping: no answer before `timeout` ->
    `temporary-resolver-failure`; NXDOMAIN, or no record of the family ->
    `name-unresolvable`; SERVFAIL (and REFUSED) -> `temporary-resolver-failure`;
    any other rcode, or a reply that is not DNS -> `permanent-resolver-failure`.
    """

    def __init__(self, server: SocketAddress, timeout: float = 2.0) -> None:
        self.server = server
        self.timeout = timeout

    def resolve(self, name: str, ipv6: bool | None) -> list[IPAddress]:
        import dns.rdatatype

        types = [dns.rdatatype.A, dns.rdatatype.AAAA] if ipv6 is None else (
            [dns.rdatatype.AAAA] if ipv6 else [dns.rdatatype.A])
        addresses: list[IPAddress] = []
        for rdtype in types:
            addresses.extend(self._query(name, rdtype))
        if not addresses:
            raise NetError(ErrorCode.NAME_UNRESOLVABLE, f"{name}: no address records")
        return _unique(addresses)

    def _query(self, name: str, rdtype: dns.rdatatype.RdataType) -> list[IPAddress]:
        import dns.exception
        import dns.message
        import dns.query
        import dns.rcode

        query = dns.message.make_query(name + ".", rdtype)
        try:
            response = dns.query.udp(query, str(self.server.ip), port=self.server.port,
                                     timeout=self.timeout, raise_on_truncation=False)
        except dns.exception.Timeout:
            raise NetError(ErrorCode.TEMPORARY_RESOLVER_FAILURE,
                           f"{name}: no answer from {self.server}") from None
        except (dns.exception.DNSException, ValueError) as error:
            raise NetError(ErrorCode.PERMANENT_RESOLVER_FAILURE,
                           f"{name}: bad reply from {self.server}: {error}") from None
        except OSError as error:
            raise NetError(ErrorCode.TEMPORARY_RESOLVER_FAILURE,
                           f"{name}: {self.server}: {error.strerror or error}") from None
        rcode = response.rcode()
        if rcode == dns.rcode.NXDOMAIN:
            raise NetError(ErrorCode.NAME_UNRESOLVABLE, f"{name}: NXDOMAIN")
        if rcode in (dns.rcode.SERVFAIL, dns.rcode.REFUSED):
            raise NetError(ErrorCode.TEMPORARY_RESOLVER_FAILURE,
                           f"{name}: {dns.rcode.to_text(rcode)}")
        if rcode != dns.rcode.NOERROR:
            raise NetError(ErrorCode.PERMANENT_RESOLVER_FAILURE,
                           f"{name}: {dns.rcode.to_text(rcode)}")
        return answered_addresses(response, query.question[0].name, rdtype)


def answered_addresses(response: dns.message.Message, question: dns.name.Name,
                       rdtype: dns.rdatatype.RdataType) -> list[IPAddress]:
    """The addresses the answer gives *for the question*.

    Only records owned by the asked name, or by a name a CNAME chain from it
    leads to, count. A server that adds records for other names (a lying
    or poisoned one) must not get them remembered as this name's addresses:
    name rules (`tcp://svc.test:80`) allow exactly what the name resolved to.
    """
    import dns.rdatatype

    owners = {question}
    for _ in range(16):  # follow CNAMEs in any order, bounded
        grown = {rdata.target for rrset in response.answer
                 if rrset.rdtype == dns.rdatatype.CNAME and rrset.name in owners
                 for rdata in rrset} - owners
        if not grown:
            break
        owners |= grown
    addresses: list[IPAddress] = []
    for rrset in response.answer:
        if rrset.rdtype == rdtype and rrset.name in owners:
            addresses.extend(ipaddress.ip_address(rdata.address) for rdata in rrset)
    return addresses


class DictResolver:
    """Answers from a table: the simplest resolver an embedder can hand to
    `Host(resolver=...)`, and a deterministic one for tests.

    Keys are domain names (case and a trailing dot do not matter); values
    are IP address strings, or an :class:`ErrorCode` to make that name
    fail the way a real resolver would (`temporary-resolver-failure`...).
    Names absent from the table are `name-unresolvable`. The table is read
    at every query, so a caller may keep a reference and change it.
    """

    def __init__(self, table: Mapping[str, Iterable[str] | ErrorCode] | None = None) -> None:
        self.table: dict[str, list[IPAddress] | ErrorCode] = {}
        for name, answer in (table or {}).items():
            self.set(name, answer)

    def set(self, name: str, answer: Iterable[str] | ErrorCode) -> None:
        """Add or replace one name's answer (addresses are checked now)."""
        key = name.lower().rstrip(".")
        if isinstance(answer, ErrorCode):
            self.table[key] = answer
        else:
            self.table[key] = [ipaddress.ip_address(text) for text in answer]

    def resolve(self, name: str, ipv6: bool | None) -> list[IPAddress]:
        answer = self.table.get(name.lower().rstrip("."))
        if isinstance(answer, ErrorCode):
            raise NetError(answer, name)
        addresses = [ip for ip in answer or [] if ipv6 is None or (ip.version == 6) == ipv6]
        if not addresses:
            raise NetError(ErrorCode.NAME_UNRESOLVABLE, name)
        return _unique(addresses)


__all__ = ["DictResolver", "DnsResolver", "SystemResolver"]
