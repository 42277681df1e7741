"""Threads in a capsock guest: started threads run *inline*, to completion.

componentize-py's CPython has no threads (``_thread.start_joinable_thread``
raises ``RuntimeError: can't start new thread``, and a blocking
``Lock.acquire`` on a held lock traps the instance). Servers written with
threads mostly start one per accepted connection and never wait for it,
so a guest runs each started thread's ``run()`` at once, in the caller,
before ``start()`` returns:

- ``threading.Thread(target=handler, args=(conn,)).start()`` handles the
  connection, then the accept loop continues: connections are served one
  at a time per instance (``capsock serve --instances N --tcplisten ADDR``
  serves N at once: a bind to exactly ADDR takes the shared listener).
- ``socketserver.ThreadingMixIn`` (``ThreadingTCPServer``,
  ``ThreadingUDPServer``, ``http.server.ThreadingHTTPServer``) works the
  same way, unmodified.
- ``concurrent.futures.ThreadPoolExecutor.submit`` runs the function in
  ``submit`` and returns a finished future (``map``, ``as_completed`` work).
- ``_thread.start_new_thread`` runs the function in the call.
- ``join()`` returns at once, ``is_alive()`` is False after ``start()``; an
  exception in a thread goes to ``threading.excepthook`` as usual.
  ``threading.current_thread()`` inside the target is the main thread.

What cannot work, since there is no other thread to do it: a thread that
runs forever (a background ``serve_forever`` started before the main code
goes on), or one that waits for something the code after ``start()``
would do. Waiting with no timeout on a ``Condition`` (``Event.wait()``,
``queue.Queue.get()``, ``Semaphore.acquire()``, ``Barrier.wait()``) raises
`RuntimeError` naming capsock, rather than trapping the instance; a timed
wait sleeps for its timeout and reports "not notified" (nothing else can
notify), so ``threading.Timer`` runs its function after its interval,
inline.
"""

from __future__ import annotations

import _thread
import contextvars
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

__all__ = ["install", "install_thread_pool", "NO_THREADS"]

#: The way out, for every message about something threads cannot do here.
NO_THREADS = ("a capsock guest has no threads (a started thread runs inline, to completion, "
              "inside start()); for connections in parallel use asyncio, or "
              "`capsock serve --instances N --tcplisten ADDR` on the address the program binds")


class _Finished:
    """A finished thread's handle (what `Thread.join`, `is_alive` and
    ``repr`` ask of ``_os_thread_handle``): the C handle of a thread that
    never started cannot be marked done."""

    def __init__(self, ident: int) -> None:
        self.ident = ident

    def is_done(self) -> bool:
        return True

    def join(self, timeout: float | None = None) -> None:
        return None

    def _set_done(self) -> None:
        return None


def _start(self: threading.Thread) -> None:
    """`threading.Thread.start`, run inline (see the module docstring)."""
    if not self._initialized:  # type: ignore[attr-defined]
        raise RuntimeError("thread.__init__() not called")
    if self._started.is_set():  # type: ignore[attr-defined]
        raise RuntimeError("threads can only be started once")
    if self._context is None:  # type: ignore[attr-defined]
        self._context = (contextvars.copy_context()  # type: ignore[attr-defined]
                         if getattr(sys.flags, "thread_inherit_context", 0)
                         else contextvars.Context())
    self._ident = threading.get_ident()  # type: ignore[attr-defined]
    self._started.set()  # type: ignore[attr-defined]
    try:
        self._context.run(self.run)  # type: ignore[attr-defined]
    except BaseException:
        self._invoke_excepthook(self)  # type: ignore[attr-defined]
    finally:
        self._os_thread_handle = _Finished(self._ident)  # type: ignore[attr-defined]


def _start_new_thread(function: Callable[..., Any], args: tuple[Any, ...],
                      kwargs: dict[str, Any] | None = None) -> int:
    """`_thread.start_new_thread`, run inline; an exception is printed as
    CPython prints one that ends a thread."""
    try:
        function(*args, **(kwargs or {}))
    except SystemExit:
        pass
    except BaseException:
        print(f"Exception ignored in thread started by {function!r}:", file=sys.stderr)
        traceback.print_exc()
    return threading.get_ident()


def _condition_wait(self: threading.Condition, timeout: float | None = None) -> bool:
    """`threading.Condition.wait` with no other thread to notify it."""
    if not self._is_owned():  # type: ignore[attr-defined]
        raise RuntimeError("cannot wait on un-acquired lock")
    if timeout is None:
        raise RuntimeError(f"capsock: this wait has no timeout and could never end: {NO_THREADS}")
    if timeout > 0:
        time.sleep(timeout)
    return False


def install() -> None:
    """Patch `threading` (and `_thread`) as the module docstring says (idempotent)."""
    threading.Thread.start = _start  # type: ignore[method-assign]
    threading.Condition.wait = _condition_wait  # type: ignore[method-assign]
    _thread.start_new_thread = _start_new_thread
    _thread.start_new = _start_new_thread


def _adjust_thread_count(self: Any) -> None:
    """`ThreadPoolExecutor._adjust_thread_count`, inline: run what was
    submitted now, in the caller (its initializer first, once)."""
    ctx = self.__dict__.get("_capsock_context")
    if ctx is None:
        ctx = self._create_worker_context()
        try:
            ctx.initialize()
        except BaseException:
            self._initializer_failed()
            return
        self._capsock_context = ctx
    while True:
        try:
            item = self._work_queue.get_nowait()
        except Exception:  # queue.Empty
            return
        if item is not None:
            item.run(ctx)


def install_thread_pool() -> None:
    """Patch ``concurrent.futures.ThreadPoolExecutor`` to run work inline."""
    from concurrent.futures import thread

    thread.ThreadPoolExecutor._adjust_thread_count = _adjust_thread_count  # type: ignore[method-assign]
