"""`wasi:clocks` (monotonic-clock, wall-clock) and `wasi:random` (random,
insecure, insecure-seed) 0.2.

Instants and durations are nanoseconds (`u64`); a monotonic pollable is a
deadline on `time.monotonic`, which `wasi:io/poll` waits for
(core/wasi_poll.py). Random bytes come from the OS CSPRNG (`os.urandom`)
for both `random` and `insecure`: the host has no cheaper source worth a
second code path.
"""

from __future__ import annotations

import os
import time
from typing import Any

from ..registrar import GuestTrap
from .io import WasiPollable
from .state import WasiState

_NS = 1_000_000_000


class MonotonicClock:
    """`wasi:clocks/monotonic-clock`."""

    resources: dict[str, type] = {}

    def __init__(self, state: WasiState) -> None:
        self.state = state

    def now(self) -> int:
        return time.monotonic_ns()

    def resolution(self) -> int:
        return max(1, int(time.get_clock_info("monotonic").resolution * _NS))

    def subscribe_instant(self, when: int) -> WasiPollable:
        deadline = when / _NS
        return WasiPollable(self.state.context, lambda: deadline, self.state.stopped)

    def subscribe_duration(self, when: int) -> WasiPollable:
        deadline = time.monotonic() + when / _NS
        return WasiPollable(self.state.context, lambda: deadline, self.state.stopped)


class WallClock:
    """`wasi:clocks/wall-clock`."""

    resources: dict[str, type] = {}

    def __init__(self, state: WasiState) -> None:
        self.state = state

    def now(self) -> dict[str, Any]:
        ns = time.time_ns()
        return {"seconds": ns // _NS, "nanoseconds": ns % _NS}

    def resolution(self) -> dict[str, Any]:
        ns = max(1, int(time.get_clock_info("time").resolution * _NS))
        return {"seconds": ns // _NS, "nanoseconds": ns % _NS}


class Random:
    """`wasi:random/random` and `wasi:random/insecure` (same functions but
    for their names)."""

    resources: dict[str, type] = {}

    def __init__(self, state: WasiState) -> None:
        self.state = state

    def _bytes(self, length: int) -> bytes:
        """Exactly `length` bytes, as the spec says; more than the
        instance's per-call cap traps (the WIT has no error to return,
        and a short answer would break its contract silently)."""
        cap = self.state.context.limits.max_call_bytes
        if length > cap:
            raise GuestTrap(f"get-random-bytes({length}) exceeds max_call_bytes={cap}")
        return os.urandom(length)

    def get_random_bytes(self, len: int) -> bytes:  # noqa: A002 - the WIT name
        return self._bytes(len)

    def get_random_u64(self) -> int:
        return int.from_bytes(os.urandom(8), "little")

    def get_insecure_random_bytes(self, len: int) -> bytes:  # noqa: A002
        return self._bytes(len)

    def get_insecure_random_u64(self) -> int:
        return self.get_random_u64()


class InsecureSeed:
    """`wasi:random/insecure-seed`: one seed per instance."""

    resources: dict[str, type] = {}

    def __init__(self, state: WasiState) -> None:
        self.seed = (int.from_bytes(os.urandom(8), "little"),
                     int.from_bytes(os.urandom(8), "little"))

    def insecure_seed(self) -> tuple[int, int]:
        return self.seed


__all__ = ["InsecureSeed", "MonotonicClock", "Random", "WallClock"]
