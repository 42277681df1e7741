"""`capsock policy explain`: which rule decides an operation, and why.

Pure: a config, an operation and a target in; lines of text out. The
decision is the one the host makes (`Policy.check` with the same typed
use), so the explanation cannot drift from enforcement: the rule it names
is the `Decision.rule` the audit log would carry, located in the file by
`PolicyConfig.where`, and a group rule says which of the group's networks
holds the address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import NamedTuple

from .checker import Decision, Use
from .config import PolicyConfig
from .rules import GroupHost, IPAddress, PolicyError, normalize_ip, parse_address_rule

__all__ = ["OPERATIONS", "explain", "parse_target"]

#: The operations `explain` takes: every typed use by its name.
OPERATIONS: dict[str, Use] = {use.value: use for use in Use}


class _Endpoint(NamedTuple):
    ip: IPAddress
    port: int


def parse_target(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` as (host text, port)."""
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535 or not host:
        raise PolicyError(f"'{text}' is not HOST:PORT (IPv6 in brackets)")
    return host, int(port)


def explain(config: PolicyConfig, operation: str, target: str,
            resolved: Mapping[str, frozenset[IPAddress]] | None = None) -> list[str]:
    """Lines saying what the host would decide for `operation` on `target`
    and which rule (and line of the file) decides it.

    A name as the host of a socket target is judged as the host judges
    it: resolving the name first, then each address in `resolved[name]`
    (what a guest's lookup would have returned; name rules match only
    those).
    """
    use = OPERATIONS.get(operation)
    if use is None:
        raise PolicyError(f"unknown operation '{operation}' (known: {', '.join(OPERATIONS)})")
    policy = config.policy()
    known = dict(resolved or {})
    if use is Use.RESOLVE:
        return _lines(config, f"resolve {target}", policy.check_resolve(target), None)
    host, port = parse_target(target)
    try:
        addresses: list[IPAddress] = [ipaddress.ip_address(host)]
    except ValueError:
        name = host.lower().rstrip(".")
        lines = _lines(config, f"resolve {name}", policy.check_resolve(name), None)
        addresses = sorted(known.get(name, frozenset()), key=lambda a: (a.version, int(a)))
        if not addresses:
            return [*lines, f"  {name} has no address here: pass --resolved {name}=ADDRESS "
                            "(what the guest's lookup returned) to judge the connection"]
        for address in addresses:
            shown = f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"
            lines += _lines(config, f"{operation} {shown} ({name})",
                            policy.check(use, _Endpoint(address, port), known), address)
        return lines
    address = addresses[0]
    return _lines(config, f"{operation} {target}",
                  policy.check(use, _Endpoint(address, port), known), address)


def _lines(config: PolicyConfig, what: str, decision: Decision,
           address: IPAddress | None) -> list[str]:
    verdict = "allowed" if decision.allowed else "denied"
    if not decision.allowed and config.audit_mode:
        verdict = "would be denied (audit mode: allowed and logged as would-deny)"
    if decision.rule is None:
        reason = "no rule allows it (deny by default)" if not decision.allowed else "allowed"
        return [f"{what}: {verdict}", f"  {reason}"]
    where = config.where(decision.rule)
    lines = [f"{what}: {verdict}",
             f"  by {decision.rule}" + (f"  ({where})" if where else "")]
    if decision.rule == "reply":
        lines[-1] = "  as a reply to a sender of this socket (no allow rule needed)"
    detail = _group_detail(decision.rule, address)
    if detail:
        lines.append(f"  {detail}")
    if not decision.allowed and decision.rule.startswith("deny-"):
        lines.append("  a deny rule wins over every allow rule")
    return lines


def _group_detail(rule: str, address: IPAddress | None) -> str | None:
    """For a group rule: which network of the group holds the address."""
    if address is None:
        return None
    kind, _, text = rule.partition(" ")
    if kind.endswith("resolve") or kind == "addr-pool":
        return None
    try:
        host = parse_address_rule(text).host
    except PolicyError:
        return None
    if not isinstance(host, GroupHost):
        return None
    found = host.member(normalize_ip(address))
    if found is None:
        return None
    member, network = found
    via = "" if member == normalize_ip(address) else f" (embedded in {address})"
    return f"{member}{via} is in group {host.group} ({network})"
