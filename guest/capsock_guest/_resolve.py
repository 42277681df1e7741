"""Name resolution through the `ip-address-resolver` capability."""

from __future__ import annotations

from wit_world.imports import ip_resolve_address
from wit_world.imports.socket import IpAddress

from ._address import Family, family_from, ip_from_wit
from ._errors import NetError, call

__all__ = ["Resolver", "resolver", "resolve"]


class Resolver:
    """The capability to resolve domain names to IP addresses."""

    def __init__(self, raw: ip_resolve_address.IpAddressResolver) -> None:
        self.raw = raw

    def resolve(self, name: str, family: Family | None = None) -> list[str]:
        """IP addresses of ``name`` as strings (no IP literals, no ports)."""
        return [ip_from_wit(a) for a in self.resolve_wit(name, family)]

    def resolve_wit(self, name: str, family: Family | None = None) -> list[IpAddress]:
        """Like `resolve`, as the WIT values (for a connect: no text)."""
        options = ip_resolve_address.ResolveOptions(
            address_family=None if family is None else family_from(family))
        return call(self.raw.resolve_addresses, name, options)

    def restrict(self, rules: list[str]) -> Resolver:
        """A narrower resolver, e.g. ``["allow-resolve=*.example.com"]``."""
        return Resolver(call(self.raw.restrict, rules))


_resolver: Resolver | None = None


def resolver() -> Resolver:
    """The instance's resolver; ``NetError("access-denied")`` if none."""
    global _resolver
    if _resolver is None:
        raw = ip_resolve_address.resolver()
        if raw is None:
            raise NetError("access-denied", "the host allows resolving no name")
        _resolver = Resolver(raw)
    return _resolver


def resolve(name: str, family: Family | None = None) -> list[str]:
    """`resolver().resolve(...)`."""
    return resolver().resolve(name, family)
