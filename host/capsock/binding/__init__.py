"""The binding layer: WIT values and handles in, calls on the core out.

What the runtime needs is re-exported here, and only here is it meant to
be imported from (wasmtime-py's own style: the modules behind this
`__all__` are the layer's private parts). Everything that touches
wasmtime-py's private C API goes through :mod:`._wasmtime_capi`, which
refuses at import a wasmtime-py it was not written for.
"""

from typing import TYPE_CHECKING, Any

from ._wasmtime_capi import (
    UPDATE_DEADLINE_CONTINUE,
    WASMTIME_VERSION,
    DeadlineCallback,
    error_new,
    set_epoch_deadline_callback,
)
from .handles import HandleTable
from .interfaces import EXTENSIONS, held_sockets, interfaces_for
from .registrar import link

if TYPE_CHECKING:
    from .wasi import WasiState, wasi_interfaces


def __getattr__(name: str) -> Any:
    """`WasiState` and `wasi_interfaces` load on first use: ~10 ms of
    start-up (`python -X importtime`) only components run on capsock's
    WASI host need."""
    if name in ("WasiState", "wasi_interfaces"):
        from . import wasi

        return getattr(wasi, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "EXTENSIONS",
    "UPDATE_DEADLINE_CONTINUE",
    "WASMTIME_VERSION",
    "DeadlineCallback",
    "HandleTable",
    "WasiState",
    "error_new",
    "held_sockets",
    "interfaces_for",
    "link",
    "set_epoch_deadline_callback",
    "wasi_interfaces",
]
