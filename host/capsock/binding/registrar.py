"""Bind WIT imports to Python implementations by naming convention.

The registrar walks the component's imports (``Component.type``) once, at
link time, and for every `capsock:net` function resolves:

* the Python callable, by name (a dynamic bindgen):

  ==================================  =====================================
  WIT import                          Python
  ==================================  =====================================
  ``network``                         ``iface.network``
  ``[method]tcp-socket.local-address``  ``iface.resources["tcp-socket"].local_address``
  ``[static]tcp-socket.from-socket``  ``iface.tcp_socket_from_socket``
  resource destructor                 ``obj.drop()`` when the object has it
  ==================================  =====================================

* the lift closure of every parameter and the lower closure of the result
  (:mod:`capsock.binding.codec`), so a call does no type introspection.

Missing implementations are collected and reported together, before the
guest runs, instead of trapping at call time.

Every call goes through one C callback, :func:`_trampoline`, which is also
the one place that maps Python exceptions to WIT: a :class:`NetError`
becomes the `err` case of the function's `result<_, error-code>`; any other
exception is logged and becomes `unknown` (or a trap, for a function that
returns no `result`). A Python exception never escapes into wasmtime.
"""

from __future__ import annotations

import ctypes
import itertools
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from wasmtime import Engine, WasmtimeError
from wasmtime import _ffi as ffi
from wasmtime.component import (
    Component,
    ComponentInstanceType,
    EnumType,
    FuncType,
    Linker,
    LinkerInstance,
    ResourceType,
    ResultType,
)

from ..errors import ErrorCode, NetError
from .codec import Compiler, Lift, Lower
from .handles import HandleTable

log = logging.getLogger("capsock")

PACKAGE = "capsock:net/"


class Interface(Protocol):
    """A per-instance implementation of one WIT interface."""

    #: WIT resource name -> class of the host objects behind its handles.
    resources: Mapping[str, type]


class LinkError(Exception):
    """The component needs functions no implementation provides."""


def snake(name: str) -> str:
    return name.replace("-", "_")


class _Entry:
    """One bound function: its implementation and compiled conversions."""

    __slots__ = ("name", "impl", "lifts", "lower", "fallible")

    def __init__(self, name: str, impl: Callable[..., Any], lifts: list[Lift],
                 lower: Lower | None, fallible: bool) -> None:
        self.name = name
        self.impl = impl
        self.lifts = lifts
        self.lower = lower
        self.fallible = fallible

    def call(self, ctx: Any, args: Any, results: Any) -> int:
        try:
            values = [lift(ctx, args[i]) for i, lift in enumerate(self.lifts)]
        except Exception as error:
            log.exception("capsock: cannot convert the arguments of %s", self.name)
            return _trap(f"capsock: bad arguments to {self.name}: {error}")
        try:
            value = self.impl(*values)
            out = ("ok", value) if self.fallible else value
        except NetError as error:
            if not self.fallible:
                return _trap(f"capsock: {self.name} failed: {error}")
            out = ("err", error.code.value)
        except Exception as error:
            log.exception("capsock: unexpected error in %s", self.name)
            if not self.fallible:
                return _trap(f"capsock: internal error in {self.name}: {error!r}")
            out = ("err", ErrorCode.UNKNOWN.value)
        if self.lower is not None:
            try:
                self.lower(ctx, out, results[0])
            except Exception as error:
                log.exception("capsock: cannot convert the result of %s", self.name)
                return _trap(f"capsock: bad result from {self.name}: {error}")
        return 0


def _trap(message: str) -> int:
    pointer = WasmtimeError(message)._consume()
    return ctypes.cast(pointer, ctypes.c_void_p).value or 0


_ENTRIES: dict[int, _Entry] = {}
_ENTRY_IDS = itertools.count(1)


@ffi.wasmtime_component_func_callback_t  # type: ignore[untyped-decorator]
def _trampoline(env: int | None, ctx: Any, _ty: Any, args: Any, _nargs: int,
                results: Any, _nresults: int) -> int:
    try:
        return _ENTRIES[env or 0].call(ctx, args, results)
    except BaseException as error:  # noqa: BLE001 - nothing may unwind into C
        return _trap(f"capsock: host failure: {error!r}")


@ctypes.CFUNCTYPE(None, ctypes.c_void_p)  # type: ignore[untyped-decorator]
def _finalize(env: int | None) -> None:
    _ENTRIES.pop(env or 0, None)


def _add_func(instance: LinkerInstance, name: str, entry: _Entry) -> None:
    entry_id = next(_ENTRY_IDS)
    _ENTRIES[entry_id] = entry
    encoded = name.encode("utf-8")
    error = ffi.wasmtime_component_linker_instance_add_func(
        instance.ptr(), ctypes.create_string_buffer(encoded), len(encoded),
        _trampoline, entry_id, _finalize)
    if error:
        raise WasmtimeError._from_ptr(error)


def _is_error_code(ty: Any) -> bool:
    return isinstance(ty, EnumType) and "access-denied" in ty.names


def _resolve(iface: Any, name: str) -> Callable[..., Any] | None:
    """The Python callable for a WIT function name, or None."""
    if name.startswith("[method]"):
        resource, _, method = name[len("[method]"):].partition(".")
        cls = iface.resources.get(resource)
        return getattr(cls, snake(method), None) if cls is not None else None
    if name.startswith("[static]"):
        resource, _, function = name[len("[static]"):].partition(".")
        return getattr(iface, f"{snake(resource)}_{snake(function)}", None)
    if name.startswith("[constructor]"):
        return getattr(iface, f"{snake(name[len('[constructor]'):])}_new", None)
    return getattr(iface, snake(name), None)


def _destructor(table: HandleTable) -> Callable[[Any, int], None]:
    def drop(_store: Any, rep: int) -> None:
        table.drop(rep)
    return drop


def link(linker: Linker, engine: Engine, component: Component,
         interfaces: Mapping[str, Any], table: HandleTable) -> list[str]:
    """Define every `capsock:net` import of `component` on `linker`.

    `interfaces` maps interface names (``"socket-tcp"``) to implementations.
    Returns the names of the interfaces linked. Raises :class:`LinkError`
    listing every missing implementation.
    """
    compiler = Compiler(table)
    missing: list[str] = []
    linked: list[str] = []
    defined: list[ResourceType] = []
    plan: list[tuple[str, ComponentInstanceType]] = []
    for import_name, extern in component.type.imports(engine).items():
        if import_name.startswith(PACKAGE):
            ty = extern.ty
            assert isinstance(ty, ComponentInstanceType)
            plan.append((import_name, ty))
    with linker.root() as root:
        for import_name, ty in plan:
            iface_name = import_name[len(PACKAGE):].partition("@")[0]
            iface = interfaces.get(iface_name)
            if iface is None:
                missing.append(f"interface {import_name}")
                continue
            with root.add_instance(import_name) as instance:
                _link_instance(instance, engine, ty, iface, import_name, table,
                               compiler, defined, missing)
            linked.append(iface_name)
    if missing:
        raise LinkError("the component imports functions capsock does not implement:\n  "
                        + "\n  ".join(missing))
    return linked


def _link_instance(instance: LinkerInstance, engine: Engine, ty: ComponentInstanceType,
                   iface: Any, import_name: str, table: HandleTable, compiler: Compiler,
                   defined: list[ResourceType], missing: list[str]) -> None:
    exports = ty.exports(engine)
    functions: list[tuple[str, FuncType]] = []
    for name, extern in exports.items():
        item = extern.ty
        if isinstance(item, ResourceType):
            if any(item == known for known in defined):
                continue  # a `use`d resource, defined by its own interface
            defined.append(item)
            host_type = table.define(f"{import_name}#{name}", item)
            instance.add_resource(name, host_type, _destructor(table))
        elif isinstance(item, FuncType):
            functions.append((name, item))
    for name, func_type in functions:
        impl = _resolve(iface, name)
        if impl is None:
            missing.append(f"{import_name}#{name}")
            continue
        entry = _compile(compiler, f"{import_name}#{name}", impl, func_type)
        _add_func(instance, name, entry)


def _compile(compiler: Compiler, name: str, impl: Callable[..., Any], ty: FuncType) -> _Entry:
    lifts = [compiler.lift(param) for _, param in ty.params]
    result = ty.result
    fallible = isinstance(result, ResultType) and _is_error_code(result.err)
    lower = compiler.lower(result) if result is not None else None
    return _Entry(name, impl, lifts, lower, fallible)


__all__ = ["Interface", "LinkError", "link", "snake"]
