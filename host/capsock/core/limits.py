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

    def __post_init__(self) -> None:
        for name in ("max_sockets", "max_backlog", "max_io_bytes", "max_buffer_bytes",
                     "max_pollables", "max_datagram"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.max_restrict_depth < 0:
            raise ValueError("max_restrict_depth must be at least 0")
        if self.max_datagram > 65535:
            raise ValueError("max_datagram cannot exceed 65535 (the largest UDP payload)")
        if not self.resolves_per_second > 0:
            raise ValueError("resolves_per_second must be positive")


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
