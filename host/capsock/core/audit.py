"""The audit log (`--audit-log`): one JSON line per policy decision.

Written by the host, outside the sandbox: the guest cannot see, suppress
or forge it. Each line is a self-contained JSON object::

    {"time": "2025-01-01T12:00:00.123456+00:00", "instance": "4242-1",
     "operation": "connect", "protocol": "tcp", "target": "127.0.0.1:80",
     "allowed": true, "rule": "allow-outbound tcp://127.0.0.1:*"}

`operation` is one of `bind`, `connect`, `send` (UDP, to an explicit
address), `implicit-bind` (logged only when a deny rule forbids the
ephemeral bind of a connect or send), `receive` (the first datagram a UDP
socket accepts from a sender, by an outbound rule), `receive-drop` (every
datagram dropped because the policy does not let the socket talk to its
sender) and `resolve`; `protocol` is `tcp`, `udp` or
`dns`; `target` is a socket address or a name; `rule` is the rule that
decided (`"<flag> <rule>"`), or null when nothing matched and the default
deny applied. When a `->` mapping (`core/translate.py`) translated the
target, `target` is the guest-side address and `real` the address the
host used (a resolve line: what the name maps to), e.g.
``"target": "10.225.0.1:5432", "real": "127.0.0.2:5432"``.

In audit mode (`--policy-mode=audit`) nothing the policy would deny is
denied: such an operation goes ahead and its line says `"allowed": true`,
`"would-deny": true`, with `rule` the rule that would have denied it (null:
no rule allows it). `capsock policy suggest` reads these lines::

    {"time": "...", "instance": "4242-1", "operation": "connect",
     "protocol": "tcp", "target": "10.0.0.5:5432", "allowed": true,
     "rule": "deny-outbound tcp://private:*", "would-deny": true}

Denials are rate-limited per instance (`capsock._log.LineBudget`: the
first 100 whole, then 10 a second): the ones left out are counted in a
line of operation `suppressed`, at most one a second and one at the
instance's end, whose `count` is how many and whose `target` says so::

    {"time": "...", "instance": "4242-1", "operation": "suppressed",
     "protocol": "", "target": "19890 more denials suppressed",
     "allowed": false, "rule": null, "count": 19890}

**Where lines go** is a sink (`AuditSink`): a file (`FileSink`, the
default, rotated by size when asked), stderr or a syslog collector
(core/audit_sinks.py). The file is opened at start-up (so a bad path is a
start-up error), in append mode, unbuffered: each line is one `write(2)`
of the whole line (looping on a short write), so lines stay whole when
several processes (`serve --mode process`) append to one file.

**Never blocking the guest**: `record` only formats the line and puts it
on a bounded queue (`queue_lines`); one writer thread per process hands
the lines to the sink. A sink that is slow or stuck (a collector that
does not read, a disk that blocks) fills the queue; then lines are
dropped, not waited for: counted in `dropped`, and summarised in the log
by a line of operation `dropped` with their `count`, at most one a
second while the writer is behind and one when it catches up::

    {"time": "...", "instance": "", "operation": "dropped", "protocol": "",
     "target": "812 audit lines dropped (queue full)", "allowed": false,
     "rule": null, "count": 812}

The host's log says when dropping starts (`the writer is behind`) and,
with the count, when it ended (`the writer caught up`: the queue emptied
and nothing was dropped for a second), so a writer that keeps falling
behind and catching up makes two lines, not two per burst.

`close` (at exit) waits for the queue to drain, at most `close_timeout`
seconds; what is left then is not written, and said.

**A write that fails (disk full, I/O error, collector unreachable) fails
open**: the decision stands (the policy, not the log, is the control;
failing closed would turn a full disk into an outage of every instance,
which a guest that can fill the log would then control), the line is lost
and counted in `lost`, and the host says so once on its log (``capsock:
audit log ...: cannot write``). Each later line tries again; the first
that succeeds is preceded by a warning saying how many were lost. An
operator who needs every decision recorded watches for that warning, or
for `capsock_audit_lines_dropped_total` (`--metrics`), which counts both
kinds of loss (`on_drop`).

After a `fork` (`serve --mode process`) the child gets a fresh queue and
writer and reopens its sink (its own file description, its own collector
connection); lines queued in the parent are the parent's to write.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .._log import log
from ..policy import Decision

if TYPE_CHECKING:
    import queue

#: Lines the queue holds before `record` drops instead (~200 bytes each).
QUEUE_LINES = 10_000
#: How long `close` waits for the writer to drain the queue (seconds).
CLOSE_TIMEOUT = 5.0


class AuditSink(Protocol):
    """Where audit lines go. Called from the writer thread only."""

    #: Names the sink in the host's messages (a path, `stderr`, a URL).
    name: str

    def write(self, line: str, allowed: bool) -> None:
        """Deliver one line (no newline); raise OSError if it was not."""

    def reopen(self) -> None:
        """In a forked child: stop sharing descriptors with the parent."""

    def close(self) -> None:
        """Release the sink (after the last write)."""


class FileSink:
    """Append lines to a file; rotate it by size (`max_bytes`, 0: never).

    Rotation renames FILE to FILE.1 (FILE.1 to FILE.2 ..., keeping
    `backups`; 0 keeps none) and reopens FILE. Several processes may
    append to one file: the one that rotates holds an exclusive `flock` on
    the full file and checks it is still FILE and still over the size, so
    it is rotated once; the others notice that FILE is another inode and
    reopen it.
    """

    def __init__(self, path: str | Path, max_bytes: int = 0, backups: int = 5) -> None:
        if max_bytes < 0 or backups < 0:
            raise ValueError("max_bytes and backups must be >= 0")
        self.path = Path(path)
        self.name = str(self.path)
        self.max_bytes = max_bytes
        self.backups = backups
        # OSError (missing directory, permissions) propagates: the caller
        # reports it as a start-up error naming --audit-log.
        self._fd = self._open()
        self._torn = False  # a failed write left part of a line in the file

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)

    def write(self, line: str, allowed: bool) -> None:
        data = (line + "\n").encode("utf-8")
        if self._torn:  # end the half line a failed write left behind
            data = b"\n" + data
        if self.max_bytes:
            self._follow_rotation()
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                if not written:  # nothing written, no error: do not spin
                    raise OSError(f"wrote nothing of {len(view)} bytes")
                view = view[written:]
        except OSError:
            self._torn = self._torn or len(view) < len(data)
            raise
        self._torn = False
        if self.max_bytes and os.fstat(self._fd).st_size >= self.max_bytes:
            self._rotate()

    def _follow_rotation(self) -> None:
        """Reopen FILE if another process rotated it away from our fd."""
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            now = None
        mine = os.fstat(self._fd)
        if now is None or (now.st_ino, now.st_dev) != (mine.st_ino, mine.st_dev):
            self._swap(self._open())

    def _rotate(self) -> None:
        import fcntl  # POSIX only, and only with rotation

        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            mine = os.fstat(self._fd)
            try:
                now = os.stat(self.path)
            except FileNotFoundError:
                now = None
            if (now is not None and (now.st_ino, now.st_dev) == (mine.st_ino, mine.st_dev)
                    and now.st_size >= self.max_bytes):
                if self.backups == 0:
                    os.unlink(self.path)
                else:
                    for index in range(self.backups - 1, 0, -1):
                        older = Path(f"{self.path}.{index}")
                        if older.exists():
                            os.replace(older, f"{self.path}.{index + 1}")
                    os.replace(self.path, f"{self.path}.1")
            fresh = self._open()
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._swap(fresh)

    def _swap(self, fd: int) -> None:
        old, self._fd = self._fd, fd
        os.close(old)

    def reopen(self) -> None:
        self._swap(self._open())

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class AuditLog:
    """An open audit log. Create it before the guest runs; `close` at exit.

    `AuditLog(path)` appends to a file (`FileSink`); `AuditLog(sink=...)`
    writes to any `AuditSink`. `on_drop(reason, count)` is told of every
    line lost (`queue-full` or `write-failed`): the metrics hook.
    """

    def __init__(self, path: str | Path | None = None, *, sink: AuditSink | None = None,
                 queue_lines: int = QUEUE_LINES, close_timeout: float = CLOSE_TIMEOUT,
                 on_drop: Callable[[str, int], None] | None = None) -> None:
        if (path is None) == (sink is None):
            raise TypeError("AuditLog takes a path or a sink")
        self.sink: AuditSink = sink if sink is not None else FileSink(path)  # type: ignore[arg-type]
        #: The file, for a file sink (None otherwise).
        self.path: Path | None = getattr(self.sink, "path", None)
        self.queue_lines = queue_lines
        self.close_timeout = close_timeout
        self.on_drop = on_drop
        #: Lines lost to failed writes since the last one that succeeded.
        self.lost = 0
        #: Lines dropped because the queue was full (in all, since the start).
        self.dropped = 0
        self._closed = False
        self._start()
        import json  # here, not at the top: a start without --audit-log skips it (~2 ms)

        self._encode = json.dumps
        reference = weakref.ref(self)

        def after_fork() -> None:
            log_ = reference()
            if log_ is not None:
                log_._after_fork()

        os.register_at_fork(after_in_child=after_fork)

    def _start(self) -> None:
        import queue  # here: a start without --audit-log skips it (~1 ms)

        self._full = queue.Full
        self._queue: queue.Queue[tuple[str, bool] | None] = queue.Queue(self.queue_lines)
        self._lock = threading.Lock()  # guards the drop counts and the thread's start
        self._thread: threading.Thread | None = None
        self._unreported = 0  # dropped lines no `dropped` line counted yet
        self._behind = False  # dropping since the writer last caught up
        self._summary_at = 0.0  # when the last `dropped` line was queued for the sink
        self._last_drop_at = 0.0
        self._episode_start = self.dropped  # `dropped` when this episode began

    def record(self, instance: str, operation: str, protocol: str, target: str,
               decision: Decision, real: str | None = None,
               would_deny: bool = False) -> None:
        """Queue one decision as one line, never waiting (with `real` when a
        mapping translated `target`; `would_deny`: see the module)."""
        fields: dict[str, object] = {
            "time": _now(),
            "instance": instance,
            "operation": operation,
            "protocol": protocol,
            "target": target,
            "allowed": decision.allowed,
            "rule": decision.rule,
        }
        if real is not None:
            fields["real"] = real
        if would_deny:
            fields["would-deny"] = True
        # A sink grades lines (syslog severity): one the policy would deny
        # is a warning even when audit mode let it through.
        self._put(self._encode(fields), decision.allowed and not would_deny)

    def summarise(self, instance: str, count: int) -> None:
        """Queue the line that stands for `count` denials left out."""
        self._put(self._encode({
            "time": _now(),
            "instance": instance,
            "operation": "suppressed",
            "protocol": "",
            "target": f"{count} more denials suppressed",
            "allowed": False,
            "rule": None,
            "count": count,
        }), False)

    def _put(self, line: str, allowed: bool) -> None:
        if self._closed:
            return
        if self._thread is None:
            self._start_writer()
        try:
            self._queue.put_nowait((line, allowed))
        except self._full:
            import time

            with self._lock:
                self.dropped += 1
                self._unreported += 1
                self._last_drop_at = time.monotonic()
                first, self._behind = not self._behind, True
            if first:  # once per episode: the writer says when it caught up
                log.error("capsock: audit log %s: the writer is behind (%d lines queued); "
                          "decisions stand, lines are dropped and counted",
                          self.sink.name, self.queue_lines)
            self._count_drop("queue-full")

    def _start_writer(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._write_all, daemon=True,
                                                name="capsock-audit")
                self._thread.start()

    def _write_all(self) -> None:
        """The writer thread: hand each queued line to the sink, and the
        `dropped` summary when due (`_report_drops`)."""
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    self._report_drops(final=True)
                    return
                self._deliver(*item)
                self._report_drops(final=False)
            finally:
                self._queue.task_done()

    def _report_drops(self, final: bool) -> None:
        """Write one `dropped` line for the lines dropped since the last
        one: at most once a second while the writer is behind, and when it
        caught up (the queue is empty) or stops; say on the host's log
        when an episode of drops ended."""
        import time

        now = time.monotonic()
        with self._lock:
            caught_up = final or self._queue.empty()
            count = 0
            if self._unreported and (caught_up or now - self._summary_at >= 1.0):
                count, self._unreported, self._summary_at = self._unreported, 0, now
            # An episode ends once the writer caught up and nothing was
            # dropped for a second (a writer that keeps falling behind and
            # catching up is one episode, said once).
            ended = (caught_up and self._behind and not self._unreported
                     and (final or now - self._last_drop_at >= 1.0))
            if ended:
                self._behind = False
                episode, self._episode_start = self.dropped - self._episode_start, self.dropped
        if count:
            self._deliver(self._encode({
                "time": _now(), "instance": "", "operation": "dropped", "protocol": "",
                "target": f"{count} audit lines dropped (queue full)",
                "allowed": False, "rule": None, "count": count}), False)
        if ended:
            log.warning("capsock: audit log %s: the writer caught up; %d line(s) were dropped",
                        self.sink.name, episode)

    def _deliver(self, line: str, allowed: bool) -> None:
        try:
            self.sink.write(line, allowed)
        except OSError as error:
            if not self.lost:
                log.error("capsock: audit log %s: cannot write (%s); decisions stand, "
                          "lines are lost until a write succeeds", self.sink.name,
                          error.strerror or error)
            self.lost += 1
            self._count_drop("write-failed")
            return
        if self.lost:
            log.warning("capsock: audit log %s: writable again; %d line(s) were lost",
                        self.sink.name, self.lost)
            self.lost = 0

    def _count_drop(self, reason: str) -> None:
        if self.on_drop is not None:
            try:
                self.on_drop(reason, 1)
            except Exception:  # a metrics hook never breaks auditing
                pass

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every line queued so far was handed to the sink (at
        most `timeout` seconds, default `close_timeout`); whether it was."""
        if self._thread is None:
            return True
        done = threading.Event()

        def wait() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=wait, daemon=True).start()
        return done.wait(self.close_timeout if timeout is None else timeout)

    def close(self) -> None:
        """Drain the queue (bounded by `close_timeout`), stop the writer,
        close the sink. Lines still queued after the timeout are dropped."""
        if self._closed:
            return
        self._closed = True
        thread = self._thread
        if thread is not None:
            try:
                self._queue.put(None, timeout=self.close_timeout)
            except self._full:
                pass
            thread.join(self.close_timeout)
            if thread.is_alive():  # the sink is stuck: leave it, say what is lost
                log.error("capsock: audit log %s: still writing after %gs at exit; "
                          "%d queued line(s) not written", self.sink.name,
                          self.close_timeout, max(0, self._queue.qsize() - 1))
                return
        self.sink.close()

    def _after_fork(self) -> None:
        """In a forked child: a fresh queue and writer, a reopened sink."""
        self.lost = 0
        self.dropped = 0
        self._start()
        if not self._closed:
            try:
                self.sink.reopen()
            except OSError as error:
                log.error("capsock: audit log %s: cannot reopen after fork (%s)",
                          self.sink.name, error.strerror or error)


__all__ = ["CLOSE_TIMEOUT", "QUEUE_LINES", "AuditLog", "AuditSink", "FileSink"]


def _now() -> str:
    import datetime  # imported by the first audit line, not on every start

    return datetime.datetime.now(datetime.UTC).isoformat()
