"""Resolver backends against a real DNS server on loopback, and the resolve
core's validation and policy order (no guest needed)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest

from capsock.addresses import parse_host_port
from capsock.backends.os import OsBackend
from capsock.backends.resolvers import DnsResolver, SystemResolver
from capsock.core.context import InstanceContext
from capsock.core.resolve import NameResolver, validate_name
from capsock.errors import ErrorCode, NetError
from capsock.policy import Policy

from ..dns_server import GARBAGE, SERVFAIL, SILENT, DnsServer

ZONE = {"svc.test": ["127.0.0.1"], "v6.test": ["::1"], "multi.test": ["127.0.0.2", "::1"]}


@pytest.fixture(scope="module")
def server() -> Iterator[DnsServer]:
    with DnsServer(ZONE) as dns:
        yield dns


def dns_resolver(server: DnsServer, timeout: float = 2.0) -> DnsResolver:
    return DnsResolver(parse_host_port(server.address), timeout)


@pytest.mark.parametrize(("name", "ipv6", "expected"), [
    ("svc.test", None, ["127.0.0.1"]),
    ("svc.test", False, ["127.0.0.1"]),
    ("v6.test", True, ["::1"]),
    ("multi.test", None, ["127.0.0.2", "::1"]),
    ("multi.test", True, ["::1"]),
])
def test_dns_resolver_answers(server: DnsServer, name: str, ipv6: bool | None,
                              expected: list[str]) -> None:
    got = dns_resolver(server).resolve(name, ipv6)
    assert got == [ipaddress.ip_address(e) for e in expected]


@pytest.mark.parametrize(("name", "ipv6", "code"), [
    ("nope.test", None, ErrorCode.NAME_UNRESOLVABLE),
    ("v6.test", False, ErrorCode.NAME_UNRESOLVABLE),
    (SERVFAIL, None, ErrorCode.TEMPORARY_RESOLVER_FAILURE),
    (GARBAGE, None, ErrorCode.PERMANENT_RESOLVER_FAILURE),
    (SILENT, None, ErrorCode.TEMPORARY_RESOLVER_FAILURE),
])
def test_dns_resolver_errors(server: DnsServer, name: str, ipv6: bool | None,
                             code: ErrorCode) -> None:
    with pytest.raises(NetError) as caught:
        dns_resolver(server, timeout=0.3).resolve(name, ipv6)
    assert caught.value.code is code


def test_system_resolver_localhost_and_unknown() -> None:
    assert ipaddress.ip_address("127.0.0.1") in SystemResolver().resolve("localhost", False)
    with pytest.raises(NetError) as caught:
        SystemResolver().resolve("no-such-name.invalid", None)
    assert caught.value.code in (ErrorCode.NAME_UNRESOLVABLE,
                                 ErrorCode.TEMPORARY_RESOLVER_FAILURE)


@pytest.mark.parametrize("name", [
    "", "127.0.0.1", "::1", "[::1]", "fe80::1%eth0", "127.1", "0x7f000001",
    "a" * 254, "evil\x00.test", "tab\t.test", "a..b", "b\u00fccher.de",
])
def test_validate_name_rejects(name: str) -> None:
    with pytest.raises(NetError) as caught:
        validate_name(name)
    assert caught.value.code is ErrorCode.INVALID_ARGUMENT


def test_validate_name_normalizes() -> None:
    assert validate_name("SVC.Test.") == "svc.test"
    assert validate_name(".".join(["a" * 63] * 3) + "." + "b" * 61) == (
        ".".join(["a" * 63] * 3) + "." + "b" * 61)  # 253 bytes: the longest


def test_denied_name_sends_no_query_and_allowed_is_remembered(server: DnsServer) -> None:
    context = InstanceContext(Policy.from_flags(allow_resolve=["svc.test"]), OsBackend(),
                              resolver=dns_resolver(server))
    core = NameResolver(context, context.checker)
    before = len(server.queries)
    with pytest.raises(NetError) as caught:
        core.resolve("multi.test", None)
    assert caught.value.code is ErrorCode.ACCESS_DENIED
    with pytest.raises(NetError) as caught:
        core.resolve("127.0.0.1", None)
    assert caught.value.code is ErrorCode.INVALID_ARGUMENT
    assert len(server.queries) == before
    assert core.resolve("SVC.test.", None) == [ipaddress.ip_address("127.0.0.1")]
    assert context.resolved == {"svc.test": frozenset({ipaddress.ip_address("127.0.0.1")})}


def test_only_records_for_the_question_or_its_cname_chain_count() -> None:
    """A reply that also carries records for other names grants nothing."""
    import dns.message
    import dns.rdatatype
    import dns.rrset

    from capsock.backends.resolvers import answered_addresses

    query = dns.message.make_query("svc.test.", "A")
    response = dns.message.make_response(query)
    response.answer.append(dns.rrset.from_text("real.test.", 60, "IN", "A", "127.0.0.5"))
    response.answer.append(dns.rrset.from_text("svc.test.", 60, "IN", "CNAME", "alias.test."))
    response.answer.append(dns.rrset.from_text("alias.test.", 60, "IN", "CNAME", "real.test."))
    response.answer.append(dns.rrset.from_text("other.test.", 60, "IN", "A", "127.0.0.9"))
    addresses = answered_addresses(response, query.question[0].name, dns.rdatatype.A)
    assert [str(ip) for ip in addresses] == ["127.0.0.5"]
