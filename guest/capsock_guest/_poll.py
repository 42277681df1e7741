"""Readiness polling over `socket.poll`."""

from __future__ import annotations

from collections.abc import Sequence

from wit_world.imports import socket as wsocket

from ._errors import call

__all__ = ["poll", "Pollable"]

Pollable = wsocket.Pollable


def poll(pollables: Sequence[wsocket.Pollable], timeout: float | None = None) -> list[int]:
    """Wait until one of ``pollables`` is ready or ``timeout`` seconds pass;
    the indexes of the ready ones (empty on timeout)."""
    ns = None if timeout is None else max(0, int(timeout * 1e9))
    return call(wsocket.poll, list(pollables), ns)
