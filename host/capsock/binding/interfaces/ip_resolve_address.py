"""`capsock:net/ip-resolve-address`: the resolver capability."""

from __future__ import annotations

from typing import Any

from ...core.context import InstanceContext
from ...core.resolve import NameResolver
from ..codec import Case
from ..restriction import parse_restriction
from ..wit_values import family_is_ipv6, ip_to_wit


class IpAddressResolver:
    """`resource ip-address-resolver`: WIT conversions around NameResolver."""

    def __init__(self, core: NameResolver) -> None:
        self.core = core

    def resolve_addresses(self, name: str, options: dict[str, Any]) -> list[Case]:
        family = options["address-family"]
        ipv6 = None if family is None else family_is_ipv6(family)
        return [ip_to_wit(ip) for ip in self.core.resolve(name, ipv6)]

    def restrict(self, rules: list[str]) -> IpAddressResolver:
        narrower = self.core.policy.restrict(parse_restriction(rules, None))
        return IpAddressResolver(NameResolver(self.core.context, narrower))


class IpResolveAddress:
    """The `ip-resolve-address` interface for one instance."""

    resources: dict[str, type] = {"ip-address-resolver": IpAddressResolver}

    def __init__(self, context: InstanceContext) -> None:
        self.context = context

    def resolver(self) -> IpAddressResolver | None:
        """None unless the policy allows resolving some name."""
        if not self.context.policy.grants_resolve():
            return None
        return IpAddressResolver(NameResolver(self.context, self.context.policy))
