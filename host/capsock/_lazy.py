"""A standard-library module loaded on first attribute access.

`import ssl` costs ~10 ms of every `capsock run` start (OpenSSL's
library and `_ssl`'s tables), and only guests that use TLS ever touch
it, yet the modules that hold the TLS layer are imported by the core's
hot paths (`transport_of`, `plan_waits`). They write::

    if TYPE_CHECKING:
        import ssl
    else:
        ssl = lazy_module("ssl")

so mypy sees the real module and a run without TLS never loads it. The
loader is `importlib.util.LazyLoader`, the standard library's own: the
module object is put in `sys.modules` at once (so every later
``import ssl`` anywhere gets the same object) and executed on its first
attribute access. A module already imported is returned as it is.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

__all__ = ["lazy_module"]


def lazy_module(name: str) -> ModuleType:
    """`name`, imported now if it already was, else on first use."""
    loaded = sys.modules.get(name)
    if loaded is not None:
        return loaded
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"no module named {name!r}")
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module
