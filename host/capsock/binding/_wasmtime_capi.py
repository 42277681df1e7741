"""The one door to wasmtime-py's private C API, and the version it fits.

capsock converts component values, adds host functions and arms epoch
deadlines through wasmtime's C API directly (``wasmtime._ffi``: its ctypes
declarations and the loaded library), because wasmtime-py's public API is
too slow for that (:mod:`capsock.binding.codec`) or does not offer it
(host functions taking raw values, the epoch deadline callback that decides
per store, an error built from a message). Those names are private to
wasmtime-py and change between its releases, and the C layouts the codec
reads change with wasmtime itself; so they are reached from here only, and
this module refuses, at import, a wasmtime-py it was not written for,
with the command that fixes it, rather than let a layout mismatch corrupt
memory at the first call. ``tests/binding/test_capi_boundary.py`` checks
both: the refusal, and that no other module names wasmtime's private API.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import sys
from typing import Any

#: The wasmtime-py release whose C API and layouts this module was written
#: for (and measured on: README "Why wasmtime-py 49").
WASMTIME_VERSION = "49.0.0"


def _installed_version() -> str:
    """The installed wasmtime-py's version, read from the name of its
    ``.dist-info`` folder beside the package (``importlib.metadata`` costs
    ~15 ms of every start; this a directory listing), or from
    ``importlib.metadata`` where the install has no such folder."""
    spec = importlib.util.find_spec("wasmtime")
    if spec is None or spec.origin is None:
        return "none"
    site = os.path.dirname(os.path.dirname(spec.origin))
    with contextlib.suppress(OSError):
        for entry in os.listdir(site):
            if entry.startswith("wasmtime-") and entry.endswith(".dist-info"):
                return entry[len("wasmtime-"):-len(".dist-info")]
    from importlib import metadata
    try:
        return metadata.version("wasmtime")
    except metadata.PackageNotFoundError:
        return "none"


def check_version(found: str) -> None:
    """Raise ImportError unless `found` is the wasmtime-py capsock fits."""
    if found != WASMTIME_VERSION:
        raise ImportError(
            f"capsock {_capsock_version()} needs wasmtime-py {WASMTIME_VERSION}, found "
            f"{found}: pip install 'wasmtime=={WASMTIME_VERSION}'")


def _capsock_version() -> str:
    from importlib import metadata  # only for the error message
    try:
        return metadata.version("capsock")
    except metadata.PackageNotFoundError:
        return "(from a checkout)"


check_version(_installed_version())

from wasmtime import Store, WasmtimeError  # noqa: E402  (only once the version fits)
from wasmtime import _ffi as ffi  # noqa: E402

__all__ = [
    "WASMTIME_VERSION", "check_version", "ffi", "dll", "error_from_pointer", "error_new",
    "DeadlineCallback", "set_epoch_deadline_callback", "UPDATE_DEADLINE_CONTINUE",
    "resource_host_rep_offset",
]

#: The loaded wasmtime library, for binding C functions with own signatures.
dll: Any = ffi.dll


def error_from_pointer(pointer: int) -> WasmtimeError:
    """The Python exception owning a ``wasmtime_error_t *`` a C call returned."""
    return WasmtimeError._from_ptr(ctypes.cast(pointer, ctypes.POINTER(ffi.wasmtime_error_t)))


def error_new(message: str) -> int:
    """A new ``wasmtime_error_t *`` (as an int) saying `message`; whoever it
    is returned to (a deadline callback's caller) owns it."""
    error = ffi.wasmtime_error_new(message.encode())
    return int(ctypes.cast(error, ctypes.c_void_p).value or 0)


#: wasmtime_store_epoch_deadline_callback's callback type.
DeadlineCallback = ctypes.CFUNCTYPE(
    ctypes.c_size_t, ctypes.POINTER(ffi.wasmtime_context_t), ctypes.c_void_p,
    ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ffi.wasmtime_update_deadline_kind_t))
_NoFinalizer = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
#: What a deadline callback writes to `kind` to let the store run on.
UPDATE_DEADLINE_CONTINUE = 0


def set_epoch_deadline_callback(store: Store, callback: Any) -> None:
    """Make `callback` (a :data:`DeadlineCallback`) decide what `store` does
    at each epoch deadline; the store keeps the trampoline alive."""
    ffi.wasmtime_store_epoch_deadline_callback(store.ptr(), callback, None, _NoFinalizer())
    store.__dict__["_capsock_deadline_callback"] = callback


def resource_host_rep_offset() -> int | None:
    """Where a ``wasmtime_component_resource_host_t`` of this wasmtime keeps
    its rep (a byte offset), or None when a probe cannot tell.

    The type is opaque in the C API: ``wasmtime_component_resource_host_rep``
    reads the rep, a C call that costs ~2,300 instructions through ctypes,
    a third of what converting a borrowed handle costs (every method call
    converts one). It is one Rust struct however it was made
    (``resource_host_new`` or ``resource_any_to_host``), so its layout is
    fixed for the library loaded here (and the version check above pins
    the library). The probe makes hosts with distinct reps, types and
    ownership, and answers an offset only if each one's rep is there, and
    nowhere else in its first 16 bytes, and ``resource_host_rep`` reads the
    same rep. Measured on 49.0.0: offset 8 (the type follows at 12).
    """
    p, u32 = ctypes.c_void_p, ctypes.c_uint32
    new = ctypes.PYFUNCTYPE(p, ctypes.c_bool, u32, u32)(
        ("wasmtime_component_resource_host_new", dll))
    rep_of = ctypes.PYFUNCTYPE(u32, p)(("wasmtime_component_resource_host_rep", dll))
    delete = ctypes.PYFUNCTYPE(None, p)(("wasmtime_component_resource_host_delete", dll))
    found: set[int] | None = None
    for owned, rep, ty in ((True, 0x5EA1_0001, 0x6361_7E57), (False, 0x0000_0A5C, 0x6361_0001),
                           (True, 0x7FFF_FFFE, 0x0000_0003), (False, 0x0123_4567, 0x89AB_CDEF)):
        host = new(owned, rep, ty)
        try:
            raw = ctypes.string_at(host, 16)
            if rep_of(host) != rep:
                return None
        finally:
            delete(host)
        here = {offset for offset in range(0, 16, 4)
                if int.from_bytes(raw[offset:offset + 4], sys.byteorder) == rep}
        found = here if found is None else found & here
    return found.pop() if found is not None and len(found) == 1 else None
