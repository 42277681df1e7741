"""Killing a running guest from another thread: `KillSwitch`.

A guest is in one of two places when the embedder wants it gone, and each
needs its own wake-up:

* **In wasm** (computing, or spinning on purpose). Python never runs, so
  only wasmtime can stop it: the engine is made with epoch interruption
  (engine.py), every store gets a deadline one epoch ahead and a deadline
  callback, and `kill` increments the engine's epoch. Every store of the
  engine then reaches its deadline and calls its callback; the killed one
  answers with an error (a trap, "killed by the embedder"), the others
  carry on with a new deadline one epoch ahead. Engines are shared by all
  runs of a Host (and by `capsock serve --mode thread`), which is why the
  callback, not the bare deadline, decides.
* **In a capsock host call** that blocks in the kernel (`accept`,
  `receive`, `poll`, a blocking `connect` or `send`). Epoch checks only
  happen in wasm, so `kill` also asks the instance's backend to interrupt
  (`Backend.interrupt`) every socket the instance holds: its pre-opens,
  and whatever its handles hold (`binding.held_sockets`). The blocked call
  returns an error at once, the guest is back in wasm, and the first epoch
  check traps. The OS backend shuts the socket down (`shutdown(2)`); the
  in-memory one closes it, which wakes its waiters just as well.

Then the usual teardown closes everything, on the guest's own thread.

What a kill cannot interrupt: wasmtime's own WASI calls (`time.sleep`, a
read from the inherited stdin) and a name resolution in progress; the
guest stops when that call returns (a DNS query is bounded by its
resolver's timeout).

Pre-opens the embedder passed in (`Host.run(preopens=...)`, e.g. a `dup`
of a listener it keeps, as `capsock serve` does) are shut down like the
rest, since a guest may be blocked in `accept` on them, but as *shared*:
the backend returns how to give them back, run once the guest is gone (the
OS backend makes a dup'd TCP listener listen again): the embedder keeps its
listener.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable, Iterable

from wasmtime import Engine, Store

from .._log import log
from ..binding import (
    UPDATE_DEADLINE_CONTINUE,
    DeadlineCallback,
    HandleTable,
    error_new,
    held_sockets,
    set_epoch_deadline_callback,
)
from ..core.context import InstanceContext

#: What the killed guest's trap says, and `GuestKilled.reason` by default.
DEFAULT_REASON = "killed by the embedder"



class GuestKilled(Exception):
    """`Host.run` was stopped by `KillSwitch.kill`; its teardown is done.

    Raised instead of returning an exit code, so a killed guest is never
    mistaken for one that exited or trapped by itself.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"the guest was killed: {reason}")
        self.reason = reason


class KillSwitch:
    """Stops the runs it is given to (`Host.run(..., kill_switch=...)`).

    `kill` may be called from any thread, any number of times, before,
    during or after a run: a run not started yet raises `GuestKilled` at
    once, a finished one is not affected. Like a cancellation token it
    stays killed; one switch may stop several runs at once.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reason: str | None = None
        self._runs: set[RunGuard] = set()

    @property
    def killed(self) -> bool:
        return self._reason is not None

    @property
    def reason(self) -> str | None:
        return self._reason

    def kill(self, reason: str = DEFAULT_REASON) -> None:
        """Stop every run using this switch; returns without waiting.

        The run's own thread tears the instance down and raises
        `GuestKilled`; join that thread to know everything is closed.
        """
        with self._lock:
            if self._reason is None:
                self._reason = reason
            runs = list(self._runs)
        for run in runs:
            run.kill(self._reason)

    def _attach(self, run: RunGuard) -> str | None:
        """Register a run; the reason instead if already killed."""
        with self._lock:
            if self._reason is None:
                self._runs.add(run)
            return self._reason

    def _detach(self, run: RunGuard) -> None:
        with self._lock:
            self._runs.discard(run)


class RunGuard:
    """One run's side of a kill: its store's deadline, its sockets.

    Host.run makes one per run (with or without a switch, so the store is
    always set up the same way) and calls, in order: `watch` once the
    instance's context exists, `arm` with its store before any wasm runs,
    `finish` when the guest has returned (no kill can touch the sockets
    after that, and shared listeners are restored), `close` at the end.
    """

    def __init__(self, engine: Engine, switch: KillSwitch | None,
                 shared: Iterable[object] = ()) -> None:
        self._engine = engine
        self._switch = switch
        self._lock = threading.Lock()
        self._reason: str | None = None
        self._done = False
        self._context: InstanceContext | None = None
        self._table: HandleTable | None = None
        #: Backend sockets the embedder passed in (it may hold dups of them).
        self._shared = {id(sock) for sock in shared}
        #: What the backend gives back to the embedder once the guest is gone.
        self._restore: list[Callable[[], None]] = []
        self._callback = DeadlineCallback(self._on_deadline)
        if switch is not None:
            reason = switch._attach(self)
            if reason is not None:
                self._reason = reason

    @property
    def killed(self) -> bool:
        return self._reason is not None

    @property
    def reason(self) -> str:
        return self._reason or DEFAULT_REASON

    def watch(self, context: InstanceContext, table: HandleTable) -> None:
        """From now on a kill wakes whatever this instance blocks on."""
        with self._lock:
            self._context, self._table = context, table
            if self._reason is not None:
                self._wake_sockets()

    def arm(self, store: Store) -> None:
        """Give `store` a deadline one epoch ahead and the deadline callback.

        On an engine without epoch interruption this is inert: the
        deadline is never checked.
        """
        set_epoch_deadline_callback(store, self._callback)
        with self._lock:  # a kill that came first (during compilation) must not be missed
            store.set_epoch_deadline(0 if self._reason is not None else 1)

    def kill(self, reason: str) -> None:
        with self._lock:
            if self._done or self._reason is not None:
                return
            self._reason = reason
            self._engine.increment_epoch()
            if self._context is not None:
                self._wake_sockets()

    def finish(self) -> None:
        """The guest returned: kills are no-ops from now on; re-listen the
        shared listeners a kill shut down."""
        with self._lock:
            self._done = True
            restore, self._restore = self._restore, []
            self._context = self._table = None
        for restore_one in restore:
            try:
                restore_one()
            except Exception:
                log.exception("capsock: error while restoring a shared socket after a kill")

    def close(self) -> None:
        if self._switch is not None:
            self._switch._detach(self)

    # -- inside the guest's thread, called by wasmtime ---------------------------
    def _on_deadline(self, _context: object, _data: object,
                     delta: ctypes._Pointer[ctypes.c_uint64],
                     kind: ctypes._Pointer[ctypes.c_uint8]) -> int:
        """Trap if this run was killed, else wait for the next epoch.

        Any other run's kill increments the shared engine's epoch and lands
        here once; that costs one Python call per running store per kill.
        """
        if self._reason is not None:
            return error_new(self._reason)
        delta[0] = 1
        kind[0] = UPDATE_DEADLINE_CONTINUE
        return 0

    # -- the killing thread, under self._lock --------------------------------------
    def _wake_sockets(self) -> None:
        """Ask the backend to interrupt every socket the instance holds."""
        assert self._context is not None and self._table is not None
        backend = self._context.backend
        for sock in held_sockets(self._context, self._table.live()):
            try:
                restore = backend.interrupt(sock, shared=id(sock) in self._shared)
            except Exception:
                log.exception("capsock: error while interrupting %r to kill its guest", sock)
                continue
            if restore is not None:
                self._restore.append(restore)
