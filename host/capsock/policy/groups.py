"""Network groups: named address sets usable as the host of any rule.

``--deny-outbound=tcp://private:*`` is the SSRF guard in one line: the
host part of an address rule may be one of these names instead of an
address, a range or a domain name (`rules.GroupHost`). A group is a fixed
table of networks, written here once; SECURITY.md ("Network groups")
states the same boundary for operators and a unit test holds the two
together.

* ``private``: the ranges a site uses for its own hosts, never routed on
  the Internet: RFC 1918 (10/8, 172.16/12, 192.168/16), the carrier-grade
  NAT shared space (100.64/10, RFC 6598), IPv6 unique local addresses
  (fc00::/7, RFC 4193) and link-local (169.254/16, fe80::/10: the cloud
  metadata services live there).
* ``loopback``: 127/8 and ::1.
* ``metadata``: the cloud instance-metadata endpoints, exact addresses
  only: 169.254.169.254 (AWS, GCP, Azure, OCI, OpenStack...), 169.254.170.2
  (AWS ECS task metadata), 100.100.100.200 (Alibaba Cloud) and
  fd00:ec2::254 (AWS over IPv6). ``private`` already holds each of them;
  the group exists so that a policy that must allow private ranges can
  still refuse these.
* ``multicast``: 224/4 and ff00::/8.
* ``special``: every entry of IANA's IPv4 and IPv6 Special-Purpose Address
  Registries (as of 2024; multicast has its own registry and group), the
  globally reachable entries included (AS112, AMT, the anycast PCP and
  TURN addresses): an operator who denies ``special`` means "nothing the
  registries set apart".

**IPv6 forms that embed an IPv4 address are members when the IPv4 address
is** (a group is judged on the IPv4 address a translator or tunnel would
deliver to): the matcher in `rules.GroupHost` tests every address
`rules.embedded_ipv4` reads out of an IPv6 address (IPv4-mapped, which is
normalised to IPv4 first, IPv4-compatible, NAT64 well-known and
local-use, 6to4, Teredo). So ``::ffff:169.254.169.254``,
``64:ff9b::a9fe:a9fe`` and ``2002:a9fe:a9fe::1`` are in ``metadata``.
Other translation schemes (ISATAP ``::5efe:a.b.c.d`` interface ids, SIIT
with an operator-chosen prefix, DNS64 under a network-specific prefix
outside 64:ff9b:1::/48) embed an address at a place the host cannot know:
they are outside the boundary, as they are for every address rule.

Pure: tables and a lookup, no I/O.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from types import MappingProxyType
from typing import TypeAlias

__all__ = ["GROUPS", "GROUP_NAMES", "group_network"]

_Address: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network


def _nets(*texts: str) -> tuple[_Network, ...]:
    return tuple(ipaddress.ip_network(text) for text in texts)


_PRIVATE = _nets("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
                 "169.254.0.0/16", "fc00::/7", "fe80::/10")
_LOOPBACK = _nets("127.0.0.0/8", "::1/128")
_METADATA = _nets("169.254.169.254/32", "169.254.170.2/32", "100.100.100.200/32",
                  "fd00:ec2::254/128")
_MULTICAST = _nets("224.0.0.0/4", "ff00::/8")
# IANA IPv4 Special-Purpose Address Registry, every entry (nested entries
# such as 192.0.0.8/32 inside 192.0.0.0/24 are listed by their parent).
_SPECIAL_V4 = ("0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
               "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.31.196.0/24",
               "192.52.193.0/24", "192.88.99.0/24", "192.168.0.0/16", "192.175.48.0/24",
               "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "240.0.0.0/4",
               "255.255.255.255/32")
# IANA IPv6 Special-Purpose Address Registry, every entry (2001::/23 holds
# 2001::/32 Teredo, 2001:1::1-3, 2001:2::/48, 2001:3::/32, 2001:4:112::/48,
# 2001:10::/28, 2001:20::/28, 2001:30::/28).
_SPECIAL_V6 = ("::/128", "::1/128", "::ffff:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48",
               "100::/64", "100:0:0:1::/64", "2001::/23", "2001:db8::/32", "2002::/16",
               "2620:4f:8000::/48", "3fff::/20", "5f00::/16", "fc00::/7", "fe80::/10")
_SPECIAL = _nets(*_SPECIAL_V4, *_SPECIAL_V6)

#: Every group, by the name rules use for it: its networks.
GROUPS: Mapping[str, tuple[_Network, ...]] = MappingProxyType({
    "private": _PRIVATE,
    "loopback": _LOOPBACK,
    "metadata": _METADATA,
    "multicast": _MULTICAST,
    "special": _SPECIAL,
})

#: The names a rule's host part reads as a group (before any domain name).
GROUP_NAMES: frozenset[str] = frozenset(GROUPS)


def group_network(group: str, ip: _Address) -> _Network | None:
    """The network of `group` that holds `ip` itself, or None.

    `ip` must already be normalised (``::ffff:a.b.c.d`` as IPv4, no zone
    id); the IPv4 addresses an IPv6 address embeds are the caller's to try
    (`rules.GroupHost`), since the one table of embeddings lives there.
    Raises KeyError for an unknown group.
    """
    for network in GROUPS[group]:
        if ip.version == network.version and ip in network:
            return network
    return None
