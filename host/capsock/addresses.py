"""Socket addresses as the host core sees them, independent of WIT."""

from __future__ import annotations

import ipaddress
from typing import Any, NamedTuple

# The policy is the floor: the address types and bounds it judges are
# defined there once (it imports nothing of capsock's), and shared from here.
from .policy.rules import MAX_PORT, IPAddress

#: The largest UDP payload (a 16-bit length field): a receive never asks for
#: more, and the limits cannot allow more.
MAX_DATAGRAM = 65535


class SocketAddress(NamedTuple):
    """An IP address with a port (and IPv6 flow info and scope id).

    A NamedTuple: immutable and hashable like a frozen dataclass, but made
    per accept and per datagram without running Python code (and its class
    costs ~1 ms less to create on every start; see policy/rules.py).
    """

    ip: IPAddress
    port: int
    flow_info: int = 0
    scope_id: int = 0

    @property
    def is_ipv6(self) -> bool:
        return self.ip.version == 6

    def to_os(self) -> tuple[str, int] | tuple[str, int, int, int]:
        """The tuple Python's `socket` module takes for this family."""
        if self.is_ipv6:
            return (str(self.ip), self.port, self.flow_info, self.scope_id)
        return (str(self.ip), self.port)

    @classmethod
    def from_os(cls, addr: tuple[Any, ...]) -> SocketAddress:
        """Build from what `getsockname`/`accept`/`recvfrom` return (the
        port and IPv6 fields are ints already; the text through
        `_parse_os_host`, remembered)."""
        host: str = addr[0]
        ip = _PARSED.get(host)
        if ip is None:
            ip = _parse_os_host(host, len(addr) >= 4)
        if len(addr) >= 4:
            return cls(ip, addr[1], addr[2], addr[3])
        return cls(ip, addr[1])

    def __str__(self) -> str:
        if self.is_ipv6:
            return f"[{self.ip}]:{self.port}"
        return f"{self.ip}:{self.port}"


#: Addresses `from_os` parsed, by the text the OS gave: a server sees the
#: same few peers again and again, and parsing one costs more than the
#: rest of its accept (`ipaddress` parses octet by octet in Python: ~4 µs
#: of ~5 for `from_os`). Bounded: emptied when full.
_PARSED: dict[str, IPAddress] = {}
_PARSED_MAX = 1024


def _parse_os_host(host: str, ipv6: bool) -> IPAddress:
    """Parse and remember one host text of `from_os` (the family by the
    tuple's length, so the text is parsed once, as what it is: `ip_address`
    would try IPv4 first and raise on every IPv6 address). A zone
    (`fe80::1%eth0`) is dropped: the scope id is the fourth item."""
    ip: IPAddress = (ipaddress.IPv6Address(host.split("%", 1)[0]) if ipv6
                     else ipaddress.IPv4Address(host))
    if len(_PARSED) >= _PARSED_MAX:
        _PARSED.clear()
    _PARSED[host] = ip
    return ip


def parse_host_port(text: str) -> SocketAddress:
    """Parse `127.0.0.1:8080` or `[::1]:8080` (IP literals only).

    Raises ValueError with a message naming `text`.
    """
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{text!r} is not HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{text!r}: IPv6 addresses must be in brackets, e.g. [::1]:8080")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{text!r}: {host!r} is not an IP address") from None
    if not port_text.isdigit() or not 0 <= int(port_text) <= MAX_PORT:
        raise ValueError(f"{text!r}: port must be 0..{MAX_PORT}")
    return SocketAddress(ip, int(port_text))


__all__ = ["MAX_DATAGRAM", "MAX_PORT", "IPAddress", "SocketAddress", "parse_host_port"]
