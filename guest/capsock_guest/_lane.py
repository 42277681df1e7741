"""Bytes over the contract's string lanes: latin-1 (`send-latin1`,
`receive-latin1`) and hex (`send-hex`, `receive-hex`).

Every TCP send and receive of this library goes through a lane rather
than `list<u8>`: a Python host receives a string as one buffer but a
`list<u8>` as one value per byte (~60x slower at 64 KiB), and
componentize-py 0.25 never frees a `list<u8>` import argument (a guest
that sent 200 MiB grew by 192 MiB; see wit/socket-tcp.wit).

Which lane: a string crosses as UTF-8, so latin-1 is free for ASCII but
every byte above 127 is transcoded inside wasm (~0.8 ms per 64 KiB of
random bytes, each way); hex is ASCII whatever the bytes (~0.2 ms per
64 KiB each way for ``bytes.hex``/``bytes.fromhex``). Sends pick by
looking at the bytes (`bytes.isascii` is a word-at-a-time scan); receives
cannot look first, so each stream remembers what its last chunk was
(`Receiver`) and the first chunk after a switch pays the slower lane once.
"""

from __future__ import annotations

from codecs import latin_1_decode
from typing import Any

__all__ = ["to_lane", "from_lane", "send_bytes", "Receiver"]


def to_lane(data: Any) -> str:
    """bytes, bytearray or memoryview -> the latin-1 string that carries them."""
    return latin_1_decode(data)[0]


def from_lane(text: str) -> bytes:
    return text.encode("latin-1")


def send_bytes(raw: Any, data: Any) -> int:
    """One send of `data` on a TCP binding handle, through the cheaper lane.
    Raises the binding's `Err` like the binding does."""
    if data.__class__ is not bytes:
        data = bytes(data)
    if data.isascii():
        return raw.send_latin1(latin_1_decode(data)[0])  # type: ignore[no-any-return]
    return raw.send_hex(data.hex())  # type: ignore[no-any-return]


class Receiver:
    """Receives of one TCP stream, on the lane its last chunk called for."""

    __slots__ = ("binary",)

    def __init__(self) -> None:
        self.binary = False

    def receive(self, raw: Any, max_len: int) -> bytes:
        """One receive on a TCP binding handle (raises the binding's `Err`)."""
        if self.binary:
            data = bytes.fromhex(raw.receive_hex(max_len))
            if data and data.isascii():
                self.binary = False
            return data
        text = raw.receive_latin1(max_len)
        if not text.isascii():
            self.binary = True
        return text.encode("latin-1")  # type: ignore[no-any-return]
