"""Bytes over the `fast-io` extension's string lanes: latin-1
(`tcp-send-latin1`, `udp-receive-latin1`, ...) and hex (`tcp-send-hex`, ...).

Every TCP and UDP send and receive of this library goes through a lane
rather than the core's `list<u8>`: a Python host receives a string as one
buffer but a `list<u8>` as one value per byte (~60x slower at 64 KiB),
and componentize-py 0.25 never frees a `list<u8>` import argument (a guest
that sent 200 MiB grew by 192 MiB; README "How bytes cross").

Which lane: a string crosses as UTF-8, so latin-1 is free for ASCII but
every byte above 127 is transcoded inside wasm (~0.8 ms per 64 KiB of
random bytes, each way); hex is ASCII whatever the bytes (~0.2 ms per
64 KiB each way for ``bytes.hex``/``bytes.fromhex``). Sends pick by
looking at the bytes (`bytes.isascii` is a word-at-a-time scan); receives
cannot look first, so each socket remembers what its last chunk was
(`Receiver`) and the first chunk after a switch pays the slower lane once.

A guest built for the core world alone (no `fast-io`, e.g. to run on any
host of the core) gets the same functions over the core's `send` and
`receive`, and `splice` fails with `not-supported`.
"""

from __future__ import annotations

from codecs import latin_1_decode
from typing import Any

try:
    from wit_world.imports import fast_io
except ImportError:  # built for the core world: see the end of this module
    fast_io = None  # type: ignore[assignment]

from ._errors import NetError

__all__ = ["send_bytes", "send_datagram", "Receiver", "splice", "HAS_FAST_IO"]

#: Whether this guest was built with the `fast-io` extension.
HAS_FAST_IO: bool = fast_io is not None


def _as_bytes(data: Any) -> bytes:
    return data if data.__class__ is bytes else bytes(data)


def send_bytes(raw: Any, data: Any) -> int:
    """One send of `data` on a TCP binding handle, through the cheaper lane.
    Raises the binding's `Err` like the binding does."""
    data = _as_bytes(data)
    if data.isascii():
        return fast_io.tcp_send_latin1(raw, latin_1_decode(data)[0])
    return fast_io.tcp_send_hex(raw, data.hex())


def send_datagram(raw: Any, data: Any, remote_address: Any) -> int:
    """One datagram on a UDP binding handle (`remote_address` a WIT
    address or None for the connected peer), through the cheaper lane."""
    data = _as_bytes(data)
    if data.isascii():
        return fast_io.udp_send_latin1(raw, latin_1_decode(data)[0], remote_address)
    return fast_io.udp_send_hex(raw, data.hex(), remote_address)


class Receiver:
    """Receives of one socket, on the lane its last chunk called for."""

    __slots__ = ("binary",)

    def __init__(self) -> None:
        self.binary = False

    def receive(self, raw: Any, max_len: int) -> bytes:
        """One receive on a TCP binding handle (raises the binding's `Err`)."""
        if self.binary:
            data = bytes.fromhex(fast_io.tcp_receive_hex(raw, max_len))
            if data and data.isascii():
                self.binary = False
            return data
        text = fast_io.tcp_receive_latin1(raw, max_len)
        if not text.isascii():
            self.binary = True
        return text.encode("latin-1")

    def receive_datagram(self, raw: Any, max_len: int) -> tuple[bytes, Any]:
        """One datagram on a UDP binding handle: its bytes and the WIT
        address of its sender (raises the binding's `Err`)."""
        if self.binary:
            datagram = fast_io.udp_receive_hex(raw, max_len)
            data = bytes.fromhex(datagram.data)
            if data and data.isascii():
                self.binary = False
            return data, datagram.remote_address
        datagram = fast_io.udp_receive_latin1(raw, max_len)
        text = datagram.data
        if not text.isascii():
            self.binary = True
        return text.encode("latin-1"), datagram.remote_address


def splice(source: Any, target: Any, max_len: int) -> int:
    """`fast-io.splice` of two TCP binding handles (raises the binding's `Err`)."""
    return fast_io.splice(source, target, max_len)


if not HAS_FAST_IO:  # the core's `list<u8>` functions, same signatures
    def send_bytes(raw: Any, data: Any) -> int:
        return raw.send(_as_bytes(data))  # type: ignore[no-any-return]

    def send_datagram(raw: Any, data: Any, remote_address: Any) -> int:
        return raw.send(_as_bytes(data), remote_address)  # type: ignore[no-any-return]

    class Receiver:  # type: ignore[no-redef]
        """Receives of one socket through the core's `receive`."""

        __slots__ = ()

        def receive(self, raw: Any, max_len: int) -> bytes:
            return raw.receive(max_len)  # type: ignore[no-any-return]

        def receive_datagram(self, raw: Any, max_len: int) -> tuple[bytes, Any]:
            datagram = raw.receive(max_len)
            return datagram.data, datagram.remote_address

    def splice(source: Any, target: Any, max_len: int) -> int:
        raise NetError("not-supported",
                       "splice needs the fast-io extension (build for the world with it)")
