"""Parsing the rules a guest passes to `restrict` (all three capabilities).

The syntax is the host's flags without the dashes: `allow-outbound=
tcp://127.0.0.1:80`, `deny-inbound=udp://*:*`, `allow-resolve=*.example.com`.
Each capability accepts only its own kind of rule, so a guest cannot hand a
UDP rule to a TCP network and believe it narrowed something. The result is
a policy layer stacked under the capability's checker (`narrow`): it can
only narrow. The core owns this; the binding only hands over the rule list.
"""

from __future__ import annotations

from ..errors import ErrorCode, NetError
from ..policy import Checker, Policy, PolicyError
from .context import InstanceContext

ADDRESS_FLAGS = frozenset({"allow-outbound", "allow-inbound", "deny-outbound", "deny-inbound"})
RESOLVE_FLAGS = frozenset({"allow-resolve", "deny-resolve"})


def parse_restriction(rules: list[str], protocol: str | None) -> Policy:
    """Parse `restrict` rules into a one-layer policy.

    `protocol` is `"tcp"` or `"udp"` for a network capability (address
    rules of that protocol only), or None for a resolver (resolve rules
    only). A malformed or foreign rule is `invalid-argument`.
    """
    flags: dict[str, list[str]] = {}
    for rule in rules:
        flag, sep, value = rule.partition("=")
        if protocol is None:
            ok = bool(sep) and flag in RESOLVE_FLAGS
            kind = "resolve"
        else:
            ok = (bool(sep) and flag in ADDRESS_FLAGS
                  and value.strip().lower().startswith(f"{protocol}://"))
            kind = protocol
        if not ok:
            raise NetError(ErrorCode.INVALID_ARGUMENT, f"not a {kind} rule: {rule!r}")
        flags.setdefault(flag.replace("-", "_"), []).append(value)
    try:
        return Policy.from_flags(**flags)
    except PolicyError as error:
        raise NetError(ErrorCode.INVALID_ARGUMENT, str(error)) from None


def restrict(context: InstanceContext, checker: Checker, rules: list[str],
             protocol: str | None) -> Checker:
    """`checker` narrowed by a guest's `restrict` rules (see
    `parse_restriction` for `protocol`), within the instance's
    `max_restrict_depth` (`InstanceContext.narrow`)."""
    return context.narrow(checker, protocol or "dns", lambda: parse_restriction(rules, protocol))


__all__ = ["parse_restriction", "restrict"]
