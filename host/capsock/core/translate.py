"""The one place guest-side and real addresses meet (the `->` rules).

The guest names addresses on its side of the host's mapping table
(:mod:`capsock.policy.mapping`); the backend only ever sees real ones.
Every address crosses here, in the core, so any binding of the contract
(`capsock:net`, or a `wasi:sockets` host) gets the same translation:

* towards the backend: `remote` (a connect or send target), `local` (a
  bind address), each after its checks;
* towards the guest: `seen_peer` (accept's peer, a UDP sender, before
  `--peer-address=hidden` replaces it), `seen_local` (local-address);
* `admit` (the UDP receive filter) and `check_picked` (the port the kernel
  picked for a port-0 bind) judge a real address the guest did not name;
* `resolve`: a mapped name answers its guest-side address, no query.

Checks, in order (a denial makes no system call toward the target):

1. the checker of the capability (the host's policy, maybe narrowed by
   the guest's `restrict`) judges the **guest-side** address, allow and
   deny rules alike; a mapping is an allow rule for its guest side;
2. the real target is worked out (a real name is resolved now, by the
   host's resolver, never checked as a guest lookup);
3. the host's own checker judges the **real** address with its **deny**
   rules only (`Policy.check_denied`): a mapping cannot lead around a
   `--deny-outbound`. A guest's `restrict` layers never see real
   addresses (the guest could otherwise probe what hides behind a
   guest-side address by narrowing and watching for denials). A checker
   that is not a `Policy` (an embedder's) is asked the full question
   about the real address too: it must allow both.

An audit line names both: ``target`` is the guest-side address (what the
guest asked for), ``real`` the address the host used.
"""

from __future__ import annotations

import ipaddress

from ..addresses import IPAddress, SocketAddress
from ..errors import ErrorCode, NetError
from ..policy import Checker, Decision, Direction, Policy, Use, decision_of, special_kind
from .context import UNSPECIFIED_V4, UNSPECIFIED_V6, InstanceContext

#: How many real addresses of real names an instance remembers, to show a
#: sender behind one as its guest-side address (`seen_peer`).
MAX_NAMED_REAL = 1024


def _in_family(ip: IPAddress, ipv6: bool) -> IPAddress:
    """`ip` as a socket of the family `ipv6` names it: an IPv4 address on an
    IPv6 socket is IPv4-mapped; an IPv4-mapped one on an IPv4 socket is
    IPv4; an IPv6 address cannot be on an IPv4 socket."""
    if ipv6:
        if ip.version == 4:
            return ipaddress.IPv6Address(f"::ffff:{ip}")
        return ip
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped
        if mapped is None:
            raise NetError(ErrorCode.REMOTE_UNREACHABLE, f"{ip} is not reachable over IPv4")
        return mapped
    return ip


def _direction(use: Use) -> Direction:
    return Direction.INBOUND if use.operation in ("bind", "implicit-bind") else Direction.OUTBOUND


def real_denied(context: InstanceContext, use: Use, real: SocketAddress) -> Decision:
    """The host's own checker on the real address (step 3 of the module
    docstring): a `Policy`'s deny rules, any other checker's whole answer."""
    root = context.checker
    if isinstance(root, Policy):
        return root.check_denied(_direction(use), use.protocol, real.ip, real.port,
                                 context.resolved)
    return decision_of(root.check(use, real, context.resolved))


def _to_real_remote(context: InstanceContext, protocol: str, guest: SocketAddress,
                    ipv6: bool) -> tuple[SocketAddress, str] | None:
    """The real target of a guest-side remote address, with the mapping's
    rule; None when no mapping covers it. A real name is resolved here."""
    table = context.mappings
    if table is None:
        return None
    found = table.remote_to_real(protocol, guest.ip, guest.port)
    if found is None:
        return None
    mapping, real_ip, real_port = found
    if real_ip is None:
        real_ip = _resolve_real(context, mapping.real.name or "", ipv6)
    address = SocketAddress(_in_family(real_ip, ipv6), real_port, guest.flow_info)
    return address, mapping.text


def _resolve_real(context: InstanceContext, name: str, ipv6: bool) -> IPAddress:
    """A real name's address, asked now (so the mapping follows the real
    name's DNS), of the socket's family (an IPv6 socket takes IPv4 too,
    mapped). Remembered so a sender there is shown by its guest side."""
    resolver = context.resolver
    if resolver is None:
        raise NetError(ErrorCode.REMOTE_UNREACHABLE, f"no resolver for {name}")
    try:
        addresses = resolver.resolve(name, None)
    except NetError as error:
        raise NetError(ErrorCode.REMOTE_UNREACHABLE, f"{name}: {error}") from None
    usable = [a for a in addresses if special_kind(a) is None and (ipv6 or a.version == 4)]
    if not usable:
        raise NetError(ErrorCode.REMOTE_UNREACHABLE, f"{name}: no usable address")
    chosen = sorted(usable, key=lambda a: (a.version != (6 if ipv6 else 4)))[0]
    with context.lock:
        if len(context.named_real) >= MAX_NAMED_REAL:
            context.named_real.pop(next(iter(context.named_real)))
        context.named_real[ipaddress.ip_address(chosen)] = name
    return chosen


def remote(context: InstanceContext, checker: Checker, use: Use, guest: SocketAddress,
           ipv6: bool) -> tuple[SocketAddress, bool, Decision]:
    """Check the guest-side target of a connect or send, then translate it:
    the real address, whether a mapping applied, and the deciding decision
    (per-rule quotas count by its rule; it labels the socket's traffic,
    core/observe.py). Raises access-denied (audited) before any system
    call toward either address."""
    if context.mappings is None:
        return guest, False, context.require(checker, use, guest)
    decision = context.check(checker, use, guest)
    audited = not decision.allowed
    if audited:  # raises, but in audit mode, where it goes ahead, logged
        decision = context.refuse(use, guest, decision)
    routed = _to_real_remote(context, use.protocol, guest, ipv6)
    if routed is None:
        if not audited:
            context.record_allowed(use.operation, use.protocol, guest, decision)
        return guest, False, decision
    real, _rule = routed
    if special_kind(real.ip) is not None or real.port == 0:
        raise NetError(ErrorCode.REMOTE_UNREACHABLE, f"{guest} maps to an unusable address")
    return real, True, _require_real(context, use, guest, real, decision, audited)


def _require_real(context: InstanceContext, use: Use, guest: SocketAddress,
                  real: SocketAddress, allowed: Decision, audited: bool) -> Decision:
    """Step 3, audited with both addresses (`audited`: the guest side's
    would-deny line is written already, audit mode)."""
    denied = real_denied(context, use, real)
    if not denied.allowed:
        return context.refuse(use, guest, denied, real)
    if not audited:
        context.record_allowed(use.operation, use.protocol, guest, allowed, real=real)
    return allowed


def local(context: InstanceContext, checker: Checker, use: Use, guest: SocketAddress,
          ipv6: bool) -> tuple[SocketAddress, bool, Decision]:
    """Check a guest's bind address, then translate it (inbound mappings):
    the address the backend binds, whether a mapping applied, and the
    allowing decision (see `remote`)."""
    table = context.mappings
    if table is None:
        return guest, False, context.require(checker, use, guest)
    decision = context.check(checker, use, guest)
    audited = not decision.allowed
    if audited:  # raises, but in audit mode
        decision = context.refuse(use, guest, decision)
    found = table.local_to_real(use.protocol, guest.ip, guest.port)
    if found is None:
        if not audited:
            context.record_allowed(use.operation, use.protocol, guest, decision)
        return guest, False, decision
    _mapping, real_ip, real_port = found
    real = SocketAddress(_in_family(real_ip, ipv6), real_port, guest.flow_info, guest.scope_id)
    return real, True, _require_real(context, use, guest, real, decision, audited)


def seen_peer(context: InstanceContext, protocol: str, real: SocketAddress,
              ipv6: bool) -> SocketAddress:
    """A real peer as the guest sees it (before hidden peers apply)."""
    table = context.mappings
    if table is None:
        return real
    found = table.remote_to_guest(protocol, real.ip, real.port)
    if found is None:
        name = context.named_real.get(_plain(real.ip))
        found = table.named_to_guest(protocol, name, real.port) if name is not None else None
    if found is None:
        return real
    _mapping, guest_ip, guest_port = found
    return SocketAddress(_in_family(guest_ip, ipv6), guest_port, real.flow_info)


def seen_local(context: InstanceContext, protocol: str, real: SocketAddress, ipv6: bool,
               behind_mapping: bool) -> SocketAddress:
    """A real local address as the guest sees it. A socket the host bound
    implicitly for a connect or send through a mapping shows the
    unspecified address with its port: its real source address would say
    which real network the mapping leads to."""
    table = context.mappings
    if table is None:
        return real
    if behind_mapping:
        unspecified = UNSPECIFIED_V6 if ipv6 else UNSPECIFIED_V4
        return unspecified._replace(port=real.port)
    found = table.local_to_guest(protocol, real.ip, real.port)
    if found is None:
        return real
    _mapping, guest_ip, guest_port = found
    return SocketAddress(_in_family(guest_ip, ipv6), guest_port, real.flow_info, real.scope_id)


def check_picked(context: InstanceContext, checker: Checker, use: Use, real: SocketAddress,
                 ipv6: bool) -> None:
    """The port the kernel picked for a port-0 bind: its guest-side address
    by the checker, its real one by the host's deny rules (audited only
    when denied; the bind itself was)."""
    guest = seen_local(context, use.protocol, real, ipv6, False)
    context.require_quietly(checker, use, guest)
    if guest != real and context.mappings is not None:
        denied = real_denied(context, use, real)
        if not denied.allowed:
            context.refuse(use, guest, denied, real)


def admit(context: InstanceContext, checker: Checker, guest: SocketAddress,
          real: SocketAddress) -> Decision:
    """The UDP receive filter's decision on a sender: its guest-side
    address by the checker, its real one by the host's deny rules."""
    decision = context.check(checker, Use.UDP_RECEIVE, guest)
    if decision.allowed and guest != real:
        denied = real_denied(context, Use.UDP_RECEIVE, real)
        if not denied.allowed:
            return denied
    return decision


def resolve(context: InstanceContext, name: str) -> tuple[tuple[IPAddress, ...], str] | None:
    """A mapped name's guest-side addresses and what the mapping names on
    the real side (for the audit line), or None if `name` is not mapped."""
    table = context.mappings
    if table is None:
        return None
    addresses = table.resolve(name)
    if addresses is None:
        return None
    return addresses, table.real_of(name)


def _plain(ip: IPAddress) -> IPAddress:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


__all__ = ["MAX_NAMED_REAL", "admit", "check_picked", "local", "real_denied", "remote",
           "resolve", "seen_local", "seen_peer"]
