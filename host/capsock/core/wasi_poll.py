"""Waiting on a mix of readiness sources: `wasi:io/poll` without WIT.

A WASI pollable is ready for one of several reasons, each described by a
:data:`Readiness` value the pollable computes when asked (it can change:
an output stream is ready once its buffer drained):

=======================  ===============================================
value                    ready when
=======================  ===============================================
``None``                 now (a file, stdout, a finished lookup)
``float``                the monotonic clock (seconds) reaches it
``(socket, readable)``   the backend says so (`Backend.poll`)
``callable``             it returns True (stdin: a select on fd 0)
=======================  ===============================================

Sockets are waited on by the instance's backend, as capsock's own `poll`
does, so both backends work and the kill switch (which interrupts the
sockets an instance holds) wakes a waiting guest. Waits with no socket to
wake them (a timer, stdin) sleep in slices of :data:`SLICE` so that a kill
is noticed within one slice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from ..backends.base import DatagramSocket, StreamSocket
from ..errors import ErrorCode, NetError
from .context import InstanceContext

Readiness = None | float | tuple[StreamSocket | DatagramSocket, bool] | Callable[[], bool]

#: The longest sleep without a socket to wake it (seconds).
SLICE = 0.05


def wait_any(context: InstanceContext, items: Sequence[Readiness],
             stopped: Callable[[], bool] = lambda: False) -> list[int]:
    """The indices of `items` ready now, waiting until at least one is.

    `stopped()` True ends a wait with no socket to wake it (the guest is
    being killed): the empty list is returned.
    """
    if not items:
        raise NetError(ErrorCode.INVALID_ARGUMENT, "poll needs at least one pollable")
    if len(items) > context.limits.max_pollables:
        raise context.limit_reached("poll", "socket", f"{len(items)} pollables",
                                    "max_pollables")
    while True:
        ready, timeout = _ready_now(items)
        sockets = [(i, item) for i, item in enumerate(items) if isinstance(item, tuple)]
        if ready:
            if sockets:
                got = context.backend.poll([item for _, item in sockets], 0.0)
                ready.extend(sockets[j][0] for j in got)
            return sorted(set(ready))
        if any(callable(item) for item in items) or not sockets:
            timeout = SLICE if timeout is None else min(timeout, SLICE)
        if sockets:
            got = context.backend.poll([item for _, item in sockets], timeout)
            if got:
                return [sockets[j][0] for j in got]
        elif timeout is not None and timeout > 0:
            time.sleep(timeout)
        if stopped():
            return []


def _ready_now(items: Sequence[Readiness]) -> tuple[list[int], float | None]:
    """Which non-socket items are ready, and how long until the first
    deadline (None: no deadline)."""
    now = time.monotonic()
    ready: list[int] = []
    timeout: float | None = None
    for i, item in enumerate(items):
        if item is None:
            ready.append(i)
        elif isinstance(item, float):
            if item <= now:
                ready.append(i)
            else:
                left = item - now
                timeout = left if timeout is None else min(timeout, left)
        elif callable(item) and not isinstance(item, tuple):
            if item():
                ready.append(i)
    return ready, timeout


__all__ = ["Readiness", "SLICE", "wait_any"]
