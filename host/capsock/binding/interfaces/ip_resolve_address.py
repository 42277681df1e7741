"""`capsock:net/ip-resolve-address`: the resolver capability."""

from __future__ import annotations

from typing import Any

from ...addresses import IPAddress
from ...core.context import InstanceContext
from ...core.resolve import NameResolver
from ...core.restrict import restrict
from ..wit_values import family_is_ipv6


class IpAddressResolver:
    """`resource ip-address-resolver`: WIT conversions around NameResolver."""

    def __init__(self, core: NameResolver) -> None:
        self.core = core

    def resolve_addresses(self, name: str, options: dict[str, Any]) -> list[IPAddress]:
        family = options["address-family"]
        ipv6 = None if family is None else family_is_ipv6(family)
        return self.core.resolve(name, ipv6)

    def restrict(self, rules: list[str]) -> IpAddressResolver:
        narrower = restrict(self.core.context, self.core.checker, rules, None)
        return IpAddressResolver(NameResolver(self.core.context, narrower))


class IpResolveAddress:
    """The `ip-resolve-address` interface for one instance."""

    resources: dict[str, type] = {"ip-address-resolver": IpAddressResolver}

    def __init__(self, context: InstanceContext) -> None:
        self.context = context

    def resolver(self) -> IpAddressResolver | None:
        """None unless the checker may allow resolving some name."""
        if not self.context.grants("dns"):
            return None
        return IpAddressResolver(NameResolver(self.context, self.context.checker))
