"""asyncio in a capsock guest: the standard event loop, waiting with capsock's poll.

Unmodified asyncio programs (``asyncio.run``, ``start_server``,
``open_connection``, ``create_datagram_endpoint``, ``loop.sock_*``,
``sleep``, ``wait_for``, timeouts, cancellation) run on `CapsockEventLoop`:
asyncio's own `BaseSelectorEventLoop` (its transports, streams, timers and
tasks, unchanged) over `capsock_guest.bsd_selectors.DefaultSelector`, so
each loop round is **one** host ``poll`` over every socket it waits on.

What differs from CPython's Unix loop, and why:

- **No self-pipe.** CPython's loop makes a ``socketpair`` so that another
  thread (or a signal handler) can wake a blocked ``select``. A guest has
  one thread and no asynchronous signals, so nothing can call
  ``call_soon_threadsafe`` while the loop is blocked in ``poll``: the wake-up
  is a no-op and the loop needs no socket of its own.
- **No executor threads.** ``run_in_executor`` (and so ``asyncio.to_thread``,
  ``loop.getaddrinfo``, ``loop.getnameinfo``) runs the function *inline* and
  returns a finished future: the loop is blocked for as long as the
  function runs. Name resolution goes to the resolver capability (see
  `capsock_guest.bsd.getaddrinfo`); IP literals never leave the guest.
- **No signal handlers.** ``add_signal_handler`` raises `NotImplementedError`
  (what asyncio does on Windows, which servers already handle): the host
  stops a guest by ending the instance, not with signals.
- A loop with nothing to wait for (no socket, no timer) and no work raises
  `RuntimeError` instead of waiting forever, since nothing could wake it.

`install` (called when ``asyncio`` is imported in a guest, see
`capsock_guest._hooks`) makes this loop asyncio's default:
``asyncio.run``, ``asyncio.new_event_loop``, ``asyncio.Runner``,
``asyncio.SelectorEventLoop`` and ``asyncio.EventLoop`` all give one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from asyncio import events, selector_events
from collections.abc import Callable
from typing import Any

from . import bsd, bsd_selectors

__all__ = ["CapsockEventLoop", "install"]


class _LoopSelector(bsd_selectors.DefaultSelector):
    """The loop's selector: capsock's, tuned for how asyncio calls it.

    - A host call costs tens of microseconds, about as much as a loop round
      of Python: asyncio polls with timeout 0 on every round that has work,
      so right after a poll that found events the next zero-timeout poll is
      skipped (the work those events woke runs first); the one after polls.
      Sockets are still checked at least every other round (fairness).
    - ``modify`` (asyncio adds and removes a writer around every partial
      send) keeps the host subscription of the direction that stays, where
      unregister + register would drop and re-subscribe both.
    - Refuses to wait forever on nothing (see the module docstring).
    """

    def __init__(self) -> None:
        super().__init__()
        self._skip_zero = False

    def select(self, timeout: float | None = None) -> list[tuple[bsd_selectors.SelectorKey, int]]:
        if timeout is not None and timeout <= 0 and self._skip_zero:
            self._skip_zero = False
            return []
        if timeout is None and not self._keys:
            raise RuntimeError(
                "capsock: the asyncio event loop has no socket and no timer to wait for, so "
                "nothing can ever wake it (a guest has no threads or signals); the program "
                "awaits something that only its own code could complete")
        ready = super().select(timeout)
        self._skip_zero = bool(ready)
        return ready

    def modify(self, fileobj: Any, events: int, data: Any = None) -> bsd_selectors.SelectorKey:
        fd = self._fd(fileobj)
        key = self._keys.get(fd)
        if key is None:
            raise KeyError(f"{fileobj!r} is not registered")
        if not events or events & ~(bsd_selectors.EVENT_READ | bsd_selectors.EVENT_WRITE):
            raise ValueError(f"Invalid events: {events!r}")
        for event in (bsd_selectors.EVENT_READ, bsd_selectors.EVENT_WRITE):
            if key.events & event and not events & event:
                pollable = self._pollables.pop((fd, event), None)
                if pollable is not None:
                    pollable.close()
        if events != key.events:
            self._changed()
        key = key._replace(events=events, data=data)
        self._keys[fd] = key
        return key


class CapsockEventLoop(selector_events.BaseSelectorEventLoop):
    """asyncio's selector event loop on capsock sockets (see the module docstring)."""

    def __init__(self, selector: Any = None) -> None:
        # capsock's selector has the stdlib's interface, not its class
        super().__init__(selector if selector is not None else _LoopSelector())  # type: ignore[arg-type]

    # -- no self-pipe: one thread, no signals ----------------------------------

    def _make_self_pipe(self) -> None:
        pass

    def _close_self_pipe(self) -> None:
        pass

    def _write_to_self(self) -> None:
        pass

    # -- no executor threads ---------------------------------------------------

    def run_in_executor(self, executor: Any, func: Callable[..., Any],  # type: ignore[override]
                        *args: Any) -> asyncio.Future[Any]:
        """Run ``func(*args)`` now, in the loop's (only) thread; a finished
        future. An explicit ``executor`` that is not a thread pool (a
        process pool) is refused: a guest cannot start processes."""
        self._check_closed()  # type: ignore[attr-defined]
        if executor is not None and not isinstance(executor,
                                                   concurrent.futures.ThreadPoolExecutor):
            raise RuntimeError(
                f"capsock: run_in_executor({type(executor).__name__}) cannot work in a guest "
                "(no threads or processes); pass None to run the function inline")
        future: asyncio.Future[Any] = self.create_future()
        try:
            future.set_result(func(*args))
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            future.set_exception(exc)
        return future

    def set_default_executor(self, executor: Any) -> None:
        """Accepted and unused: `run_in_executor` runs inline whatever it is."""
        if not isinstance(executor, concurrent.futures.ThreadPoolExecutor):
            raise TypeError("executor must be ThreadPoolExecutor instance")

    async def getaddrinfo(self, host: Any, port: Any, *, family: int = 0, type: int = 0,
                          proto: int = 0, flags: int = 0) -> list[tuple[Any, ...]]:
        """capsock's `getaddrinfo` (IP literals locally, names through the
        resolver capability), inline: no executor thread."""
        return bsd.getaddrinfo(host, port, family, type, proto, flags)

    async def getnameinfo(self, sockaddr: tuple[Any, ...], flags: int = 0) -> tuple[str, str]:
        return bsd.getnameinfo(sockaddr, flags)

    # -- no signals --------------------------------------------------------------

    def add_signal_handler(self, sig: int, callback: Callable[..., Any],  # type: ignore[override]
                           *args: Any) -> None:
        raise NotImplementedError(
            "capsock guests receive no signals (the host ends an instance instead)")

    def remove_signal_handler(self, sig: int) -> bool:
        return False


class _CapsockEventLoopPolicy(events._BaseDefaultEventLoopPolicy):  # type: ignore[name-defined,misc]
    _loop_factory = CapsockEventLoop


def install() -> None:
    """Make `CapsockEventLoop` asyncio's default loop (idempotent).

    Patches the names asyncio looks the default up by, rather than calling
    the deprecated ``set_event_loop_policy``: the Unix policy's loop factory
    (used by ``asyncio.run``, ``new_event_loop``, ``Runner``) and the public
    ``SelectorEventLoop`` / ``EventLoop`` aliases."""
    from asyncio import unix_events

    unix_events._UnixDefaultEventLoopPolicy._loop_factory = CapsockEventLoop  # type: ignore[attr-defined]
    for module in (unix_events, asyncio):
        module.SelectorEventLoop = CapsockEventLoop  # type: ignore[attr-defined]
        if hasattr(module, "EventLoop"):
            module.EventLoop = CapsockEventLoop  # type: ignore[attr-defined]
    policy = events._event_loop_policy  # type: ignore[attr-defined]
    if policy is not None and getattr(policy, "_loop_factory", None) is not CapsockEventLoop:
        events._set_event_loop_policy(_CapsockEventLoopPolicy())  # type: ignore[attr-defined]
