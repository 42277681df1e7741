"""`capsock:net/ip-resolve-address`: not granted by this host yet.

`resolver()` returns none in this release (no resolver backend yet), so
no guest can hold a resolver handle; the methods exist for linking.
"""

from __future__ import annotations

from typing import Any, NoReturn

from ...core.context import InstanceContext
from ...errors import ErrorCode, NetError


class IpAddressResolver:
    """`resource ip-address-resolver` (never handed out yet)."""

    def resolve_addresses(self, name: str, options: Any) -> NoReturn:
        raise NetError(ErrorCode.NOT_SUPPORTED, "name resolution")

    def restrict(self, rules: list[str]) -> NoReturn:
        raise NetError(ErrorCode.NOT_SUPPORTED, "name resolution")


class IpResolveAddress:
    """The `ip-resolve-address` interface for one instance."""

    resources: dict[str, type] = {"ip-address-resolver": IpAddressResolver}

    def __init__(self, context: InstanceContext) -> None:
        self.context = context

    def resolver(self) -> None:
        return None
