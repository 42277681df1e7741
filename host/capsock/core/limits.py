"""Per-instance resource limits: what one guest may take from the host.

The policy says *where* a guest may talk; the limits say *how much* of the
host it may use while doing so. Without them a guest allowed anything at
all could open sockets until the host process runs out of descriptors
(starving every other instance of `capsock serve`), ask for a 1 GiB
kernel buffer per socket, or turn the host into a DNS amplifier.

Two kinds of limit, chosen so a well-behaved guest never notices them:

* **caps** silently shrink a request the WIT already lets the host shrink:
  `receive(max-len)` may return fewer bytes, `send` may accept fewer,
  `listen(backlog)` is a hint, buffer sizes are hints;
* **quotas** refuse with `limit-reached` and write an audit-log line
  (operation ``limit``, rule ``"limit <name>=<value>"``): open sockets,
  pollables per `poll`, resolutions per second, `restrict` depth. Datagrams over
  `max_datagram` fail with `datagram-too-large`, as the WIT says.

Every quota is checked *before* the backend is asked for anything, so
hitting one costs the host nothing.

Two limits bound the guest's *memory* rather than its sockets (SECURITY.md
section 5): `max_memory` is wasmtime's store limit on each linear memory
(a `memory.grow` past it fails, which CPython inside the guest reports as
`MemoryError`), and `max_call_bytes` refuses, with `limit-reached`, a
`string` or `list<u8>` argument longer than it before capsock converts it
(each conversion is a copy in the host).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """The limits of one instance (`Host(limits=...)`, `--max-*` flags).

    Defaults are generous for real servers (the http and kv apps never come
    near them) yet keep one instance far below the process's descriptor
    limit and memory.
    """

    #: Sockets a guest may hold open at once (created, accepted, or taken
    #: from a pre-open). Beyond: `limit-reached`.
    max_sockets: int = 1024
    #: The largest `listen` backlog (a larger request is capped).
    max_backlog: int = 1024
    #: The most bytes one `receive`/`peek` returns and one `send` accepts
    #: (a TCP send of more sends a prefix and says how much, as `send()`).
    max_io_bytes: int = 1 << 20
    #: The largest send/receive buffer a guest may ask for (a larger
    #: `set-*-buffer-size` is capped): bounds what the kernel, or the
    #: in-memory network, buffers per socket.
    max_buffer_bytes: int = 4 << 20
    #: Pollables one `poll` may wait on. Beyond: `limit-reached`.
    max_pollables: int = 4096
    #: The largest UDP payload a guest may send or receive.
    max_datagram: int = 65535
    #: Name resolutions per second (a token bucket holding up to one
    #: second's worth, so short bursts pass). Beyond: `limit-reached`.
    resolves_per_second: float = 100.0
    #: `restrict` layers a capability may carry (a restrict of a restricted
    #: capability adds one; each check walks every layer). Beyond:
    #: `limit-reached`. 0 forbids `restrict`.
    max_restrict_depth: int = 64
    #: The most bytes each linear memory of the guest may grow to (wasmtime's
    #: store limit; `memory.grow` beyond fails: `MemoryError` in a Python
    #: guest). A componentize-py guest starts at 12.4 MiB (198 pages) and
    #: the test suite's apps pass under a 64 MiB limit (test_apps_http, _kv,
    #: _syslog, test_lanes_splice, test_hostile_network: 70 tests); 512 MiB
    #: leaves room for real data while keeping a guest far from wasm32's
    #: 4 GiB and the host's RAM.
    max_memory: int = 512 << 20
    #: The longest `string` or `list<u8>` argument one host call takes, in
    #: bytes (UTF-8 bytes for a string). Beyond: `limit-reached`, before
    #: capsock copies it. A send takes at most `max_io_bytes` of it, but the
    #: guest library's `sendall` passes its whole remaining buffer to each
    #: send (hex: 2 characters per byte), so the default leaves room for a
    #: 32 MiB binary `sendall`; the host's copies stay within ~3x of it.
    max_call_bytes: int = 64 << 20
    #: TLS handshakes per second (client handshakes the guest starts and
    #: connections accepted on host-terminated listeners; a token bucket
    #: like `resolves_per_second`): each costs the host public-key
    #: cryptography. Beyond: `limit-reached` before any byte is sent (an
    #: accepted connection over it is closed unread).
    tls_handshakes_per_second: float = 200.0
    #: TLS connections a guest may hold at once (each holds TLS state in
    #: the host). Beyond: `limit-reached`, as above.
    max_tls_connections: int = 256
    #: Seconds a TLS handshake may take from its start (a client's first
    #: `client-handshake`, a server connection's accept) to its end,
    #: whatever the socket's own timeout: a stalled peer frees its
    #: connection after it. Beyond: `timeout`.
    tls_handshake_timeout: float = 30.0

    #: wasmtime store limits that are not memory: core instances, tables,
    #: elements per table and linear memories one guest may create. A
    #: componentize-py guest has 11-20 core instances, 2 tables (the larger
    #: of 5,752 elements) and 1 memory; these stop a component that
    #: instantiates without end or grows a table to gigabytes (8 bytes per
    #: element). `max_memory` bounds each memory, so a guest's linear
    #: memory in all is at most `max_memory * max_memories`.
    max_instances: int = 100
    max_tables: int = 100
    max_table_elements: int = 100_000
    max_memories: int = 4

    def __post_init__(self) -> None:
        for name in ("max_sockets", "max_backlog", "max_io_bytes", "max_buffer_bytes",
                     "max_pollables", "max_datagram", "max_memory", "max_call_bytes",
                     "max_instances", "max_tables", "max_table_elements", "max_memories",
                     "max_tls_connections"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.max_restrict_depth < 0:
            raise ValueError("max_restrict_depth must be at least 0")
        if self.max_datagram > 65535:
            raise ValueError("max_datagram cannot exceed 65535 (the largest UDP payload)")
        for name in ("resolves_per_second", "tls_handshakes_per_second",
                     "tls_handshake_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")


class TokenBucket:
    """`rate` events per second, bursts of up to `rate` (at least 1).

    Refilled lazily from a monotonic clock: no timer thread, so an idle or
    dead instance costs nothing.
    """

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self._tokens = self.capacity
        self._clock = clock
        self._last = clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Spend one token if there is one."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False


__all__ = ["Limits", "TokenBucket"]
