"""Python socket addresses <-> the WIT `ip-socket-address` variant.

Python side, as in the `socket` module: ``("127.0.0.1", 8080)`` for IPv4,
``("::1", 8080)`` or ``("::1", 8080, flowinfo, scope_id)`` for IPv6. Values
coming back from the host are 2-tuples for IPv4 and 4-tuples for IPv6, like
``socket.getsockname()``.

An address's text is parsed once on its way to the host: `to_wit` (or
`literal_to_wit`, which also tells a name from an IP literal) makes the
WIT value, and everything after it (`family_of`, `to_wit` again, the
socket calls) takes that value as it is.
"""

from __future__ import annotations

import ipaddress

from wit_world.imports.socket import (
    IpAddress,
    IpAddress_Ipv4,
    IpAddress_Ipv6,
    IpAddressFamily,
    IpSocketAddress,
    IpSocketAddress_Ipv4,
    IpSocketAddress_Ipv6,
    Ipv4SocketAddress,
    Ipv6SocketAddress,
)

from ._errors import NetError

__all__ = [
    "Address", "to_wit", "literal_to_wit", "from_wit", "ip_to_wit", "ip_from_wit",
    "family_of", "family_from", "parse_address", "format_address", "is_ip_literal",
    "wit_socket_address", "with_port",
]

Address = tuple[str, int] | tuple[str, int, int, int]
Family = IpAddressFamily | str
IP = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_ip(host: str) -> IP | None:
    """The IP literal `host` (``"10.0.0.1"``, ``"::1"``, ``"[::1]"``), or
    None when it is not one (a name)."""
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _ip(host: str) -> IP:
    ip = parse_ip(host)
    if ip is None:
        raise NetError("invalid-argument",
                       f"not an IP address: {host!r} (resolve names with resolve())")
    return ip


def is_ip_literal(host: str) -> bool:
    return parse_ip(host) is not None


def ip_to_wit(host: str) -> IpAddress:
    """``"10.0.0.1"`` / ``"::1"`` -> `IpAddress`."""
    ip = _ip(host)
    if isinstance(ip, ipaddress.IPv4Address):
        a, b, c, d = ip.packed
        return IpAddress_Ipv4((a, b, c, d))
    return IpAddress_Ipv6(_groups(ip))


def _groups(ip: ipaddress.IPv6Address) -> tuple[int, int, int, int, int, int, int, int]:
    n = int(ip)
    g = [(n >> (112 - 16 * i)) & 0xFFFF for i in range(8)]
    return (g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7])


def ip_from_wit(addr: IpAddress) -> str:
    """`IpAddress` -> ``"10.0.0.1"`` / ``"::1"``."""
    if isinstance(addr, IpAddress_Ipv4):
        # what str(IPv4Address) gives, without its parse and format in the
        # guest's interpreter (every accepted peer and datagram sender)
        a, b, c, d = addr.value
        return f"{a}.{b}.{c}.{d}"
    n = 0
    for group in addr.value:
        n = (n << 16) | group
    return str(ipaddress.IPv6Address(n))


def to_wit(address: Address | IpSocketAddress) -> IpSocketAddress:
    """``(host, port[, flowinfo, scope_id])`` -> `IpSocketAddress` (which
    is returned as it is)."""
    if isinstance(address, (IpSocketAddress_Ipv4, IpSocketAddress_Ipv6)):
        return address
    wit = literal_to_wit(address)
    if wit is None:
        _ip(address[0])  # raises, naming the host
    assert wit is not None
    return wit


def literal_to_wit(address: Address) -> IpSocketAddress | None:
    """Like `to_wit`, but None when the host is a name, not an IP literal
    (the one parse tells both apart)."""
    if not isinstance(address, tuple) or len(address) not in (2, 4):
        raise NetError("invalid-argument", f"expected (host, port), got {address!r}")
    host, port = address[0], address[1]
    if not isinstance(port, int) or not 0 <= port <= 0xFFFF:
        raise NetError("invalid-argument", f"bad port {port!r}")
    ip = parse_ip(host)
    if ip is None:
        return None
    if len(address) == 4:
        if ip.version == 4:
            raise NetError("invalid-argument", "flowinfo/scope_id given for IPv4")
        return wit_socket_address(ip, port, address[2], address[3])
    return wit_socket_address(ip, port)


def with_port(ip: IpAddress, port: int) -> IpSocketAddress:
    """The socket address of a WIT IP address (a resolver's answer) and
    `port`, with no text in between."""
    if isinstance(ip, IpAddress_Ipv4):
        return IpSocketAddress_Ipv4(Ipv4SocketAddress(port=port, address=ip.value))
    return IpSocketAddress_Ipv6(Ipv6SocketAddress(port=port, flow_info=0, address=ip.value,
                                                  scope_id=0))


def wit_socket_address(ip: IP, port: int, flow_info: int = 0,
                       scope_id: int = 0) -> IpSocketAddress:
    """The `IpSocketAddress` of an already parsed IP address."""
    if isinstance(ip, ipaddress.IPv4Address):
        a, b, c, d = ip.packed
        return IpSocketAddress_Ipv4(Ipv4SocketAddress(port=port, address=(a, b, c, d)))
    return IpSocketAddress_Ipv6(Ipv6SocketAddress(
        port=port, flow_info=flow_info, address=_groups(ip), scope_id=scope_id))


def from_wit(addr: IpSocketAddress) -> Address:
    """`IpSocketAddress` -> ``(host, port)`` or ``(host, port, flowinfo, scope_id)``."""
    if isinstance(addr, IpSocketAddress_Ipv4):
        return (ip_from_wit(IpAddress_Ipv4(addr.value.address)), addr.value.port)
    v6 = addr.value
    return (ip_from_wit(IpAddress_Ipv6(v6.address)), v6.port, v6.flow_info, v6.scope_id)


def family_of(address: Address | IpSocketAddress) -> IpAddressFamily:
    """The family of an address tuple's host (which must be an IP literal),
    or of a WIT address (read, not parsed)."""
    if isinstance(address, IpSocketAddress_Ipv4):
        return IpAddressFamily.IPV4
    if isinstance(address, IpSocketAddress_Ipv6):
        return IpAddressFamily.IPV6
    ip = _ip(address[0])
    return IpAddressFamily.IPV4 if ip.version == 4 else IpAddressFamily.IPV6


def family_from(family: Family) -> IpAddressFamily:
    """``"ipv4"``/``"ipv6"`` (or the enum itself) -> `IpAddressFamily`."""
    if isinstance(family, IpAddressFamily):
        return family
    try:
        return IpAddressFamily[family.upper()]
    except KeyError:
        raise NetError("invalid-argument", f"unknown address family {family!r}") from None


def parse_address(text: str) -> tuple[str, int]:
    """``"127.0.0.1:8080"`` / ``"[::1]:8080"`` / ``"example.com:80"`` -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 0xFFFF:
        raise NetError("invalid-argument", f"expected HOST:PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise NetError("invalid-argument", f"IPv6 needs brackets: [{host}]:{port}")
    return host, int(port)


def format_address(address: Address | IpSocketAddress) -> str:
    """``("::1", 80, 0, 0)`` -> ``"[::1]:80"``; also accepts the WIT variant."""
    if not isinstance(address, tuple):
        address = from_wit(address)
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
