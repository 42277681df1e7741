"""Bytes over the contract's latin-1 string lane (`send-latin1`,
`receive-latin1`).

Every send and receive of this library goes through the lane rather than
`list<u8>`: a Python host receives a string as one buffer but a
`list<u8>` as one value per byte (~60x slower at 64 KiB), and
componentize-py 0.25 never frees a `list<u8>` import argument (a guest
that sent 200 MiB grew by 192 MiB; see wit/socket-tcp.wit). Latin-1 maps
bytes 0-255 to code points 0-255 and back, so nothing is lost.
"""

from __future__ import annotations

from codecs import latin_1_decode
from typing import Any


def to_lane(data: Any) -> str:
    """bytes, bytearray or memoryview -> the string that carries them."""
    return latin_1_decode(data)[0]


def from_lane(text: str) -> bytes:
    return text.encode("latin-1")
