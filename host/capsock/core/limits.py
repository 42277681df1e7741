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
from collections import OrderedDict
from collections.abc import Callable, Hashable
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

    #: Quotas per destination (`--policy` files' [limits], the flags of the
    #: same names; None: no quota). TCP connections the guest may hold open
    #: at once to one address and port (outbound connects; beyond:
    #: `limit-reached`, before any syscall).
    max_connections_per_destination: int | None = None
    #: Bytes per second the guest may move (TCP and UDP, sent and received
    #: together), a token bucket holding one second's worth: a send takes
    #: what the bucket holds (a partial send), a receive asks for no more;
    #: an empty bucket is `would-block` on a non-blocking socket and a wait
    #: (at most a second) on a blocking one.
    max_bytes_per_second: float | None = None
    #: The same, per remote address and port (each its own bucket).
    max_bytes_per_second_per_destination: float | None = None
    #: Connections one allow rule may carry at once, by rule text
    #: (``"tcp://db.example.com:5432"``): ``[outbound] allow = [{ rule =
    #: ..., max-connections = N }]`` or ``--max-rule-connections
    #: RULE=N``. Beyond: `limit-reached`.
    connections_per_rule: tuple[tuple[str, int], ...] = ()

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
        for name in ("max_connections_per_destination", "max_bytes_per_second",
                     "max_bytes_per_second_per_destination"):
            value = getattr(self, name)
            if value is not None and not value >= 1:
                raise ValueError(f"{name} must be at least 1")
        for rule, count in self.connections_per_rule:
            if count < 1:
                raise ValueError(f"connections_per_rule: {rule}: must be at least 1")

    def rule_quota(self, rule: str | None) -> int | None:
        """The connection quota of the allow rule a decision names
        (``"allow-outbound tcp://x:1"``), or None."""
        if rule is None or not self.connections_per_rule:
            return None
        text = rule.partition(" ")[2]
        for quota_rule, count in self.connections_per_rule:
            if quota_rule == text:
                return count
        return None


#: (flag, Limits field, type, help) of every numeric limit flag; a policy
#: file's [limits] keys are the same names without ``--``
#: (`capsock.policy.config.LIMIT_KEYS`, held equal by a test).
LIMIT_FLAGS: list[tuple[str, str, type, str]] = [
    ("--max-sockets", "max_sockets", int, "sockets a guest may hold open (quota)"),
    ("--max-backlog", "max_backlog", int, "largest listen backlog (cap)"),
    ("--max-io-bytes", "max_io_bytes", int, "bytes per receive or send call (cap)"),
    ("--max-buffer-bytes", "max_buffer_bytes", int,
     "largest socket send/receive buffer a guest may set (cap)"),
    ("--max-pollables", "max_pollables", int, "pollables per poll call (quota)"),
    ("--max-datagram", "max_datagram", int, "largest UDP payload (datagram-too-large beyond)"),
    ("--max-resolves-per-second", "resolves_per_second", float,
     "name resolutions per second, bursts up to one second's worth (quota)"),
    ("--max-restrict-depth", "max_restrict_depth", int,
     "restrict layers a capability may carry (quota; 0 forbids restrict)"),
    ("--max-memory", "max_memory", int,
     "bytes each guest linear memory may grow to (beyond: MemoryError in the guest); "
     "a Python guest starts at 12.4 MiB; 512 MiB leaves room for real data"),
    ("--max-call-bytes", "max_call_bytes", int,
     "longest string or list<u8> argument of one call, in bytes (limit-reached beyond)"),
    ("--max-connections-per-destination", "max_connections_per_destination", int,
     "TCP connections open at once to one address:port (quota: limit-reached)"),
    ("--max-bytes-per-second", "max_bytes_per_second", float,
     "bytes sent plus received per second, TCP and UDP (rate: partial sends, "
     "would-block when spent)"),
    ("--max-bytes-per-second-per-destination", "max_bytes_per_second_per_destination", float,
     "the same per remote address:port"),
    ("--max-tls-handshakes-per-second", "tls_handshakes_per_second", float,
     "TLS handshakes per second, client and host-terminated (quota)"),
    ("--max-tls-connections", "max_tls_connections", int,
     "TLS connections a guest may hold at once (quota)"),
    ("--tls-handshake-timeout", "tls_handshake_timeout", float,
     "seconds a TLS handshake may take (timeout beyond)"),
]


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


class ByteBucket:
    """`rate` bytes per second, holding up to one second's worth.

    `available` says how much a call may move (a partial send takes no
    more); `charge` spends what it moved, into debt of at most one
    second's worth (a datagram is never cut, concurrent calls may
    overdraw). Refilled lazily, like `TokenBucket`.
    """

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self._tokens = self.capacity
        self._clock = clock
        self._last = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now

    def available(self) -> int:
        with self._lock:
            self._refill()
            return max(0, int(self._tokens))

    def charge(self, used: int) -> None:
        """Spend `used` bytes already moved (a datagram is all or nothing),
        into debt of at most one second's worth: later calls wait it off."""
        with self._lock:
            self._refill()
            self._tokens = max(-self.capacity, self._tokens - used)

    def wait_time(self) -> float:
        """Seconds until one byte is there (0 if it is now)."""
        with self._lock:
            self._refill()
            return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate


#: Per-destination byte buckets one instance keeps (least recently used
#: dropped first: a guest cycling through destinations gets fresh buckets,
#: still under the instance's own bucket when there is one).
MAX_DESTINATION_BUCKETS = 4096


class QuotaState:
    """One instance's accounting for the per-destination quotas.

    Counts open connections per destination and per rule, and holds the
    byte buckets. The core asks it after the policy allowed an operation
    and before any syscall (core/context.py turns a "no" into
    `limit-reached` or `would-block`).
    """

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._per_destination: dict[Hashable, int] = {}
        self._per_rule: dict[str, int] = {}
        rate = limits.max_bytes_per_second
        self._bucket = ByteBucket(rate) if rate is not None else None
        self._destinations: OrderedDict[Hashable, ByteBucket] = OrderedDict()
        # Decided once (`Limits` is frozen): every send and receive asks.
        #: Whether any connection quota is set (else nothing is counted).
        self.counts_connections = (limits.max_connections_per_destination is not None
                                   or bool(limits.connections_per_rule))
        #: Whether any byte-rate quota is set (else nothing is metered).
        self.meters_bytes = (self._bucket is not None
                             or limits.max_bytes_per_second_per_destination is not None)

    def open_connection(self, destination: Hashable, rule: str | None
                        ) -> tuple[str, int] | None:
        """Count one connection, or say which quota it would exceed
        (`(name, value)`, nothing counted)."""
        per_destination = self.limits.max_connections_per_destination
        per_rule = self.limits.rule_quota(rule)
        with self._lock:
            if per_destination is not None and \
                    self._per_destination.get(destination, 0) >= per_destination:
                return "max_connections_per_destination", per_destination
            if per_rule is not None and rule is not None and \
                    self._per_rule.get(rule, 0) >= per_rule:
                return f"max-connections of {rule}", per_rule
            self._per_destination[destination] = self._per_destination.get(destination, 0) + 1
            if rule is not None:
                self._per_rule[rule] = self._per_rule.get(rule, 0) + 1
        return None

    def close_connection(self, destination: Hashable, rule: str | None) -> None:
        with self._lock:
            left = self._per_destination.get(destination, 0) - 1
            if left > 0:
                self._per_destination[destination] = left
            else:
                self._per_destination.pop(destination, None)
            if rule is not None:
                count = self._per_rule.get(rule, 0) - 1
                if count > 0:
                    self._per_rule[rule] = count
                else:
                    self._per_rule.pop(rule, None)

    def _buckets(self, destination: Hashable | None) -> list[ByteBucket]:
        buckets = [] if self._bucket is None else [self._bucket]
        rate = self.limits.max_bytes_per_second_per_destination
        if rate is not None and destination is not None:
            with self._lock:
                bucket = self._destinations.get(destination)
                if bucket is None:
                    bucket = self._destinations[destination] = ByteBucket(rate)
                    if len(self._destinations) > MAX_DESTINATION_BUCKETS:
                        self._destinations.popitem(last=False)
                self._destinations.move_to_end(destination)
            buckets.append(bucket)
        return buckets

    def allowance(self, destination: Hashable | None, wanted: int) -> int:
        """Bytes a call may move now, at most `wanted` (0: some bucket is
        spent). Nothing is taken: the caller `charge`s what it moved, so a
        blocking receive that waits for data holds no tokens meanwhile
        (concurrent calls may overdraw a little; the debt is waited off)."""
        return min([wanted, *(bucket.available() for bucket in self._buckets(destination))])

    def charge(self, destination: Hashable | None, used: int) -> None:
        for bucket in self._buckets(destination):
            bucket.charge(used)

    def wait_time(self, destination: Hashable | None) -> float:
        return max((bucket.wait_time() for bucket in self._buckets(destination)), default=0.0)


__all__ = ["LIMIT_FLAGS", "MAX_DESTINATION_BUCKETS", "ByteBucket", "Limits", "QuotaState",
           "TokenBucket"]
