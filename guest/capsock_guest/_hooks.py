"""Adapt standard modules to a capsock guest when they are imported.

`capsock_guest.use_bsd` replaces ``socket``, ``selectors`` and ``select``
outright; three more modules need only a few of their names changed, and
only if the program uses them: ``asyncio`` (its default event loop,
`capsock_guest._asyncio`), ``threading`` (threads run inline,
`capsock_guest._threads`) and ``concurrent.futures`` (the thread pool
runs work inline; imported eagerly so that it is bundled). `install`
patches those already imported and puts a finder first on
``sys.meta_path`` that patches the others right after they are first
executed, at build time (the snapshot keeps the result) or at run time
alike. The finder only wraps the loader of these names;
every other import goes by untouched. When the guest's CPython has no
``_ssl``, ``ssl`` is `capsock_guest.bsd_ssl` (TLS done by the host) if
the guest was built with the ``tls`` extension, else
`capsock_guest._nossl` (importable constants and classes, TLS refused by
name; see that module).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

__all__ = ["install"]


def _asyncio() -> None:
    from . import _asyncio

    _asyncio.install()


def _threading() -> None:
    from . import _threads

    _threads.install()


def _thread_pool() -> None:
    from . import _threads

    _threads.install_thread_pool()


def _futures() -> None:
    """``concurrent.futures`` imports ``ThreadPoolExecutor`` lazily (on first
    attribute use), which at run time finds no bundled module: import it now
    (at build time), which also patches it."""
    import concurrent.futures.thread  # noqa: F401


#: module name -> what to do once it is imported
PATCHES: dict[str, Callable[[], None]] = {
    "threading": _threading,
    "concurrent.futures": _futures,
    "concurrent.futures.thread": _thread_pool,
    "asyncio": _asyncio,
}


class _PatchingLoader(importlib.abc.Loader):
    """Runs the real loader, then the module's patch."""

    def __init__(self, loader: Any, patch: Callable[[], None]) -> None:
        self.loader = loader
        self.patch = patch

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)  # type: ignore[no-any-return]

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        self.patch()

    def __getattr__(self, name: str) -> Any:
        """``get_source``, ``get_code``... of the real loader (tracebacks use them)."""
        return getattr(self.loader, name)


class _PatchingFinder(importlib.abc.MetaPathFinder):
    """First on ``sys.meta_path``: finds `PATCHES` modules with the other
    finders and wraps their loaders."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        patch = PATCHES.get(fullname)
        if patch is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _PatchingLoader(spec.loader, patch)
                return spec
        return None


def install() -> None:
    """Patch the `PATCHES` modules imported already; hook the rest; give
    ``ssl`` the host's TLS, or a placeholder, if the real one cannot load
    (idempotent)."""
    if "ssl" not in sys.modules and importlib.util.find_spec("_ssl") is None:
        from . import _nossl, bsd_ssl

        sys.modules["ssl"] = bsd_ssl if bsd_ssl.HAS_HOST_TLS else _nossl
    for name, patch in PATCHES.items():
        if name in sys.modules:
            patch()
    if not any(isinstance(f, _PatchingFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchingFinder())
