"""The audit log (`--audit-log FILE`): one JSON line per policy decision.

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

The file is opened once, at start-up (so a bad path is a start-up error),
in append mode and unbuffered: each line is one `write(2)` of the whole
line (looping on a short write), under a lock, so lines stay whole when
several threads (concurrent instances) write and a failed write never
leaves half a line in a buffer to be flushed later.

**A write that fails (disk full, I/O error) fails open**: the decision
stands (the policy, not the log, is the control; failing closed would turn
a full disk into an outage of every instance, which a guest that can fill
the log would then control), the line is lost and counted, and the host
says so once on its log (``capsock: audit log ...: cannot write``). Each
later line tries again; the first that succeeds is preceded by a warning
saying how many were lost. An operator who needs every decision recorded
watches for that warning (SECURITY.md, "Process-wide ceilings").
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import BinaryIO

from .._log import log
from ..policy import Decision


class AuditLog:
    """An open audit log. Create it before the guest runs; `close` at exit."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        # OSError (missing directory, permissions) propagates: the caller
        # reports it as a start-up error naming --audit-log.
        self._file: BinaryIO = open(self.path, "ab", buffering=0)
        self._lock = threading.Lock()
        #: Lines lost to failed writes since the last one that succeeded.
        self.lost = 0
        self._torn = False  # a failed write left part of a line in the file
        import json  # here, not at the top: a start without --audit-log skips it (~2 ms)

        self._encode = json.dumps

    def record(self, instance: str, operation: str, protocol: str, target: str,
               decision: Decision, real: str | None = None,
               would_deny: bool = False) -> None:
        """Write one decision as one line (with `real` when a mapping
        translated `target`; `would_deny`: see the module)."""
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
        self._write((self._encode(fields) + "\n").encode("utf-8"))

    def _write(self, data: bytes) -> None:
        with self._lock:
            if self._file.closed:
                return
            if self._torn:  # end the half line a failed write left behind
                data = b"\n" + data
            view = memoryview(data)
            try:
                while view:
                    written = self._file.write(view)
                    if not written:  # nothing written, no error: do not spin
                        raise OSError(f"wrote nothing of {len(view)} bytes")
                    view = view[written:]
            except OSError as error:
                self._torn = self._torn or len(view) < len(data)
                if not self.lost:
                    log.error("capsock: audit log %s: cannot write (%s); decisions stand, "
                              "lines are lost until a write succeeds", self.path,
                              error.strerror or error)
                self.lost += 1
                return
            if self.lost:
                log.warning("capsock: audit log %s: writable again; %d line(s) were lost",
                            self.path, self.lost)
                self.lost = 0
            self._torn = False

    def summarise(self, instance: str, count: int) -> None:
        """Write the line that stands for `count` denials left out."""
        line = self._encode({
            "time": _now(),
            "instance": instance,
            "operation": "suppressed",
            "protocol": "",
            "target": f"{count} more denials suppressed",
            "allowed": False,
            "rule": None,
            "count": count,
        })
        self._write((line + "\n").encode("utf-8"))

    def close(self) -> None:
        with self._lock:
            self._file.close()


__all__ = ["AuditLog"]


def _now() -> str:
    import datetime  # imported by the first audit line, not on every start

    return datetime.datetime.now(datetime.UTC).isoformat()
