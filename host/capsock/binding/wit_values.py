"""Conversions between WIT-shaped values and the core's types."""

from __future__ import annotations

import ipaddress
from typing import Any

from ..addresses import IPAddress, SocketAddress
from ..errors import ErrorCode, NetError
from .codec import Case


def ip_from_wit(value: Case) -> IPAddress:
    if value.tag == "ipv4":
        return ipaddress.IPv4Address(bytes(value.value))
    groups = value.value
    return ipaddress.IPv6Address(b"".join(g.to_bytes(2, "big") for g in groups))


def ip_to_wit(ip: IPAddress) -> Case:
    if isinstance(ip, ipaddress.IPv4Address):
        return Case("ipv4", tuple(ip.packed))
    packed = ip.packed
    return Case("ipv6", tuple(int.from_bytes(packed[i:i + 2], "big") for i in range(0, 16, 2)))


def address_from_wit(value: Case) -> SocketAddress:
    record: dict[str, Any] = value.value
    if value.tag == "ipv4":
        return SocketAddress(ip_from_wit(Case("ipv4", record["address"])), record["port"])
    ip = ip_from_wit(Case("ipv6", record["address"]))
    return SocketAddress(ip, record["port"], record["flow-info"], record["scope-id"])


def address_to_wit(address: SocketAddress) -> Case:
    wire = ip_to_wit(address.ip)
    if wire.tag == "ipv4":
        return Case("ipv4", {"port": address.port, "address": wire.value})
    return Case("ipv6", {"port": address.port, "flow-info": address.flow_info,
                         "address": wire.value, "scope-id": address.scope_id})


def family_is_ipv6(family: str) -> bool:
    if family not in ("ipv4", "ipv6"):
        raise NetError(ErrorCode.INVALID_ARGUMENT, f"unknown family {family}")
    return family == "ipv6"


def duration_to_seconds(nanoseconds: int | None) -> float | None:
    return None if nanoseconds is None else nanoseconds / 1e9


def bytes_from_latin1(text: str) -> bytes:
    """The bytes a `*-latin1` lane carries: one code point (0-255) each."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError as error:
        raise NetError(ErrorCode.INVALID_ARGUMENT,
                       f"code point {ord(text[error.start]):#x} at {error.start} is not a byte"
                       ) from None


def bytes_to_latin1(data: bytes) -> str:
    return data.decode("latin-1")


def bytes_from_hex(text: str) -> bytes:
    """The bytes a `*-hex` lane carries: two hex digits each, nothing else
    (`bytes.fromhex` alone would skip whitespace)."""
    try:
        data = bytes.fromhex(text)
    except ValueError as error:
        raise NetError(ErrorCode.INVALID_ARGUMENT, f"not hexadecimal: {error}") from None
    if len(data) * 2 != len(text):
        raise NetError(ErrorCode.INVALID_ARGUMENT,
                       "not hexadecimal: whitespace or an odd number of digits")
    return data


def bytes_to_hex(data: bytes) -> str:
    return data.hex()
