"""Conversions between WIT-shaped values and the core's types.

Addresses are not here: the codec reads an `ip-socket-address` straight
into a `SocketAddress` and writes one back (codec.py, "addresses"), so the
binding hands the core its own type and gets it back.
"""

from __future__ import annotations

from ..errors import ErrorCode, NetError


def family_is_ipv6(family: str) -> bool:
    if family not in ("ipv4", "ipv6"):
        raise NetError(ErrorCode.INVALID_ARGUMENT, f"unknown family {family}")
    return family == "ipv6"


#: The longest wait the host honours: 2**31-1 ms (~24.8 days), the most
#: poll(2) takes (Python's `select.poll` raises OverflowError above it,
#: and `socket.settimeout` above ~292 years). A guest's `duration` is a
#: u64 of nanoseconds (up to ~584 years); the WIT makes only zero invalid,
#: so a longer one is clamped here, once, for every function taking one.
MAX_WAIT_SECONDS = (2**31 - 1) / 1000


def duration_to_seconds(nanoseconds: int | None) -> float | None:
    """A WIT `option<duration>` as seconds, clamped to `MAX_WAIT_SECONDS`."""
    if nanoseconds is None:
        return None
    return min(nanoseconds / 1e9, MAX_WAIT_SECONDS)


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
