"""Pure network policy for capsock guests (no I/O of any kind).

The host parses its ``--allow-*``/``--deny-*``/``--addr-pool`` flags into a
:class:`Policy` once, then asks it about every socket operation and name
lookup, as a :class:`Checker` with a typed :class:`Use` (an embedder may
pass its own checker instead).  Keeping this logic free of sockets and DNS
makes it exhaustively testable and impossible to bypass by racing or
spoofing the network.
"""

from .checker import Checker, Decision, Endpoint, Resolved, Use, decision_of
from .groups import GROUP_NAMES, GROUPS
from .mapping import DEFAULT_VIRTUAL_RANGE, Mapping, MappingTable, is_mapping
from .policy import Direction, Narrowed, Policy, narrow, restrict_depth
from .rules import (
    AddressRule,
    AnyHost,
    GroupHost,
    HostMatcher,
    IPAddress,
    IPNetwork,
    LocalhostHost,
    NameHost,
    NetworkHost,
    PolicyError,
    PortRange,
    ResolveRule,
    SubdomainHost,
    embedded_ipv4,
    normalize_ip,
    normalize_query_name,
    parse_addr_pool,
    parse_address_rule,
    parse_resolve_rule,
    special_kind,
)

__all__ = [
    "DEFAULT_VIRTUAL_RANGE",
    "GROUPS",
    "GROUP_NAMES",
    "Mapping",
    "MappingTable",
    "is_mapping",
    "AddressRule",
    "AnyHost",
    "Checker",
    "Decision",
    "Direction",
    "Endpoint",
    "GroupHost",
    "HostMatcher",
    "IPAddress",
    "IPNetwork",
    "LocalhostHost",
    "NameHost",
    "Narrowed",
    "NetworkHost",
    "Policy",
    "PolicyError",
    "PortRange",
    "ResolveRule",
    "Resolved",
    "SubdomainHost",
    "Use",
    "decision_of",
    "embedded_ipv4",
    "narrow",
    "normalize_ip",
    "normalize_query_name",
    "parse_addr_pool",
    "parse_address_rule",
    "parse_resolve_rule",
    "restrict_depth",
    "special_kind",
]
