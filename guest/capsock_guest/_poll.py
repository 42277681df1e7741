"""Readiness polling over `socket.poll`.

`poll` takes pollable ids (see the WIT for why not borrows); `Pollable`
wraps a handle and fetches its id once, so polling costs one host call.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType

from wit_world.imports import socket as wsocket

from ._errors import call

__all__ = ["poll", "poll_ids", "Pollable"]


class Pollable:
    """A readiness event source from a socket's ``subscribe``."""

    def __init__(self, raw: wsocket.Pollable) -> None:
        self.raw = raw
        self.id = raw.id()

    def ready(self) -> bool:
        return self.raw.ready()

    def block(self) -> None:
        self.raw.block()

    def close(self) -> None:
        self.raw.__exit__(None, None, None)

    def __enter__(self) -> Pollable:
        return self

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def poll(pollables: Sequence[Pollable], timeout: float | None = None) -> list[int]:
    """Wait until one of ``pollables`` is ready or ``timeout`` seconds pass;
    the indexes of the ready ones (empty on timeout)."""
    return poll_ids([p.id for p in pollables], timeout)


def poll_ids(ids: list[int], timeout: float | None = None) -> list[int]:
    """`poll` by pollable ids (`Pollable.id`), for callers that keep the ids
    (`Loop` does, so a round builds no list of wrappers)."""
    ns = None if timeout is None else max(0, int(timeout * 1e9))
    return call(wsocket.poll, ids, ns)
