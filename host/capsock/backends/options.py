"""The socket options of the contract, in one table: :data:`OPTIONS`.

Everything that handles an option reads its row here, so adding an option
to capsock is the WIT lines, one row below and one row in the guest's BSD
layer (`capsock_guest/bsd.py`):

- the binding makes the getter and setter of `tcp-socket` / `udp-socket`
  from the row (`keep-alive-enabled` / `set-keep-alive-enabled`) for the
  protocols it names (`binding/interfaces/common.py`);
- the core validates and normalises a value from the row's bounds and
  kind, and refuses a `before_bind` option after bind (`core/common.py`);
- the OS backend calls `setsockopt` / `getsockopt` with the row's level
  and name, converting durations to the OS's seconds; the in-memory
  backend starts a socket with the row's default and keeps what is set.

A row is a value, not a string: code names an option by its row
(``options.NO_DELAY``), so a misspelling fails at import (and under mypy),
not at run time as `not-supported`.

Values below the binding are ints in the contract's units: 0/1 for flags,
bytes, hops, nanoseconds for durations. This module sits on the backends'
floor because both the backends and the core above them read it.
"""

from __future__ import annotations

import enum
import socket
from typing import NamedTuple

#: One second in the contract's duration unit (nanoseconds).
SECOND = 1_000_000_000


class OptionKind(enum.Enum):
    """How a value crosses the contract, and how the host normalises it."""

    #: WIT `bool`; 0 or 1 below the binding.
    FLAG = "flag"
    #: WIT unsigned integer, kept as given within the bounds.
    COUNT = "count"
    #: WIT `u64` bytes, capped at the instance's `max_buffer_bytes`; the
    #: OS may round (Linux doubles buffer sizes).
    BYTES = "bytes"
    #: WIT `duration` (nanoseconds); rounded up to whole seconds, the unit
    #: the OS counts in, so a read returns what the OS really holds.
    DURATION = "duration"


class SocketOption(NamedTuple):
    """One option of the contract: its WIT name and what every layer needs.

    `minimum`: smaller values are `invalid-argument`. `maximum`: larger
    values are clamped to it (the OS would refuse them). `default`: what a
    new socket of a backend without an OS reports (None: the backend's own
    choice, e.g. the virtual network's buffer size). `os` / `os_ipv6`:
    the `(level, optname)` of `setsockopt` for IPv4 / IPv6 sockets.
    `before_bind`: only settable on an unbound socket (`invalid-state`).
    `wasi_only`: `wasi:sockets` has it and `capsock:net` does not.
    """

    name: str
    kind: OptionKind
    protocols: frozenset[str]
    os: tuple[int, int]
    os_ipv6: tuple[int, int] | None = None
    minimum: int = 0
    maximum: int | None = None
    default: int | None = 0
    before_bind: bool = False
    wasi_only: bool = False

    @property
    def unit(self) -> int:
        """Contract units per OS unit (a duration's OS unit is a second)."""
        return SECOND if self.kind is OptionKind.DURATION else 1

    def os_name(self, ipv6: bool) -> tuple[int, int]:
        """`(level, optname)` for a socket of this family."""
        return self.os_ipv6 if ipv6 and self.os_ipv6 is not None else self.os


_TCP = frozenset({"tcp"})
_BOTH = frozenset({"tcp", "udp"})
_F, _C, _B, _D = OptionKind.FLAG, OptionKind.COUNT, OptionKind.BYTES, OptionKind.DURATION

#: WIT name -> option, in the order of the rows below.
OPTIONS: dict[str, SocketOption] = {}


def _row(option: SocketOption) -> SocketOption:
    OPTIONS[option.name] = option
    return option


# One row per option: WIT name, kind, protocols, (level, optname)[, for IPv6], bounds, default.
KEEP_ALIVE_ENABLED = _row(SocketOption("keep-alive-enabled", _F, _TCP,
                                       (socket.SOL_SOCKET, socket.SO_KEEPALIVE)))
KEEP_ALIVE_IDLE_TIME = _row(SocketOption("keep-alive-idle-time", _D, _TCP,
                                         (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE), minimum=1,
                                         maximum=32767 * SECOND, default=7200 * SECOND))
KEEP_ALIVE_INTERVAL = _row(SocketOption("keep-alive-interval", _D, _TCP,
                                        (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL), minimum=1,
                                        maximum=32767 * SECOND, default=75 * SECOND,
                                        wasi_only=True))
KEEP_ALIVE_COUNT = _row(SocketOption("keep-alive-count", _C, _TCP,
                                     (socket.IPPROTO_TCP, socket.TCP_KEEPCNT), minimum=1,
                                     maximum=127, default=9, wasi_only=True))
NO_DELAY = _row(SocketOption("no-delay", _F, _TCP, (socket.IPPROTO_TCP, socket.TCP_NODELAY)))
HOP_LIMIT = _row(SocketOption("hop-limit", _C, _BOTH, (socket.IPPROTO_IP, socket.IP_TTL),
                              (socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS), minimum=1,
                              maximum=255, default=64))
RECEIVE_BUFFER_SIZE = _row(SocketOption("receive-buffer-size", _B, _BOTH,
                                        (socket.SOL_SOCKET, socket.SO_RCVBUF), minimum=1,
                                        default=None))
SEND_BUFFER_SIZE = _row(SocketOption("send-buffer-size", _B, _BOTH,
                                     (socket.SOL_SOCKET, socket.SO_SNDBUF), minimum=1,
                                     default=None))
REUSE_ADDRESS = _row(SocketOption("reuse-address", _F, _BOTH,
                                  (socket.SOL_SOCKET, socket.SO_REUSEADDR), before_bind=True))


def options_of(protocol: str, wasi: bool = False) -> list[SocketOption]:
    """The options a `tcp` or `udp` socket of `capsock:net` has (with
    `wasi`: of `wasi:sockets`, which has a few more)."""
    return [option for option in OPTIONS.values()
            if protocol in option.protocols and (wasi or not option.wasi_only)]


__all__ = ["OPTIONS", "SECOND", "OptionKind", "SocketOption", "options_of"]
