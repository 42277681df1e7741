"""Readiness polling over `socket.poll`.

`poll` passes the pollables as borrowed handles (`list<borrow<pollable>>`,
as `wasi:io/poll` does): one host call per poll, whatever the count.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType

from wit_world.imports import socket as wsocket

from ._errors import call

__all__ = ["poll", "Pollable"]


class Pollable:
    """A readiness event source from a socket's ``subscribe``."""

    __slots__ = ("raw",)

    def __init__(self, raw: wsocket.Pollable) -> None:
        self.raw = raw

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
    ns = None if timeout is None else max(0, int(timeout * 1e9))
    return call(wsocket.poll, [p.raw for p in pollables], ns)
