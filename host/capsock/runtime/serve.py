"""`capsock serve`: N instances of one component on shared pre-opens.

The listening sockets are opened once, here; every instance gets its own
duplicate (`dup`) of each, so all instances accept from the same kernel
queue and each instance's teardown closes only its own descriptor.
`--udpbind` sockets are shared the same way: each datagram reaches one
instance; at a graceful stop they are shut down too, and a guest's UDP
`receive` then fails with `connection-aborted` (see the OS backend).

Instances run as threads (one process, one compiled component, one GIL)
or as forked processes (one GIL each). On two cores, processes scale and
threads do not: a guest's host calls all need the GIL (see bench/).

Graceful shutdown on SIGINT/SIGTERM: the listeners are `shutdown(2)`, which
every instance's pending `accept`/`poll` sees at once (the sockets are
shared), so guests stop accepting and finish the connections in flight;
after `grace` seconds stragglers are killed (processes: SIGKILL; threads:
a KillSwitch, so their instances are torn down like any other). Then every
socket is closed and the number of sockets still open in this process is
reported.

`--restart on-failure` (an exit code other than 0) or `always` runs an
instance that ended again, while the server is not stopping, after a
delay that doubles from `RESTART_DELAY` to `RESTART_DELAY_MAX` while the
instance keeps ending within `RESTART_RESET` seconds of its start (a
guest that fails at once does not spin), and starts over once it ran
longer. Each restart is logged and counted (`capsock_guest_restarts_total`
with `--metrics`).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from ..backends.base import DatagramSocket, StreamSocket
from ..core.context import Preopen
from ..core.observe import NULL_OBSERVER, InstanceObserver
from ..core.tls import TlsListenSpec
from .engine import new_engine
from .host import Host, TcpListenSpec, open_listener, open_udp
from .kill import GuestKilled, KillSwitch

if TYPE_CHECKING:
    from .metrics import Metrics

log = logging.getLogger("capsock")

#: The first restart delay, its ceiling, and the run time that resets it (s).
RESTART_DELAY = 0.1
RESTART_DELAY_MAX = 10.0
RESTART_RESET = 10.0
#: `--restart` values.
RESTART_POLICIES = ("no", "on-failure", "always")


@dataclass
class _Listener:
    sock: socket.socket
    name: str
    ipv6: bool
    #: "tcp" (a --tcplisten listener) or "udp" (a --udpbind socket).
    protocol: str = "tcp"
    #: A --tls-listen listener: each instance's dup is TLS-terminated by it.
    tls: TlsListenSpec | None = None
    #: Passed by a launcher (socket activation): it outlives this process,
    #: so a graceful stop leaves it usable for the launcher's next start.
    inherited: bool = False


def open_socket_count() -> int:
    """Sockets this process holds (from /proc; -1 where unavailable)."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return -1
    count = 0
    for name in names:
        try:
            if os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                count += 1
        except OSError:
            continue
    return count


class Server:
    """Runs `instances` copies of a component until they end or a signal."""

    def __init__(self, host: Host, component: str | Path, args: Sequence[str],
                 instances: int, mode: str = "process", grace: float = 10.0,
                 restart: str = "no", metrics: Metrics | None = None) -> None:
        if restart not in RESTART_POLICIES:
            raise ValueError(f"--restart must be one of {', '.join(RESTART_POLICIES)}")
        if instances < 1:
            raise ValueError("--instances must be at least 1")
        if mode not in ("process", "thread"):
            raise ValueError("--mode must be process or thread")
        if (not host.tcp_listen and not host.tls_listen
                and not any(s.protocol == "tcp" for s in host.inherited)):
            raise ValueError("serve needs at least one --tcplisten or --tls-listen (or an "
                             "inherited TCP listener, socket activation) to share")
        self.host = host
        self.component = component
        self.args = list(args)
        self.instances = instances
        self.mode = mode
        self.grace = grace
        self.restart = restart
        #: `--metrics`: made before any instance (and fork), served by the caller.
        self.metrics = metrics
        self.listeners: list[_Listener] = []
        self._stopping = threading.Event()
        #: Kills the thread-mode instances still running after the grace period.
        self._kill_switch = KillSwitch()
        #: Make inherited listeners listen again after the stop's shutdown.
        self._restores: list[Callable[[], None]] = []

    # -- lifecycle -------------------------------------------------------------
    def serve(self) -> int:
        for spec in self.host.tcp_listen:
            sock, name = open_listener(spec, self.host.backend)
            self.listeners.append(_Listener(sock, name, spec.address.is_ipv6))
        for tls in self.host.tls_listen:  # each instance handshakes what it accepts
            sock, name = open_listener(TcpListenSpec(tls.address, tls.backlog),
                                       self.host.backend)
            self.listeners.append(_Listener(sock, name, tls.address.is_ipv6, tls=tls))
        for udp in self.host.udp_bind:  # shared too: each datagram goes to one instance
            sock, name = open_udp(udp, self.host.backend)
            self.listeners.append(_Listener(sock, name, udp.address.is_ipv6, "udp"))
        for inherited in self.host.inherited:
            self.listeners.append(_Listener(inherited.sock, inherited.name, inherited.ipv6,
                                            inherited.protocol, inherited=True))
        names = ", ".join(listener.name for listener in self.listeners)
        print(f"capsock: serving {Path(self.component).name} on {names} "
              f"with {self.instances} {self.mode} instance(s)", file=sys.stderr, flush=True)
        previous = {sig: signal.signal(sig, self._on_signal)
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            codes = self._run_processes() if self.mode == "process" else self._run_threads()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for restore in self._restores:
                restore()
            for listener in self.listeners:
                listener.sock.close()
            if self.metrics is not None:  # its socket too, before counting
                self.metrics.close()
        remaining = open_socket_count()
        print(f"capsock: shut down; exit codes {codes}; {remaining} socket(s) still open",
              file=sys.stderr, flush=True)
        if self._stopping.is_set():
            return 0 if all(code in (0, -signal.SIGTERM) for code in codes) else 1
        return max(codes, default=0)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        print(f"capsock: {signal.Signals(signum).name}: stop accepting, "
              f"finishing in-flight work (up to {self.grace:g}s)", file=sys.stderr, flush=True)
        for listener in self.listeners:
            if listener.inherited:
                if listener.protocol == "tcp":
                    # The launcher's socket too: listening again once the
                    # instances are gone (backend.interrupt's restore).
                    backend = self.host.backend
                    restore = backend.interrupt(backend.adopt_tcp(listener.sock), shared=True)
                    if restore is not None:
                        self._restores.append(restore)
                # An inherited UDP socket is not shut down: nothing would make
                # it receive again for the launcher. Instances blocked on it
                # end with the grace period.
                continue
            try:
                listener.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _preopens(self) -> list[Preopen]:
        return [Preopen(listener.name, listener.protocol, listener.ipv6, self._adopt(listener))
                for listener in self.listeners]

    def _adopt(self, listener: _Listener) -> StreamSocket | DatagramSocket:
        """One instance's dup of a shared socket (TLS-terminated for
        --tls-listen: the server context was loaded at start-up)."""
        backend = self.host.backend
        if listener.protocol == "udp":
            return backend.adopt_udp(listener.sock.dup())
        sock = backend.adopt_tcp(listener.sock.dup())
        if listener.tls is None:
            return sock
        return listener.tls.listener(sock, self.host.limits.tls_handshake_timeout)

    def _run_one(self, index: int) -> int:
        env = [("CAPSOCK_INSTANCE", str(index)), ("CAPSOCK_INSTANCES", str(self.instances))]
        observer: InstanceObserver = (self.metrics.instance(str(index))
                                      if self.metrics is not None else NULL_OBSERVER)
        return self.host.run(self.component, self.args, env=env, preopens=self._preopens(),
                             kill_switch=self._kill_switch, observer=observer)

    # -- restarts -----------------------------------------------------------------
    def _restarts(self, code: int) -> bool:
        """Whether an instance that ended with `code` runs again."""
        if self._stopping.is_set():
            return False
        return self.restart == "always" or (self.restart == "on-failure" and code != 0)

    @staticmethod
    def _next_delay(delay: float | None, ran: float) -> float:
        """The delay before the next restart (`delay`: the last one, if any)."""
        if delay is None or ran >= RESTART_RESET:
            return RESTART_DELAY
        return min(delay * 2, RESTART_DELAY_MAX)

    def _restarting(self, index: int, code: int, delay: float) -> None:
        print(f"capsock: instance {index} exited with {code}; restarting in {delay:g}s "
              f"(--restart {self.restart})", file=sys.stderr, flush=True)
        if self.metrics is not None:
            self.metrics.restarts.labels(str(index)).inc()

    def _running(self, delta: int) -> None:
        if self.metrics is not None:
            self.metrics.running.inc(delta)

    # -- threads ------------------------------------------------------------------
    def _run_threads(self) -> list[int]:
        codes = [0] * self.instances

        def run_once(index: int) -> int:
            self._running(1)
            try:
                return self._run_one(index)
            except GuestKilled:
                return 1
            except Exception:
                log.exception("capsock: instance %d failed", index)
                return 1
            finally:
                self._running(-1)

        def target(index: int) -> None:
            delay: float | None = None
            while True:
                started = time.monotonic()
                codes[index] = run_once(index)
                if not self._restarts(codes[index]):
                    return
                delay = self._next_delay(delay, time.monotonic() - started)
                self._restarting(index, codes[index], delay)
                if self._stopping.wait(delay):
                    return

        threads = [threading.Thread(target=target, args=(i,), name=f"instance-{i}", daemon=True)
                   for i in range(self.instances)]
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads) and not self._stopping.is_set():
            time.sleep(0.05)
        deadline = time.monotonic() + self.grace
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if any(thread.is_alive() for thread in threads):
            self._kill_switch.kill("the grace period is over")
            print("capsock: grace period over; killed the remaining instances",
                  file=sys.stderr, flush=True)
            for thread in threads:  # a kill takes milliseconds, unless the guest is
                thread.join(timeout=5.0)  # inside wasmtime's WASI (sleep): then give up
            pairs = zip(threads, codes, strict=True)
            return [1 if thread.is_alive() else code for thread, code in pairs]
        return codes

    # -- processes ----------------------------------------------------------------
    def _fork(self, index: int) -> int:
        """Start instance `index` in a child process; its pid."""
        pid = os.fork()
        if pid == 0:  # the instance
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            self.host.engine = new_engine()  # never share an engine across fork
            if self.metrics is not None:
                self.metrics.forked()  # the parent serves the endpoint
            code = 1
            try:
                code = self._run_one(index)
            finally:
                if self.host.audit_log is not None:  # its queue, before _exit
                    self.host.audit_log.close()
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        self._running(1)
        return pid

    def _run_processes(self) -> list[int]:
        children: dict[int, int] = {}
        for index in range(self.instances):
            children[self._fork(index)] = index
        codes = [0] * self.instances
        started = dict.fromkeys(range(self.instances), time.monotonic())
        delays: dict[int, float | None] = dict.fromkeys(range(self.instances))
        pending: dict[int, float] = {}  # instance -> when it restarts
        deadline: float | None = None
        while children or (pending and not self._stopping.is_set()):
            now = time.monotonic()
            if self._stopping.is_set() and deadline is None:
                deadline = now + self.grace
            for index, when in list(pending.items()):
                if self._stopping.is_set():
                    pending.clear()
                    break
                if when <= now:
                    del pending[index]
                    started[index] = now
                    children[self._fork(index)] = index
            pid, status = os.waitpid(-1, os.WNOHANG) if children else (0, 0)
            if pid == 0:
                if deadline is not None and time.monotonic() > deadline:
                    for child in children:
                        os.kill(child, signal.SIGKILL)
                    print("capsock: grace period over; killed the remaining instances",
                          file=sys.stderr, flush=True)
                    deadline = float("inf")
                time.sleep(0.05)
                continue
            index = children.pop(pid)
            codes[index] = os.waitstatus_to_exitcode(status)
            self._running(-1)
            if self.metrics is not None:
                self.metrics.process_ended(pid)
            if self._restarts(codes[index]):
                delays[index] = self._next_delay(delays[index], now - started[index])
                self._restarting(index, codes[index], delays[index] or RESTART_DELAY)
                pending[index] = now + (delays[index] or RESTART_DELAY)
        return codes
