"""capsock's logger, with `logging` imported on first use.

`import logging` brings traceback, textwrap and string with it (~4 ms of
every `capsock run` start), and capsock logs only on errors, warnings and
`--verbose` denials. Modules write ``from .._log import log`` and use it
like the ``logging.getLogger("capsock")`` it stands for (embedders
configure that logger as usual). Until something is logged, nothing is
imported; unconfigured, Python's last-resort handler prints WARNING and
above to stderr as the bare message, as `capsock run` always did.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import logging

__all__ = ["LineBudget", "log"]

#: What a `LineBudget` lets through by default: a burst of this many lines,
#: then this many per second; the rest are counted, and summarised at most
#: once per `SUMMARY_INTERVAL` seconds. A guest-driven flood then costs a
#: few kilobytes a second instead of all it can make (issue 15, defect 7:
#: 20,000 calls were 15.4 MB of tracebacks).
LINES_BURST = 100
LINES_PER_SECOND = 10.0
SUMMARY_INTERVAL = 1.0


class _Logger:
    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        return getattr(logger(), name)


def logger() -> logging.Logger:
    """The real ``capsock`` logger (imports `logging`)."""
    import logging

    return logging.getLogger("capsock")


#: Typed as the Logger it forwards to.
log: logging.Logger = _Logger()  # type: ignore[assignment]


class LineBudget:
    """Rate limit for the lines one guest instance can make the host write
    (denials in the audit log and on stderr; see SECURITY.md, promise 8).

    A token bucket (`burst` at once, `rate` per second after) decides
    whether a line is written; the lines refused are counted, and `admit`
    hands the count back, to be written as one summary line, once at least
    `interval` seconds passed since the first line it counts; `flush`
    hands back the rest when the instance ends. The first `burst` lines
    are always written whole: the start of a flood is what an operator
    needs to see. Refilled lazily from a monotonic clock (no thread).
    """

    def __init__(self, burst: int = LINES_BURST, rate: float = LINES_PER_SECOND,
                 interval: float = SUMMARY_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.burst = float(burst)
        self.rate = rate
        self.interval = interval
        self._clock = clock
        self._tokens = self.burst
        self._last = clock()
        self._suppressed = 0
        self._since = 0.0
        self._lock = threading.Lock()

    def admit(self) -> tuple[bool, int]:
        """(write this line?, how many suppressed lines to summarise first)."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            summary = 0
            if self._suppressed and now - self._since >= self.interval:
                summary, self._suppressed = self._suppressed, 0
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True, summary
            if not self._suppressed:
                self._since = now
            self._suppressed += 1
            return False, summary

    def flush(self) -> int:
        """The suppressed lines not summarised yet (and forget them)."""
        with self._lock:
            count, self._suppressed = self._suppressed, 0
            return count
