"""Import this first: ``import socket`` / ``import selectors`` / ``import
select`` / ``import ssl`` then give capsock's BSD layer (`capsock_guest.bsd`,
`capsock_guest.bsd_selectors`, `capsock_guest._select`,
`capsock_guest.bsd_ssl`: TLS done by the host), and ``asyncio``,
``threading`` and ``concurrent.futures`` are adapted to a guest when
imported (`capsock_guest._hooks`: capsock's event loop, inline threads).

    import capsock_guest.use_bsd  # noqa: F401  (before anything imports socket)
    import http.server            # its `import socket` is now capsock's

Why ``sys.modules`` and not a ``socket.py`` earlier on the path:
componentize-py's stdlib comes first on ``sys.path``, so a shim file never
wins; a ``sys.modules`` entry made while the app is loaded at build time is
kept in the snapshot, and every later import finds it. Modules that already
imported the real `socket` keep it, hence "first". CPython's own module is
not reachable afterwards (capsock grants it no network anyway).
"""

from __future__ import annotations

import sys

from . import _hooks, _select, bsd, bsd_selectors

__all__ = ["install"]


def install() -> None:
    """Register the BSD layer as ``socket``, ``selectors``, ``select`` and ``ssl``,
    and hook asyncio / threading (idempotent)."""
    sys.modules["socket"] = bsd
    sys.modules["selectors"] = bsd_selectors
    sys.modules["select"] = _select
    _hooks.install()  # and ``ssl``: bsd_ssl over the host's TLS (or a placeholder)


install()
