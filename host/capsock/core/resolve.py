"""Name resolution: validation and policy before the resolver backend.

Order of checks, each before anything later happens:

1. the name must be a domain name (`invalid-argument` for an IP literal,
   an empty or over-long name, control characters, bad labels), so no
   resolver ever parses an address or sees a name the rules matched
   differently;
2. the checker must allow resolving it (`access-denied` -- no query is sent,
   so a guest can tell policy from DNS trouble);
3. a name of a `->` rule answers its guest-side address without any
   query (`translate.resolve`); any other name, the resolver backend asks;
   the addresses it returns are remembered for
   the instance, which is what name rules (`tcp://svc.test:80`) match.
"""

from __future__ import annotations

import ipaddress

from ..addresses import IPAddress
from ..errors import ErrorCode, NetError
from ..policy import Checker, Use, normalize_query_name
from . import translate
from .context import InstanceContext

#: The longest domain name in presentation form (RFC 1035), in bytes.
MAX_NAME_BYTES = 253


def validate_name(name: str) -> str:
    """The normalized name (lower case, no trailing dot), or `invalid-argument`."""
    if not name:
        raise NetError(ErrorCode.INVALID_ARGUMENT, "empty name")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES + name.endswith("."):
        raise NetError(ErrorCode.INVALID_ARGUMENT, f"name longer than {MAX_NAME_BYTES} bytes")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise NetError(ErrorCode.INVALID_ARGUMENT, "control character in name")
    literal = name[1:-1] if name.startswith("[") and name.endswith("]") else name
    try:
        ipaddress.ip_address(literal.split("%", 1)[0])
    except ValueError:
        pass
    else:
        raise NetError(ErrorCode.INVALID_ARGUMENT,
                       f"{name!r} is an IP address, not a name: use it directly")
    normalized = normalize_query_name(name)
    if normalized is None:
        raise NetError(ErrorCode.INVALID_ARGUMENT, f"{name!r} is not a domain name")
    return normalized


class NameResolver:
    """A resolver capability: the instance's backend under a (narrowed) checker."""

    def __init__(self, context: InstanceContext, checker: Checker) -> None:
        self.context = context
        self.checker = checker

    def resolve(self, name: str, ipv6: bool | None) -> list[IPAddress]:
        """Addresses of `name` (only IPv6 ones if `ipv6`, IPv4 if False)."""
        normalized = validate_name(name)
        mapped = translate.resolve(self.context, normalized)
        self.context.require(self.checker, Use.RESOLVE, normalized,
                             real=None if mapped is None else mapped[1])
        # After the policy (a denied name costs nothing and stays
        # `access-denied`), before the resolver sends any query.
        if not self.context.resolve_bucket.take():
            raise self.context.limit_reached("resolve", "dns", normalized,
                                             "resolves_per_second")
        backend = self.context.resolver
        if mapped is not None:  # a `->` name: its guest-side address, no query
            addresses = list(mapped[0])
        elif backend is None:
            raise NetError(ErrorCode.NOT_SUPPORTED, "this host has no resolver")
        else:
            addresses = backend.resolve(normalized, ipv6)
        if ipv6 is not None:
            addresses = [a for a in addresses if (a.version == 6) == ipv6]
            if not addresses:
                raise NetError(ErrorCode.NAME_UNRESOLVABLE, f"{normalized}: no such address")
        self.context.remember_resolved(normalized, addresses)
        return addresses


__all__ = ["MAX_NAME_BYTES", "NameResolver", "validate_name"]
