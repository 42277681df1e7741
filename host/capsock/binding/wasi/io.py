"""`wasi:io` 0.2: `error`, `poll` and `streams`, for every stream kind.

The registrar binds a WIT method to the function of the class the
resource names (``InputStream.read``), so the WIT-facing methods live here
once and every stream kind (a TCP connection, a file, stdin, stdout)
subclasses :class:`InputStream` / :class:`OutputStream` and supplies only
the primitives: a read that never waits, a write, and what to wait for
(a :data:`capsock.core.wasi_poll.Readiness`). Blocking variants are those
primitives plus a wait, so they behave alike for every kind.

Errors follow the 0.2 spec: a failure is ``last-operation-failed`` with
an `error` resource (whose `to-debug-string` says what failed; for a
socket `wasi:sockets/network.network-error-code` gives its `error-code`),
the end of a stream is ``closed``, and the preconditions the spec says
trap (writing beyond the permit, more than 4096 bytes to a
`blocking-write-and-flush`) trap.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ...core.context import InstanceContext
from ...core.wasi_poll import Readiness, wait_any
from ...errors import ErrorCode, NetError
from ..codec import Case
from ..registrar import GuestTrap, WitError

#: The most `blocking-write-and-flush` and friends take (the spec's 4096).
BLOCKING_LIMIT = 4096


class IoError:
    """`resource error`: what a failed stream operation was."""

    def __init__(self, message: str, code: ErrorCode | None = None) -> None:
        self.message = message
        self.code = code

    def to_debug_string(self) -> str:
        return self.message


def failed(error: BaseException) -> WitError:
    """The `last-operation-failed` stream error of `error`."""
    code = error.code if isinstance(error, NetError) else None
    return WitError(Case("last-operation-failed", IoError(str(error), code)))


def closed() -> WitError:
    return WitError(Case("closed", None))


class WasiPollable:
    """`resource pollable`: ready when its source says so (asked afresh at
    every check, so e.g. an output stream's pollable follows its buffer)."""

    def __init__(self, context: InstanceContext, source: Callable[[], Readiness],
                 stopped: Callable[[], bool]) -> None:
        self.context = context
        self.source = source
        self.stopped = stopped

    def ready(self) -> bool:
        item = self.source()
        if item is None:
            return True
        if isinstance(item, float):
            return item <= time.monotonic()
        if isinstance(item, tuple):
            return bool(self.context.backend.poll([item], 0.0))
        return bool(item())

    def block(self) -> None:
        wait_any(self.context, [self.source()], self.stopped)

    def held_socket(self) -> Any:
        """The backend socket it waits on, if any (the kill switch)."""
        item = self.source()
        return item[0] if isinstance(item, tuple) else None


class Poll:
    """`wasi:io/poll`."""

    resources: dict[str, type] = {"pollable": WasiPollable}

    def __init__(self, context: InstanceContext) -> None:
        self.context = context

    def poll(self, pollables: list[WasiPollable]) -> list[int]:
        if not pollables:
            raise GuestTrap("wasi:io/poll.poll: the list of pollables is empty")
        stopped = pollables[0].stopped
        while True:
            ready = wait_any(self.context, [p.source() for p in pollables], stopped)
            if ready or stopped():
                return ready


class Error:
    """`wasi:io/error`."""

    resources: dict[str, type] = {"error": IoError}

    def __init__(self, context: InstanceContext) -> None:
        self.context = context


class InputStream:
    """`resource input-stream`. Subclasses implement `_read` (never waits:
    bytes, maybe empty, or None at the end; raises on failure) and
    `_readiness`."""

    context: InstanceContext
    stopped: Callable[[], bool]

    def _read(self, max_len: int) -> bytes | None:
        raise NotImplementedError

    def _readiness(self) -> Readiness:
        return None

    def _take(self, max_len: int) -> bytes:
        try:
            data = self._read(max_len)
        except (NetError, OSError) as error:
            raise failed(error) from None
        if data is None:
            raise closed()
        return data

    def read(self, len: int) -> bytes:  # noqa: A002 - the WIT parameter's name
        return self._take(len)

    def blocking_read(self, len: int) -> bytes:  # noqa: A002
        while True:
            data = self._take(len)
            if data or len == 0:
                return data
            self._wait()

    def _wait(self) -> None:
        wait_any(self.context, [self._readiness()], self.stopped)
        if self.stopped():
            raise GuestTrap("capsock: the guest is being stopped")

    def skip(self, len: int) -> int:  # noqa: A002
        return len_of(self.read(len))

    def blocking_skip(self, len: int) -> int:  # noqa: A002
        return len_of(self.blocking_read(len))

    def subscribe(self) -> WasiPollable:
        return WasiPollable(self.context, self._readiness, self.stopped)

    def drop(self) -> None:
        """Nothing to release by default."""


def len_of(data: bytes) -> int:
    return len(data)


class OutputStream:
    """`resource output-stream`. Subclasses implement `_check_write` (the
    permit now, 0 to wait; EOFError when closed), `_write`, `_flushed`
    (push what is buffered without waiting; True when nothing is left)
    and `_readiness`."""

    context: InstanceContext
    stopped: Callable[[], bool]
    #: What the last `check-write` granted and `write` has not used yet.
    granted: int = 0

    def _check_write(self) -> int:
        raise NotImplementedError

    def _write(self, data: bytes) -> None:
        raise NotImplementedError

    def _flushed(self) -> bool:
        return True

    def _readiness(self) -> Readiness:
        return None

    def _guard(self, step: Callable[[], Any]) -> Any:
        try:
            return step()
        except EOFError:
            raise closed() from None
        except (NetError, OSError) as error:
            raise failed(error) from None

    def check_write(self) -> int:
        permit: int = self._guard(self._check_write)
        self.granted = permit
        return permit

    def write(self, contents: bytes) -> None:
        if len(contents) > self.granted:
            raise GuestTrap(f"wasi:io/streams write of {len(contents)} bytes exceeds the "
                            f"permit of {self.granted} from check-write")
        self.granted -= len(contents)
        self._guard(lambda: self._write(contents))

    def blocking_write_and_flush(self, contents: bytes) -> None:
        if len(contents) > BLOCKING_LIMIT:
            raise GuestTrap(f"blocking-write-and-flush of {len(contents)} bytes "
                            f"(at most {BLOCKING_LIMIT})")
        view = memoryview(contents)
        while view:
            permit = self.check_write()
            if permit == 0:
                self._wait()
                continue
            chunk = bytes(view[:permit])
            self.write(chunk)
            view = view[len(chunk):]
        self.blocking_flush()

    def flush(self) -> None:
        self._guard(self._flushed)

    def blocking_flush(self) -> None:
        while not self._guard(self._flushed):
            self._wait()

    def _wait(self) -> None:
        wait_any(self.context, [self._readiness()], self.stopped)
        if self.stopped():
            raise GuestTrap("capsock: the guest is being stopped")

    def write_zeroes(self, len: int) -> None:  # noqa: A002
        self.write(bytes(len))

    def blocking_write_zeroes_and_flush(self, len: int) -> None:  # noqa: A002
        self.blocking_write_and_flush(bytes(len))

    def splice(self, src: InputStream, len: int) -> int:  # noqa: A002
        """Move up to `len` bytes from `src` here, in the host: the bytes
        never enter the guest. Never waits."""
        permit = self.check_write()
        if permit == 0 or len == 0:
            return 0
        data = src._take(min(len, permit))
        if data:
            self.write(data)
        return len_of(data)

    def blocking_splice(self, src: InputStream, len: int) -> int:  # noqa: A002
        """`splice`, first waiting for this stream to take bytes and for
        `src` to have some."""
        if len == 0:
            return 0
        while True:
            permit = self.check_write()
            if permit:
                break
            self._wait()
        data = src.blocking_read(min(len, permit))
        if data:
            self.write(data)
        return len_of(data)

    def subscribe(self) -> WasiPollable:
        return WasiPollable(self.context, self._readiness, self.stopped)

    def drop(self) -> None:
        """Nothing to release by default."""


class Streams:
    """`wasi:io/streams`."""

    resources: dict[str, type] = {"input-stream": InputStream, "output-stream": OutputStream}

    def __init__(self, context: InstanceContext) -> None:
        self.context = context


__all__ = ["BLOCKING_LIMIT", "Error", "InputStream", "IoError", "OutputStream", "Poll",
           "WasiPollable", "Streams", "closed", "failed"]
