"""core/translate.py over real loopback sockets, without a guest: which
checker judges which side, restrict layers, an embedder's checker, IPv6
sockets, and UDP replies through a mapping with hidden peers."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator

import pytest

from capsock.addresses import SocketAddress
from capsock.backends.os import OsBackend
from capsock.core.context import HIDDEN_PEER_V4, InstanceContext
from capsock.core.tcp import TcpSocket
from capsock.core.udp import UdpSocket
from capsock.errors import ErrorCode, NetError
from capsock.policy import Checker, Decision, Endpoint, MappingTable, Policy, Use, narrow


def at(text: str) -> SocketAddress:
    host, _, port = text.rpartition(":")
    return SocketAddress(ipaddress.ip_address(host.strip("[]")), int(port))


@pytest.fixture
def server() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.2", 0))
    sock.listen(8)
    sock.settimeout(5)
    yield sock
    sock.close()


def context_for(checker: Checker, table: MappingTable, hide: bool = False) -> InstanceContext:
    if isinstance(checker, Policy):
        outbound, inbound, resolve = table.allow_rules()
        checker = checker.granting(allow_outbound=outbound, allow_inbound=inbound,
                                   allow_resolve=resolve)
    return InstanceContext(checker, OsBackend(), hide_peers=hide, mappings=table)


def tcp(context: InstanceContext, checker: Checker | None = None,
        ipv6: bool = False) -> TcpSocket:
    return TcpSocket(context, checker or context.checker, context.backend.tcp_socket(ipv6), ipv6)


def code(action: object) -> ErrorCode | None:
    try:
        action()  # type: ignore[operator]
    except NetError as error:
        return error.code
    return None


def test_restrict_judges_the_guest_side_only(server: socket.socket) -> None:
    port = server.getsockname()[1]
    table = MappingTable.build(outbound=[f"tcp://10.225.0.9->127.0.0.2:{port}"])
    context = context_for(Policy.deny_all(), table)
    guest = at(f"10.225.0.9:{port}")
    # A guest's layer naming the real address neither allows nor denies it:
    # the guest cannot probe what hides behind 10.225.0.9 by narrowing.
    probing = narrow(context.checker, Policy.from_flags(
        allow_outbound=[f"tcp://10.225.0.9:{port}"], deny_outbound=["tcp://127.0.0.2:*"]))
    sock = tcp(context, probing)
    sock.connect(guest)
    assert sock.remote_address() == guest
    server.accept()[0].close()
    sock.close()
    # A layer that does not allow the guest side denies, as for any address.
    narrowed = narrow(context.checker, Policy.from_flags(allow_outbound=["tcp://127.0.0.2:*"]))
    assert code(lambda: tcp(context, narrowed).connect(guest)) is ErrorCode.ACCESS_DENIED


class Recording:
    """An embedder's checker: allows the connects it is told (and any
    other use: the implicit bind, the picked port), records the connects."""

    def __init__(self, allowed: set[str]) -> None:
        self.allowed = allowed
        self.seen: list[str] = []

    def check(self, use: Use, target: Endpoint | str, resolved: object) -> Decision:
        text = target if isinstance(target, str) else str(SocketAddress(target.ip, target.port))
        if use is not Use.TCP_CONNECT:
            return Decision(True, None)
        self.seen.append(f"{use.value} {text}")
        return Decision(text in self.allowed, "recording")


def test_an_embedders_checker_is_asked_about_both_sides(server: socket.socket) -> None:
    port = server.getsockname()[1]
    table = MappingTable.build(outbound=[f"tcp://10.225.0.9->127.0.0.2:{port}"])
    only_guest = Recording({f"10.225.0.9:{port}"})
    context = context_for(only_guest, table)
    assert code(lambda: tcp(context).connect(at(f"10.225.0.9:{port}"))) is \
        ErrorCode.ACCESS_DENIED
    assert only_guest.seen == [f"tcp-connect 10.225.0.9:{port}", f"tcp-connect 127.0.0.2:{port}"]
    both = Recording({f"10.225.0.9:{port}", f"127.0.0.2:{port}"})
    context = context_for(both, table)
    sock = tcp(context)
    sock.connect(at(f"10.225.0.9:{port}"))
    server.accept()[0].close()
    sock.close()


def test_ipv6_mappings_and_an_ipv4_mapping_from_an_ipv6_socket() -> None:
    with socket.socket(socket.AF_INET6) as server6:
        server6.bind(("::1", 0))
        server6.listen(8)
        server6.settimeout(5)
        port = server6.getsockname()[1]
        table = MappingTable.build(outbound=[f"tcp://[fd00:225::9]->[::1]:{port}",
                                             f"tcp://10.225.0.9->127.0.0.2:{port}"])
        context = context_for(Policy.deny_all(), table)
        sock = tcp(context, ipv6=True)
        guest = at(f"[fd00:225::9]:{port}")
        sock.connect(guest)
        server6.accept()[0].close()
        assert sock.remote_address() == guest
        assert str(sock.local_address()).startswith("[::]:")
        sock.close()
        # An IPv4-mapped guest address is judged and translated as IPv4, and
        # the IPv6-only socket then fails as for any IPv4-mapped address.
        mapped = at(f"[::ffff:10.225.0.9]:{port}")
        assert code(lambda: tcp(context, ipv6=True).connect(mapped)) is \
            ErrorCode.REMOTE_UNREACHABLE
        unmapped = InstanceContext(Policy.from_flags(allow_outbound=["tcp://*:*"]), OsBackend())
        assert code(lambda: tcp(unmapped, ipv6=True).connect(at(f"[::ffff:127.0.0.2]:{port}"))) \
            is ErrorCode.REMOTE_UNREACHABLE


def test_udp_replies_through_a_mapping_with_hidden_peers() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.bind(("127.0.0.2", 0))
        peer.settimeout(5)
        port = peer.getsockname()[1]
        table = MappingTable.build(outbound=[f"udp://10.225.0.9->127.0.0.2:53->{port}"])
        context = context_for(Policy.deny_all(), table, hide=True)
        sock = UdpSocket(context, context.checker, context.backend.udp_socket(False), False)
        sock.set_timeout(5)
        sock.send(b"ask", at("10.225.0.9:53"))
        data, sender = peer.recvfrom(100)
        assert data == b"ask"
        peer.sendto(b"answer", sender)
        assert sock.receive(100) == (b"answer", HIDDEN_PEER_V4)
        sock.send(b"thanks", HIDDEN_PEER_V4)  # the stand-in: back through the map
        assert peer.recvfrom(100) == (b"thanks", sender)
        sock.close()


def test_audit_mode_lets_a_real_side_deny_through_and_logs_it(server: socket.socket,
                                                              tmp_path: object) -> None:
    """Audit mode covers every denial, the real side of a mapping too
    (InstanceContext.refuse): the connect goes ahead, one would-deny line
    names both sides."""
    import json
    from pathlib import Path

    from capsock.core.audit import AuditLog

    port = server.getsockname()[1]
    table = MappingTable.build(outbound=[f"tcp://10.225.0.9->127.0.0.2:{port}"])
    policy = Policy.from_flags(deny_outbound=["tcp://127.0.0.2:*"])
    log_path = Path(str(tmp_path)) / "audit.jsonl"
    outbound, inbound, resolve = table.allow_rules()
    checker = policy.granting(allow_outbound=outbound, allow_inbound=inbound,
                              allow_resolve=resolve)
    enforcing = InstanceContext(checker, OsBackend(), mappings=table)
    assert code(lambda: tcp(enforcing).connect(at(f"10.225.0.9:{port}"))) \
        is ErrorCode.ACCESS_DENIED
    auditing = InstanceContext(checker, OsBackend(), mappings=table, audit_mode=True,
                               audit=AuditLog(str(log_path)))
    sock = tcp(auditing)
    sock.connect(at(f"10.225.0.9:{port}"))
    server.accept()[0].close()
    sock.close()
    assert auditing.audit is not None
    auditing.audit.close()  # lines are written by the log's thread: wait for them
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    connects = [line for line in lines if line["operation"] == "connect"]
    assert len(connects) == 1, lines
    assert connects[0]["would-deny"] is True
    assert connects[0]["real"] == f"127.0.0.2:{port}"
    assert connects[0]["rule"] == "deny-outbound tcp://127.0.0.2:*"
