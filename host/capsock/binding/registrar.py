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
  (:mod:`capsock.binding.codec`), so a call does no type introspection. A
  function returning `result<T, error-code>` gets one lower for ``ok(T)``
  and one for ``err(error-code)``, written straight from the payload.

Missing implementations are collected and reported together, before the
guest runs, instead of trapping at call time. A component built against
another version of `capsock:net` is refused first, with one message that
says to rebuild it (a version's functions may keep their names and change
their meaning, so matching by name across versions would be a guess).

Every function gets its own C callback, made at link time by
:func:`_compile_call` (unrolled for one and two arguments, the commonest
shapes; its conversions compiled at its first call), which is also the
one place that maps Python exceptions to WIT:
a :class:`NetError` becomes the `err` case of the function's
`result<_, error-code>`; any other exception is logged and becomes
`unknown` (or a trap, for a function that returns no `result`). A Python
exception never escapes into wasmtime.

The callback's C signature is declared with plain ``void *`` / ``size_t``
parameters (wasmtime-py declares typed pointers, and ctypes builds a
pointer object for each of them on every call); the codec reads and writes
values by address.
"""

from __future__ import annotations

import ctypes
import itertools
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from wasmtime import Engine
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

from .._log import LineBudget, log
from ..errors import ErrorCode, NetError
from ._wasmtime_capi import dll, error_from_pointer, error_new
from .codec import VAL_SIZE, Compiler, Lift, Lower, Refuse
from .handles import HandleTable

PACKAGE = "capsock:net/"
#: The `capsock:net` version the implementations in `interfaces/` follow.
VERSION = "0.2.0"


class Interface(Protocol):
    """A per-instance implementation of one WIT interface."""

    #: WIT resource name -> class of the host objects behind its handles.
    resources: Mapping[str, type]


class WitError(Exception):
    """An expected failure whose `err` payload the implementation wrote in
    the function's own WIT terms (a `wasi:io` `stream-error`, a
    `wasi:filesystem` `error-code`): lowered as the `err` case as is."""

    def __init__(self, value: Any) -> None:
        super().__init__(value)
        self.value = value


class GuestTrap(Exception):
    """End the guest with a trap carrying this message, logging nothing
    (`wasi:cli/exit`, a precondition the WIT says traps)."""


class LinkError(Exception):
    """The component needs functions no implementation provides."""


class VersionError(LinkError):
    """The component was built against another version of `capsock:net`."""


def snake(name: str) -> str:
    return name.replace("-", "_")


#: wasmtime_component_func_callback_t's arguments -> an error pointer or 0
Call = Callable[[int, int, int, int, int, int, int], int]


#: What a host call converts with: each argument's lift, the lower of the
#: result (for a fallible function, of ``ok(value)``) and, for a function
#: returning `result<_, error-code>`, the lower of ``err(code)``.
Plan = tuple[list[Lift], Lower | None, Lower | None]


def _compile_call(name: str, impl: Callable[..., Any], plan: Callable[[], Plan],
                  lines: LineBudget | None = None) -> Call:
    """What one host call of `name` runs: lift, call, lower, map errors.

    `plan()` makes the conversions, at the function's first call (reading
    a function's types from wasmtime and compiling their conversions costs
    ~0.2 ms per function; linking all ~70 eagerly was most of `link`, ~15 ms
    of every start, while a guest calls a handful of them). It runs inside
    the call itself rather than in a wrapper around it: one Python frame
    per host call, not two. A `plan()` that fails traps this call and is
    tried again at the next.
    """
    budget = lines if lines is not None else LineBudget()
    arity = -1  # not planned yet
    first: Lift | None = None
    second: Lift | None = None
    lift_args: Callable[[int, int], tuple[Any, ...]] | None = None
    lower_ok: Lower | None = None
    lower_err: Lower | None = None

    def call(env: int, ctx: int, _ty: int, args: int, _nargs: int, results: int,
             _nresults: int) -> int:
        nonlocal arity, first, second, lift_args, lower_ok, lower_err
        if arity < 0:
            try:
                lifts, lower_ok, lower_err = plan()
            except Exception as error:  # nothing may unwind into C
                log.exception("capsock: cannot compile the conversions of %s", name)
                return _trap(f"capsock: cannot convert the types of {name}: {error}")
            first = lifts[0] if lifts else None
            second = lifts[1] if len(lifts) > 1 else None
            lift_args = _lifter(lifts)
            arity = len(lifts)
        try:
            try:  # one and two arguments (`self`, `self` and one) are unrolled
                if arity == 1:
                    this = first(ctx, args)  # type: ignore[misc]
                elif arity == 2:
                    this = first(ctx, args)  # type: ignore[misc]
                    other = second(ctx, args + VAL_SIZE)  # type: ignore[misc]
                else:
                    values = lift_args(ctx, args)  # type: ignore[misc]
            except NetError as error:  # an argument over a limit (max_call_bytes)
                if lower_err is None:
                    return _trap(f"capsock: {name} refused: {error}")
                lower_err(ctx, error.code.value, results)
                return 0
            except Exception as error:
                log.exception("capsock: cannot convert the arguments of %s", name)
                return _trap(f"capsock: bad arguments to {name}: {error}")
            try:
                if arity == 1:
                    value = impl(this)
                elif arity == 2:
                    value = impl(this, other)
                else:
                    value = impl(*values)
            except NetError as error:
                if lower_err is None:
                    return _trap(f"capsock: {name} failed: {error}")
                value, lower = error.code.value, lower_err
            except WitError as error:
                if lower_err is None:
                    return _trap(f"capsock: {name} failed: {error}")
                value, lower = error.value, lower_err
            except GuestTrap as error:
                return _trap(str(error))
            except Exception as error:
                _log_unexpected(budget, name)
                if lower_err is None:
                    return _trap(f"capsock: internal error in {name}: {error!r}")
                value, lower = ErrorCode.UNKNOWN.value, lower_err
            else:
                if lower_ok is None:
                    return 0
                lower = lower_ok
            try:
                lower(ctx, value, results)
            except Exception as error:
                log.exception("capsock: cannot convert the result of %s", name)
                return _trap(f"capsock: bad result from {name}: {error}")
            return 0
        except BaseException as error:  # noqa: BLE001 - nothing may unwind into C
            return _trap(f"capsock: host failure: {error!r}")
    return call


def _log_unexpected(budget: LineBudget, name: str) -> None:
    """Log the exception being handled, within the instance's budget: a
    guest that found a way to this path could otherwise repeat it and
    flood the host's log with tracebacks (issue 15, defect 7)."""
    write, suppressed = budget.admit()
    if suppressed:
        log.error("capsock: %d more unexpected errors suppressed", suppressed)
    if write:
        log.exception("capsock: unexpected error in %s", name)


def _lifter(lifts: list[Lift]) -> Callable[[int, int], tuple[Any, ...]]:
    """Lift every argument into a tuple."""
    if not lifts:
        return lambda ctx, args: ()
    if len(lifts) == 3:
        first, second, third = lifts
        return lambda ctx, args: (first(ctx, args), second(ctx, args + VAL_SIZE),
                                  third(ctx, args + 2 * VAL_SIZE))
    offsets = [(lift, i * VAL_SIZE) for i, lift in enumerate(lifts)]
    return lambda ctx, args: tuple(lift(ctx, args + offset) for lift, offset in offsets)


def _trap(message: str) -> int:
    return error_new(message)


_CALLS: dict[int, Any] = {}  # id -> the C callback, kept alive until wasmtime drops it
_CALL_IDS = itertools.count(1)

#: wasmtime_component_func_callback_t, with every pointer as a plain int
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p,
                             ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
                             ctypes.c_void_p, ctypes.c_size_t)
_FINALIZER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


@_FINALIZER  # type: ignore[untyped-decorator]
def _finalize(env: int | None) -> None:
    _CALLS.pop(env or 0, None)


_add_func_c = dll["wasmtime_component_linker_instance_add_func"]
_add_func_c.restype = ctypes.c_void_p
_add_func_c.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, _CALLBACK,
                        ctypes.c_void_p, _FINALIZER]


def _add_func(instance: LinkerInstance, name: str, call: Call) -> None:
    call_id = next(_CALL_IDS)
    callback = _CALLBACK(call)
    _CALLS[call_id] = callback
    encoded = name.encode("utf-8")
    error = _add_func_c(ctypes.cast(instance.ptr(), ctypes.c_void_p), encoded, len(encoded),
                        callback, call_id, _finalize)
    if error:
        _CALLS.pop(call_id, None)
        raise error_from_pointer(error)


def _is_error_code(compiler: Compiler, ty: Any) -> bool:
    return isinstance(ty, EnumType) and "access-denied" in compiler.enum_names(ty)


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


#: wasmtime_component_resource_destructor_t, pointers as plain ints (as
#: `_CALLBACK`): wasmtime-py's own destructor path builds a typed context
#: pointer, a StoreContext and a closure for every drop, and every
#: connection a server accepts ends in one.
_DESTRUCTOR = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p,
                               ctypes.c_uint32)

_add_resource_c = dll["wasmtime_component_linker_instance_add_resource"]
_add_resource_c.restype = ctypes.c_void_p
_add_resource_c.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p,
                            _DESTRUCTOR, ctypes.c_void_p, _FINALIZER]


def _destructor(table: HandleTable) -> Callable[[int | None, int | None, int], int]:
    """The C destructor of a resource type: the guest dropped the handle
    `rep`; the table forgets and releases its object (`release` logs what
    a release raises). Nothing unwinds into C: anything else traps."""
    def drop(_env: int | None, _ctx: int | None, rep: int) -> int:
        try:
            table.drop(rep)
        except BaseException as error:  # noqa: BLE001 - nothing may unwind into C
            return _trap(f"capsock: cannot drop handle {rep}: {error!r}")
        return 0
    return drop


def _add_resource(instance: LinkerInstance, name: str, host_type: ResourceType,
                  table: HandleTable) -> None:
    call_id = next(_CALL_IDS)
    destructor = _DESTRUCTOR(_destructor(table))
    _CALLS[call_id] = destructor
    encoded = name.encode("utf-8")
    error = _add_resource_c(ctypes.cast(instance.ptr(), ctypes.c_void_p), encoded, len(encoded),
                            ctypes.cast(host_type.ptr(), ctypes.c_void_p), destructor, call_id,
                            _finalize)
    if error:
        _CALLS.pop(call_id, None)
        raise error_from_pointer(error)


def link(linker: Linker, engine: Engine, component: Component,
         interfaces: Mapping[str, Any], table: HandleTable, *,
         max_call_bytes: int | None = None, refuse: Refuse | None = None,
         wasi: Mapping[str, Any] | None = None) -> list[str]:
    """Define every `capsock:net` import of `component` on `linker`.

    `interfaces` maps interface names (``"socket-tcp"``) to implementations.
    Returns the names of the interfaces linked. Raises :class:`LinkError`
    listing every missing implementation. `max_call_bytes` caps each string
    and list<u8> argument (codec.Compiler); `refuse` makes the error.

    `wasi`, when given, maps unversioned WASI interface names
    (``"wasi:io/streams"``) to implementations too: then every ``wasi:``
    import is linked from it, under the exact versioned name the component
    imports (any `0.2.x` up to :data:`WASI_MAX_PATCH`; the 0.2 line only
    adds items, and a function's meaning never changes within it), with
    the same handle table and codec as `capsock:net`, so a socket's
    streams and pollables are one kind of handle across both.

    The conversions compiled here own scratch slots and `table` one output
    slot, so the linker serves one instance (one thread at a time), as the
    per-instance `interfaces` and `table` already imply.
    """
    compiler = Compiler(table, max_call_bytes, refuse)
    lines = LineBudget()  # this instance's unexpected-error log lines
    missing: list[str] = []
    linked: list[str] = []
    defined: list[ResourceType] = []
    plan: list[tuple[str, ComponentInstanceType]] = []
    for import_name, extern in component.type.imports(engine).items():
        if import_name.startswith(PACKAGE) or (wasi is not None
                                               and import_name.startswith(WASI_PREFIX)):
            ty = extern.ty
            assert isinstance(ty, ComponentInstanceType)
            plan.append((import_name, ty))
    _check_version([name for name, _ in plan if name.startswith(PACKAGE)])
    with linker.root() as root:
        for import_name, ty in plan:
            if import_name.startswith(PACKAGE):
                iface_name = import_name[len(PACKAGE):].partition("@")[0]
                iface = interfaces.get(iface_name)
            else:
                iface_name = import_name
                iface = _wasi_interface(wasi or {}, import_name)
            if iface is None:
                missing.append(f"interface {import_name}")
                continue
            with root.add_instance(import_name) as instance:
                _link_instance(instance, engine, ty, iface, import_name, table,
                               compiler, defined, missing, lines)
            linked.append(iface_name)
    if missing:
        raise LinkError("the component imports functions capsock does not implement:\n  "
                        + "\n  ".join(missing))
    return linked


#: Imports linked from the `wasi` implementations of `link`.
WASI_PREFIX = "wasi:"
#: The last 0.2 patch release of WASI (0.3 needs async, which
#: wasmtime-py cannot host).
WASI_MAX_PATCH = 12


def _wasi_interface(wasi: Mapping[str, Any], import_name: str) -> Any:
    """The implementation of a versioned WASI import, or None (another
    major/minor version, or an interface not implemented)."""
    name, _, version = import_name.partition("@")
    major, _, rest = version.partition(".")
    minor, _, patch = rest.partition(".")
    patch = patch.partition("-")[0]
    if (major, minor) != ("0", "2") or not patch.isdigit() or int(patch) > WASI_MAX_PATCH:
        return None
    return wasi.get(name)


def _check_version(import_names: list[str]) -> None:
    """Refuse a component importing another `capsock:net` version.

    An unversioned name (``capsock:net/codec``, as hand-written test and
    benchmark components use) is matched by name alone: no WIT package of
    capsock's ever was unversioned, so it cannot be an old guest.
    """
    versions = sorted({name.partition("@")[2] for name in import_names} - {VERSION, ""})
    if versions:
        found = ", ".join(f"capsock:net@{v}" for v in versions)
        raise VersionError(
            f"the component was built against {found}, but this capsock implements "
            f"capsock:net@{VERSION}: rebuild the guest with this capsock "
            "(`capsock build APP.py -o APP.wasm`, or `python guest/build.py` in a checkout)")


def _link_instance(instance: LinkerInstance, engine: Engine, ty: ComponentInstanceType,
                   iface: Any, import_name: str, table: HandleTable, compiler: Compiler,
                   defined: list[ResourceType], missing: list[str],
                   lines: LineBudget) -> None:
    exports = ty.exports(engine)
    functions: list[tuple[str, FuncType]] = []
    for name, extern in exports.items():
        item = extern.ty
        if isinstance(item, ResourceType):
            if any(item == known for known in defined):
                continue  # a `use`d resource, defined by its own interface
            defined.append(item)
            host_type = table.define(f"{import_name}#{name}", item)
            _add_resource(instance, name, host_type, table)
        elif isinstance(item, FuncType):
            functions.append((name, item))
    for name, func_type in functions:
        impl = _resolve(iface, name)
        if impl is None:
            missing.append(f"{import_name}#{name}")
            continue
        _add_func(instance, name, _compile(compiler, f"{import_name}#{name}", impl,
                                           func_type, lines))


def _compile(compiler: Compiler, name: str, impl: Callable[..., Any], ty: FuncType,
             lines: LineBudget) -> Call:
    """`name`'s host call; its conversions are made at its first call."""
    return _compile_call(name, impl, lambda: _plan(compiler, name, ty), lines)


def _plan(compiler: Compiler, name: str, ty: FuncType) -> Plan:
    lifts = [compiler.lift(param) for _, param in ty.params]
    result = ty.result
    if result is None:
        return lifts, None, None
    if isinstance(result, ResultType):
        # An `error-code` result, and every WASI result, is written from
        # the bare payload (`ok`) or an exception (`err`); any other result
        # from the `Case` the implementation returns.
        error_code = isinstance(result.err, EnumType) and _is_error_code(compiler, result.err)
        if error_code or name.startswith(WASI_PREFIX):
            lower_err = compiler.lower_err(result)
            if error_code:
                assert isinstance(result.err, EnumType)
                lower_err = _translated(lower_err, compiler.enum_names(result.err))
            return lifts, compiler.lower_ok(result), lower_err
    return lifts, compiler.lower(result), None


#: What a core `ErrorCode` becomes in an `error-code` enum that lacks it
#: (`wasi:sockets/network.error-code` has no `limit-reached`: a guest over
#: its socket quota gets what the kernel's EMFILE gives in wasmtime).
_ERROR_FALLBACK = {"limit-reached": "new-socket-limit"}


def _translated(lower_err: Lower, names: list[str]) -> Lower:
    """`lower_err`, first mapping core error names the enum lacks."""
    missing = [code.value for code in ErrorCode if code.value not in names]
    if not missing:
        return lower_err
    table = {value: value for value in names}
    for value in missing:
        fallback = _ERROR_FALLBACK.get(value, "unknown")
        table[value] = fallback if fallback in names else "unknown"

    def lower(ctx: Any, value: Any, results: int) -> None:
        lower_err(ctx, table.get(value, value), results)
    return lower


__all__ = ["GuestTrap", "Interface", "LinkError", "VERSION", "VersionError", "WASI_MAX_PATCH",
           "WitError", "link", "snake"]
