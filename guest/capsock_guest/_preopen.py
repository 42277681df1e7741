"""The host's pre-opened sockets (`--tcplisten`, `--udpbind`).

The host hands each pre-open out once; this module keeps the ones taken
from the host but not yet claimed, so `preopened_tcp_listeners()` and
`preopened_udp_sockets()` each find theirs whatever the call order.
"""

from __future__ import annotations

from typing import Any

from wit_world.imports import socket as wsocket

__all__ = ["preopened_sockets", "take_preopens"]

_pending: list[tuple[str, wsocket.Socket]] = []


def _fetch() -> None:
    for raw, name in wsocket.preopened_sockets():
        _pending.append((name, raw))


def _protocol(sock: wsocket.Socket) -> str:
    # By name: the WIT enum `protocol` becomes a class `Protocol` that
    # shadows typing.Protocol in the generated module, which mypy rejects.
    value: Any = sock.protocol()
    return str(value.name).lower()


def take_preopens(protocol: str) -> list[tuple[str, wsocket.Socket]]:
    """Claim the pending pre-opens of one protocol (``"tcp"`` / ``"udp"``)."""
    _fetch()
    tagged = [(n, s, _protocol(s)) for n, s in _pending]
    _pending[:] = [(n, s) for n, s, p in tagged if p != protocol]
    return [(n, s) for n, s, p in tagged if p == protocol]


def preopened_sockets() -> list[tuple[str, wsocket.Socket]]:
    """All unclaimed pre-opened sockets as ``(name, handle)``, untyped.

    Turn a handle into a socket with `TcpSocket.from_preopened` /
    `UdpSocket.from_preopened`. Each is returned once.
    """
    _fetch()
    taken = list(_pending)
    _pending.clear()
    return taken
