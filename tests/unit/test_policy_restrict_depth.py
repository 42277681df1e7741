"""`restrict` chains: shared layers, linear cost, and a depth cap (issue 15,
defect 5). Each restriction used to copy all its parent's layers (12,000
nested restricts: +573 MiB); now it links one node to the parent it
shares. Measured by counting what is allocated, never by timing."""

from __future__ import annotations

import ipaddress
import tracemalloc

import pytest

from capsock.backends.memory import MemoryBackend, VirtualNetwork
from capsock.binding.interfaces.ip_resolve_address import IpAddressResolver
from capsock.binding.interfaces.socket_tcp import TcpCapableNetwork
from capsock.binding.interfaces.socket_udp import UdpCapableNetwork
from capsock.core.audit import AuditLog
from capsock.core.context import InstanceContext
from capsock.core.limits import Limits
from capsock.core.resolve import NameResolver
from capsock.errors import ErrorCode, NetError
from capsock.policy import (
    Decision,
    Direction,
    Endpoint,
    Narrowed,
    Policy,
    Resolved,
    Use,
    narrow,
    restrict_depth,
)

OUT = Direction.OUTBOUND
HOME = ipaddress.ip_address("127.0.0.1")


class Opaque:
    """An embedder's checker (not a Policy)."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def check(self, use: Use, target: Endpoint | str, resolved: Resolved) -> Decision:
        return self.policy.check(use, target, resolved)


def test_a_chain_shares_its_parents_layers() -> None:
    """n nested restrictions, each kept alive, allocate O(n), not O(n^2):
    under 1 KiB per level for 2,000 levels (a copied tuple per level would
    be 2,000 * 1,000 * 8 bytes = 16 MB)."""
    base = Policy.from_flags(allow_outbound=["tcp://127.0.0.0/8:*"])
    child = Policy.from_flags(allow_outbound=["tcp://*:80"])
    levels = 2000
    tracemalloc.start()
    try:
        chain = [base]
        for _ in range(levels):
            chain.append(chain[-1].restrict(child))
        allocated, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert allocated < levels * 1024, allocated
    assert [policy.depth for policy in chain[:3]] == [1, 2, 3]
    assert restrict_depth(chain[-1]) == levels
    # the deepest still decides as its layers say
    assert chain[-1].check_address(OUT, "tcp", HOME, 80)
    assert not chain[-1].check_address(OUT, "tcp", HOME, 81)
    assert len(chain[-1].describe()) == levels + 1


def test_a_check_asks_each_layer_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """One decision walks the chain once: depth layer checks (O(depth))."""
    from capsock.policy import policy as module

    calls = []
    real = module._RuleSet.check_address

    def counting(self: object, *args: object) -> Decision:
        calls.append(1)
        return real(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(module._RuleSet, "check_address", counting)
    chain = Policy.from_flags(allow_outbound=["tcp://*:*"])
    for _ in range(300):
        chain = chain.restrict(Policy.from_flags(allow_outbound=["tcp://*:*"]))
    assert chain.check(Use.TCP_CONNECT, _Target(HOME, 80), {})
    assert len(calls) == 301


class _Target:
    def __init__(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> None:
        self.ip = ip
        self.port = port


def test_a_chain_over_a_custom_checker_is_one_wrapper() -> None:
    """Restricting a restricted embedder's checker stacks the layer instead
    of wrapping the wrapper: 5,000 levels still decide (a chain of
    wrappers overflowed Python's recursion at ~1,000), and as the stacked
    Policy would."""
    outer = Policy.from_flags(allow_outbound=["tcp://127.0.0.0/8:*"])
    layer = Policy.from_flags(allow_outbound=["tcp://*:80-90"])
    wrapped: object = Opaque(outer)
    stacked: object = outer
    for _ in range(5000):
        wrapped = narrow(wrapped, layer)  # type: ignore[arg-type]
        stacked = narrow(stacked, layer)  # type: ignore[arg-type]
    assert isinstance(wrapped, Narrowed) and isinstance(wrapped.parent, Opaque)
    assert restrict_depth(wrapped) == 5000  # type: ignore[arg-type]
    for port in (80, 91):
        target = _Target(HOME, port)
        assert (wrapped.check(Use.TCP_CONNECT, target, {})
                == stacked.check(Use.TCP_CONNECT, target, {}))  # type: ignore[attr-defined]


@pytest.mark.parametrize("capability", ["tcp", "udp", "dns"])
def test_restrict_past_the_depth_cap_is_limit_reached(capability: str) -> None:
    """At `max_restrict_depth` layers, one more `restrict` is
    `limit-reached` and an audit line `limit max_restrict_depth=N`; the
    capability in hand keeps working."""
    records: list[tuple[str, ...]] = []

    class Recording(AuditLog):
        def __init__(self) -> None:
            pass

        def record(self, instance: str, operation: str, protocol: str, target: str,
                   decision: Decision) -> None:
            records.append((operation, protocol, target, str(decision.rule)))

    policy = Policy.from_flags(allow_outbound=["tcp://*:*", "udp://*:*"], allow_resolve=["*"])
    context = InstanceContext(policy, MemoryBackend(VirtualNetwork()), audit=Recording(),
                              limits=Limits(max_restrict_depth=5))
    rules = {"tcp": ["allow-outbound=tcp://*:*"], "udp": ["allow-outbound=udp://*:*"],
             "dns": ["allow-resolve=*"]}[capability]
    handle: object = {"tcp": lambda: TcpCapableNetwork(context, policy),
                      "udp": lambda: UdpCapableNetwork(context, policy),
                      "dns": lambda: IpAddressResolver(NameResolver(context, policy))
                      }[capability]()
    for _ in range(5):
        handle = handle.restrict(rules)  # type: ignore[attr-defined]
    with pytest.raises(NetError) as refused:
        handle.restrict(rules)  # type: ignore[attr-defined]
    assert refused.value.code is ErrorCode.LIMIT_REACHED
    assert records == [("limit", capability, "restrict capability",
                        "limit max_restrict_depth=5")]
    # refused before parsing: a malformed rule past the cap is still the limit
    with pytest.raises(NetError) as malformed:
        handle.restrict(["nonsense"])  # type: ignore[attr-defined]
    assert malformed.value.code is ErrorCode.LIMIT_REACHED


def test_default_depth_and_validation() -> None:
    assert Limits().max_restrict_depth == 64
    assert Limits(max_restrict_depth=0).max_restrict_depth == 0
    with pytest.raises(ValueError, match="max_restrict_depth"):
        Limits(max_restrict_depth=-1)


def test_the_flag_reaches_the_host() -> None:
    from capsock.cli import ConfigError, build_parser, host_from_args, limits_from_args

    parser = build_parser()
    args = parser.parse_args(["run", "--max-restrict-depth", "3", "x.wasm"])
    assert limits_from_args(args).max_restrict_depth == 3
    assert limits_from_args(parser.parse_args(["run", "x.wasm"])).max_restrict_depth == 64
    with pytest.raises(ConfigError, match="--max-restrict-depth"):
        host_from_args(parser.parse_args(["run", "--max-restrict-depth", "-1", "x.wasm"]))
