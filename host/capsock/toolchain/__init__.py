"""capsock's guest build tooling: Python source in, capsock component out.

The second of capsock's three products (the runtime is ``capsock.runtime``
with ``capsock run``/``serve``; the conformance kit is
``capsock.conformance``). It needs the ``build`` extra (componentize-py and
wasm-tools: ``pip install 'capsock[build]'``); the runtime never imports it.

- `sources`: where the WIT and the guest library are (a wheel ships them
  here; a checkout has them at ``wit/`` and ``guest/capsock_guest/``).
- `tools`: finding componentize-py and wasm-tools, `BuildError`.
- `wasi_wit`: the app world and the WASI WIT derived for it.
- `scripts`: plain scripts and the wrapper that runs them (pure).
- `builder`: componentize, the content hash, the cache of built guests,
  and `build_script` (``capsock build``).
"""

from __future__ import annotations

from .builder import build_script, componentize, input_hash
from .scripts import WRAPPER_MODULE, is_script, script_imports, wrapper_source
from .sources import Sources, find_sources
from .tools import INSTALL_HINT, BuildError, Tools, find_tools, run
from .wasi_wit import APP_WORLD, CORE_APP_WORLD, ensure_app_wit, world_args

__all__ = [
    "APP_WORLD", "BuildError", "CORE_APP_WORLD", "INSTALL_HINT", "Sources", "Tools",
    "WRAPPER_MODULE", "build_script",
    "componentize", "ensure_app_wit", "find_sources", "find_tools", "input_hash", "is_script",
    "run", "script_imports", "world_args", "wrapper_source",
]
