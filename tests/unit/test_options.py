"""The option registry (`capsock.backends.options`) and everything that reads it.

The registry is the one place an option is described; these tests check
that the WIT declares exactly its rows (with the WIT type of their kind),
that the binding made their methods, and that the core's validation and
both backends act on a row's data the same way.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from capsock.addresses import parse_host_port
from capsock.backends.base import Backend
from capsock.backends.memory import MemoryBackend, VirtualNetwork
from capsock.backends.options import (
    HOP_LIMIT,
    KEEP_ALIVE_ENABLED,
    OPTIONS,
    RECEIVE_BUFFER_SIZE,
    REUSE_ADDRESS,
    SECOND,
    OptionKind,
    options_of,
)
from capsock.backends.os import OsBackend, OsStreamSocket
from capsock.binding.interfaces.socket_tcp import TcpSocketResource
from capsock.binding.interfaces.socket_udp import UdpSocketResource
from capsock.core.context import InstanceContext
from capsock.core.limits import Limits
from capsock.core.tcp import TcpSocket, open_tcp
from capsock.core.udp import open_udp
from capsock.errors import ErrorCode, NetError
from capsock.policy import Policy

WIT = Path(__file__).resolve().parents[2] / "wit"
#: The WIT result type each kind of option is read as.
WIT_TYPES = {OptionKind.FLAG: {"bool"}, OptionKind.COUNT: {"u8", "u32", "u64"},
             OptionKind.BYTES: {"u64"}, OptionKind.DURATION: {"duration"}}
#: Socket methods that look like options but are modes, not options.
MODES = {"blocking", "timeout"}


def wit_options(protocol: str) -> dict[str, str]:
    """Getter name -> WIT type, for every getter with a `set-` twin."""
    text = (WIT / f"socket-{protocol}.wit").read_text()
    getters = dict(re.findall(r"^\s*([a-z-]+): func\(\) -> result<(\w+), error-code>;", text,
                              re.MULTILINE))
    setters = set(re.findall(r"^\s*set-([a-z-]+): func\(value: (?:\w+)\)", text, re.MULTILINE))
    return {name: getters[name] for name in setters if name in getters and name not in MODES}


@pytest.mark.parametrize("protocol", ["tcp", "udp"])
def test_the_wit_declares_exactly_the_registry_rows(protocol: str) -> None:
    declared = wit_options(protocol)
    assert set(declared) == {option.name for option in options_of(protocol)}
    for option in options_of(protocol):
        assert declared[option.name] in WIT_TYPES[option.kind], option.name


@pytest.mark.parametrize("resource, protocol",
                         [(TcpSocketResource, "tcp"), (UdpSocketResource, "udp")])
def test_the_binding_has_a_getter_and_setter_per_row(resource: type, protocol: str) -> None:
    for option in OPTIONS.values():
        name = option.name.replace("-", "_")
        has = protocol in option.protocols and not option.wasi_only  # capsock:net only
        assert hasattr(resource, name) is has, name
        assert hasattr(resource, f"set_{name}") is has, name


def test_one_hop_limit_name_on_both_protocols() -> None:
    assert "hop-limit" in wit_options("tcp") and "hop-limit" in wit_options("udp")
    assert not re.search(r"unicast-hop-limit", (WIT / "socket-udp.wit").read_text())


@pytest.fixture(params=["memory", "os"])
def context(request: pytest.FixtureRequest) -> Iterator[InstanceContext]:
    backend: Backend = (MemoryBackend(VirtualNetwork()) if request.param == "memory"
                        else OsBackend())
    policy = Policy.from_flags(allow_inbound=["tcp://127.0.0.1:*"])
    yield InstanceContext(policy, backend, limits=Limits(max_buffer_bytes=1 << 20))


def code_of(action: object) -> ErrorCode | None:
    assert callable(action)
    try:
        action()
    except NetError as error:
        return error.code
    return None


def tcp(context: InstanceContext) -> TcpSocket:
    return open_tcp(context, context.checker, False)


def test_below_the_minimum_is_invalid_argument(context: InstanceContext) -> None:
    sock = tcp(context)
    before = sock.get_option(HOP_LIMIT)
    assert code_of(lambda: sock.set_option(HOP_LIMIT, 0)) is ErrorCode.INVALID_ARGUMENT
    assert sock.get_option(HOP_LIMIT) == before
    assert code_of(lambda: sock.set_option(RECEIVE_BUFFER_SIZE, 0)) \
        is ErrorCode.INVALID_ARGUMENT
    sock.close()


def test_counts_and_flags_round_trip(context: InstanceContext) -> None:
    sock = tcp(context)
    sock.set_option(HOP_LIMIT, 42)
    assert sock.get_option(HOP_LIMIT) == 42
    sock.set_option(HOP_LIMIT, 1000)  # above the maximum: clamped, as the OS would refuse it
    assert sock.get_option(HOP_LIMIT) == 255
    sock.set_option(KEEP_ALIVE_ENABLED, 7)  # any non-zero flag is on
    assert sock.get_option(KEEP_ALIVE_ENABLED) == 1
    sock.close()


def test_buffer_sizes_are_capped_by_the_instance_limit(context: InstanceContext) -> None:
    sock = tcp(context)
    sock.set_option(RECEIVE_BUFFER_SIZE, 1 << 30)
    # Linux doubles what it is given (and caps at rmem_max); never above 2x the limit
    assert 0 < sock.get_option(RECEIVE_BUFFER_SIZE) <= 2 << 20
    sock.close()


def test_before_bind_options_are_refused_after_bind(context: InstanceContext) -> None:
    sock = tcp(context)
    sock.set_option(REUSE_ADDRESS, 1)
    sock.bind(parse_host_port("127.0.0.1:0"))
    assert code_of(lambda: sock.set_option(REUSE_ADDRESS, 0)) is ErrorCode.INVALID_STATE
    assert sock.get_option(REUSE_ADDRESS) == 1
    sock.close()


def test_an_option_of_the_other_protocol_is_not_supported(context: InstanceContext) -> None:
    udp = open_udp(context, context.checker, False)
    assert code_of(lambda: udp.set_option(KEEP_ALIVE_ENABLED, 1)) is ErrorCode.NOT_SUPPORTED
    assert code_of(lambda: udp.get_option(KEEP_ALIVE_ENABLED)) is ErrorCode.NOT_SUPPORTED
    udp.close()


def test_the_os_backend_sets_the_rows_level_and_name() -> None:
    """What the native side sees: getsockopt on the real descriptor."""
    context = InstanceContext(Policy.from_flags(), OsBackend())
    sock = tcp(context)
    raw = sock.sock
    assert isinstance(raw, OsStreamSocket)
    sock.set_option(HOP_LIMIT, 33)
    assert raw.raw.getsockopt(socket.IPPROTO_IP, socket.IP_TTL) == 33
    sock.set_option(KEEP_ALIVE_ENABLED, 1)
    assert raw.raw.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    sock.close()


def test_durations_are_whole_seconds_in_the_contracts_nanoseconds() -> None:
    assert SECOND == 1_000_000_000
    assert all(option.unit == (SECOND if option.kind is OptionKind.DURATION else 1)
               for option in OPTIONS.values())


def test_keep_alive_idle_time_is_whole_seconds_and_bounded(context: InstanceContext) -> None:
    idle = OPTIONS["keep-alive-idle-time"]
    sock = tcp(context)
    sock.set_option(idle, 30 * SECOND)
    assert sock.get_option(idle) == 30 * SECOND
    sock.set_option(idle, 1)  # 1 ns: rounded up, never down to 0
    assert sock.get_option(idle) == SECOND
    sock.set_option(idle, 1_500_000_000)
    assert sock.get_option(idle) == 2 * SECOND
    sock.set_option(idle, 10**6 * SECOND)  # clamped where Linux's TCP_KEEPIDLE ends
    assert sock.get_option(idle) == 32767 * SECOND
    assert code_of(lambda: sock.set_option(idle, 0)) is ErrorCode.INVALID_ARGUMENT
    sock.close()


def test_keep_alive_idle_time_reaches_the_kernel() -> None:
    sock = tcp(InstanceContext(Policy.from_flags(), OsBackend()))
    raw = sock.sock
    assert isinstance(raw, OsStreamSocket)
    sock.set_option(OPTIONS["keep-alive-idle-time"], 45 * SECOND)
    assert raw.raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 45
    sock.close()
