"""Conversion between wasmtime's C component values and Python values.

wasmtime-py converts values by walking its `ValType` objects on every call,
re-querying the C API for each nested type, and converts `list<u8>` one
element at a time (~135 ms for 64 KiB). This module instead *compiles* each
WIT type once, at link time, into a pair of closures:

* a **lift** ``(val) -> object`` reading a ``wasmtime_component_val_t``;
* a **lower** ``(ctx, object, val) -> None`` writing one.

`list<u8>` never loops in Python: wasmtime stores it as an array of 32-byte
values whose byte payload sits at a fixed offset, so a strided `memoryview`
slice reads or writes all payload bytes at C speed (~1 ms for 64 KiB).

Python representations (chosen for speed and unambiguity, since the
conversion is type-directed):

=================  ==========================================
WIT                Python
=================  ==========================================
bool, integers     bool, int
string             str
enum               str (the case name, e.g. ``"access-denied"``)
list<u8>           bytes (lower also takes bytearray/memoryview)
list<T>            list
tuple<...>         tuple
record             dict keyed by WIT field name
variant            :class:`Case` ``(tag, value)``
option<T>          None or the value (nested options are refused)
result<T, E>       :class:`Case` ``("ok"|"err", value)``
own/borrow         the host object (see :mod:`capsock.binding.handles`)
=================  ==========================================
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any, NamedTuple

from wasmtime import _ffi as ffi
from wasmtime.component import (
    S8,
    S16,
    S32,
    S64,
    U8,
    U16,
    U32,
    U64,
    Bool,
    BorrowType,
    Char,
    EnumType,
    ListType,
    OptionType,
    OwnType,
    RecordType,
    ResultType,
    String,
    TupleType,
    ValType,
    VariantType,
)

ValPtr = Any  # ctypes pointer to wasmtime_component_val_t
Context = Any  # ctypes pointer to wasmtime_context_t
Lift = Callable[[Context, Any], Any]
Lower = Callable[[Context, Any, Any], None]


class Case(NamedTuple):
    """A variant or result value: the case name and its payload."""

    tag: str
    value: Any = None


class CodecError(TypeError):
    """A WIT type this codec does not support, found at link time."""


_VAL = ffi.wasmtime_component_val_t
_VAL_SIZE = ctypes.sizeof(_VAL)
_PAYLOAD_OFFSET = ffi.wasmtime_component_val.of.offset
_K = {name: getattr(ffi, f"WASMTIME_COMPONENT_{name}").value for name in (
    "BOOL", "S8", "U8", "S16", "U16", "S32", "U32", "S64", "U64", "CHAR",
    "STRING", "LIST", "RECORD", "TUPLE", "VARIANT", "ENUM", "OPTION", "RESULT",
    "RESOURCE",
)}


def _name_from(vec: Any) -> str:
    """Read a wasm_name_t without freeing it."""
    return ctypes.string_at(vec.data, vec.size).decode("utf-8")


def _new_name(text: str) -> Any:
    return ffi.str_to_capi(text)


class Resources:
    """How the codec turns resource handles into reps and back.

    The binding layer supplies this; it is the one place that knows the
    borrow rule (see :mod:`capsock.binding.handles`).
    """

    def lift_resource(self, ctx: Context, any_ptr: Any, owned: bool) -> object:
        raise NotImplementedError

    def lower_resource(self, ctx: Context, obj: Any, type_id: int) -> Any:
        raise NotImplementedError

    def type_id(self, ty: Any) -> int:
        raise NotImplementedError


class Compiler:
    """Compiles `ValType`s into lift/lower closures, memoized per type."""

    def __init__(self, resources: Resources) -> None:
        self._resources = resources

    # -- lift ---------------------------------------------------------------
    def lift(self, ty: ValType) -> Lift:
        """A closure reading a value of `ty` into Python (consuming it)."""
        if isinstance(ty, Bool):
            return lambda ctx, v: bool(v.of.boolean)
        for cls, field in ((U8, "u8"), (U16, "u16"), (U32, "u32"), (U64, "u64"),
                           (S8, "s8"), (S16, "s16"), (S32, "s32"), (S64, "s64")):
            if isinstance(ty, cls):
                return _int_lift(field)
        if isinstance(ty, Char):
            return lambda ctx, v: chr(v.of.character)
        if isinstance(ty, String):
            return _lift_string
        if isinstance(ty, EnumType):
            return _lift_enum
        if isinstance(ty, ListType):
            element = ty.element
            if isinstance(element, U8):
                return _lift_bytes
            return _lift_list(self.lift(element))
        if isinstance(ty, TupleType):
            return _lift_tuple([self.lift(t) for t in ty.elements])
        if isinstance(ty, RecordType):
            return _lift_record([(name, self.lift(t)) for name, t in ty.fields])
        if isinstance(ty, VariantType):
            return _lift_variant({name: (self.lift(t) if t is not None else None)
                                  for name, t in ty.cases})
        if isinstance(ty, OptionType):
            if isinstance(ty.payload, OptionType):
                raise CodecError("option<option<T>> is not supported")
            return _lift_option(self.lift(ty.payload))
        if isinstance(ty, ResultType):
            ok, err = ty.ok, ty.err
            return _lift_result(self.lift(ok) if ok else None, self.lift(err) if err else None)
        if isinstance(ty, (OwnType, BorrowType)):
            owned = isinstance(ty, OwnType)
            resources = self._resources
            return lambda ctx, v: _lift_resource(resources, ctx, v, owned)
        raise CodecError(f"cannot lift WIT type {type(ty).__name__}")

    # -- lower --------------------------------------------------------------
    def lower(self, ty: ValType) -> Lower:
        """A closure writing a Python value of `ty` into a C value."""
        if isinstance(ty, Bool):
            return _scalar_lower(_K["BOOL"], "boolean", bool)
        for cls, field, kind in ((U8, "u8", "U8"), (U16, "u16", "U16"), (U32, "u32", "U32"),
                                 (U64, "u64", "U64"), (S8, "s8", "S8"), (S16, "s16", "S16"),
                                 (S32, "s32", "S32"), (S64, "s64", "S64")):
            if isinstance(ty, cls):
                return _scalar_lower(_K[kind], field, int)
        if isinstance(ty, Char):
            return _scalar_lower(_K["CHAR"], "character", ord)
        if isinstance(ty, String):
            return _lower_string
        if isinstance(ty, EnumType):
            names = frozenset(ty.names)
            return _lower_enum(names)
        if isinstance(ty, ListType):
            element = ty.element
            if isinstance(element, U8):
                return _lower_bytes
            return _lower_list(self.lower(element))
        if isinstance(ty, TupleType):
            return _lower_tuple([self.lower(t) for t in ty.elements])
        if isinstance(ty, RecordType):
            return _lower_record([(name, self.lower(t)) for name, t in ty.fields])
        if isinstance(ty, VariantType):
            return _lower_variant({name: (self.lower(t) if t is not None else None)
                                   for name, t in ty.cases})
        if isinstance(ty, OptionType):
            if isinstance(ty.payload, OptionType):
                raise CodecError("option<option<T>> is not supported")
            return _lower_option(self.lower(ty.payload))
        if isinstance(ty, ResultType):
            ok, err = ty.ok, ty.err
            return _lower_result(self.lower(ok) if ok else None, self.lower(err) if err else None)
        if isinstance(ty, OwnType):
            resources = self._resources
            type_id = resources.type_id(ty.ty)
            return lambda ctx, rep, v: _lower_resource(resources, ctx, rep, type_id, v)
        raise CodecError(f"cannot lower WIT type {type(ty).__name__}")


# -- scalars -----------------------------------------------------------------

def _int_lift(field: str) -> Lift:
    def lift(ctx: Context, v: Any) -> int:
        return int(getattr(v.of, field))
    return lift


def _scalar_lower(kind: int, field: str, convert: Callable[[Any], Any]) -> Lower:
    def lower(ctx: Context, value: Any, v: Any) -> None:
        v.kind = kind
        setattr(v.of, field, convert(value))
    return lower


def _lift_string(ctx: Context, v: Any) -> str:
    text = _name_from(v.of.string)
    ffi.wasm_byte_vec_delete(ctypes.byref(v.of.string))
    return text


def _lower_string(ctx: Context, value: Any, v: Any) -> None:
    if not isinstance(value, str):
        raise TypeError(f"expected str, got {type(value).__name__}")
    v.kind = _K["STRING"]
    v.of.string = _new_name(value)


def _lift_enum(ctx: Context, v: Any) -> str:
    name = _name_from(v.of.enumeration)
    ffi.wasm_byte_vec_delete(ctypes.byref(v.of.enumeration))
    return name


def _lower_enum(names: frozenset[str]) -> Lower:
    """Each case name is encoded once; a call makes one C copy of it.

    (Through `ffi.str_to_capi` an enum cost ~8 us per call: type checks,
    a ctypes array and a memmove; every `err` result is an enum.)
    """
    encoded = {name: (ctypes.c_ubyte * len(name.encode())).from_buffer_copy(name.encode())
               for name in names}
    kind = _K["ENUM"]
    new_vec = ffi.wasm_byte_vec_new
    byte_vec = ffi.wasm_byte_vec_t

    def lower(ctx: Context, value: Any, v: Any) -> None:
        data = encoded.get(value)
        if data is None:
            raise ValueError(f"{value!r} is not one of {sorted(names)}")
        vec = byte_vec()
        new_vec(ctypes.byref(vec), len(data), data)
        v.kind = kind
        v.of.enumeration = vec
    return lower


# -- lists -------------------------------------------------------------------

def _lift_bytes(ctx: Context, v: Any) -> bytes:
    """Read a list<u8> with one strided copy instead of a loop per byte."""
    vec = v.of.list
    size = vec.size
    if size == 0:
        ffi.wasmtime_component_vallist_delete(ctypes.byref(vec))
        return b""
    address = ctypes.addressof(vec.data.contents)
    raw = (ctypes.c_char * (size * _VAL_SIZE)).from_address(address)
    data = bytes(memoryview(raw)[_PAYLOAD_OFFSET::_VAL_SIZE])
    ffi.wasmtime_component_vallist_delete(ctypes.byref(vec))
    return data


class _Scratch:
    """A reusable buffer pre-filled with U8 kind bytes, grown on demand.

    Lowering N bytes writes only the N payload bytes into it (one strided
    assignment) and copies it into wasmtime's array with one memmove.
    """

    def __init__(self) -> None:
        self.capacity = 0
        self.buffer = bytearray()
        self.view = memoryview(self.buffer)

    def ensure(self, count: int) -> None:
        if count <= self.capacity:
            return
        capacity = max(count, 2 * self.capacity, 4096)
        self.view.release()
        self.buffer = bytearray(capacity * _VAL_SIZE)
        self.view = memoryview(self.buffer)
        self.view[0::_VAL_SIZE] = bytes([_K["U8"]]) * capacity
        self.capacity = capacity


_SCRATCH = _Scratch()


def _lower_bytes(ctx: Context, value: Any, v: Any) -> None:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected bytes, got {type(value).__name__}")
    count = len(value)
    vec = ffi.wasmtime_component_vallist_t()
    if count == 0:
        ffi.wasmtime_component_vallist_new_empty(ctypes.byref(vec))
    else:
        ffi.wasmtime_component_vallist_new_uninit(ctypes.byref(vec), count)
        _SCRATCH.ensure(count)
        span = count * _VAL_SIZE
        _SCRATCH.view[_PAYLOAD_OFFSET:span:_VAL_SIZE] = value
        buffer = (ctypes.c_char * span).from_buffer(_SCRATCH.buffer)
        ctypes.memmove(vec.data, buffer, span)
        del buffer
    v.kind = _K["LIST"]
    v.of.list = vec


def _lift_list(element: Lift) -> Lift:
    def lift(ctx: Context, v: Any) -> list[Any]:
        vec = v.of.list
        data = vec.data
        items = [element(ctx, data[i]) for i in range(vec.size)]
        _neutralize(data, vec.size)
        ffi.wasmtime_component_vallist_delete(ctypes.byref(vec))
        return items
    return lift


def _neutralize(data: Any, count: int) -> None:
    """Mark consumed elements as plain bools so the C free skips them."""
    for i in range(count):
        data[i].kind = _K["BOOL"]


def _lower_list(element: Lower) -> Lower:
    def lower(ctx: Context, value: Any, v: Any) -> None:
        items = list(value)
        vec = ffi.wasmtime_component_vallist_t()
        ffi.wasmtime_component_vallist_new_uninit(ctypes.byref(vec), len(items))
        _fill(ctx, vec.data, items, [element] * len(items), vec,
              ffi.wasmtime_component_vallist_delete)
        v.kind = _K["LIST"]
        v.of.list = vec
    return lower


def _fill(ctx: Context, data: Any, items: list[Any], lowers: list[Lower], vec: Any,
          delete: Callable[[Any], None]) -> None:
    """Lower items into an uninitialized array, freeing it on failure."""
    done = 0
    try:
        for i, (item, lower) in enumerate(zip(items, lowers, strict=True)):
            lower(ctx, item, data[i])
            done += 1
    except BaseException:
        for j in range(done, len(items)):
            data[j].kind = _K["BOOL"]
            data[j].of.boolean = False
        delete(ctypes.byref(vec))
        raise


# -- tuples and records --------------------------------------------------------

def _lift_tuple(elements: list[Lift]) -> Lift:
    def lift(ctx: Context, v: Any) -> tuple[Any, ...]:
        vec = v.of.tuple
        data = vec.data
        result = tuple(element(ctx, data[i]) for i, element in enumerate(elements))
        _neutralize(data, vec.size)
        ffi.wasmtime_component_valtuple_delete(ctypes.byref(vec))
        return result
    return lift


def _lower_tuple(elements: list[Lower]) -> Lower:
    def lower(ctx: Context, value: Any, v: Any) -> None:
        items = list(value)
        if len(items) != len(elements):
            raise ValueError(f"expected a {len(elements)}-tuple, got {len(items)} items")
        vec = ffi.wasmtime_component_valtuple_t()
        ffi.wasmtime_component_valtuple_new_uninit(ctypes.byref(vec), len(items))
        _fill(ctx, vec.data, items, elements, vec, ffi.wasmtime_component_valtuple_delete)
        v.kind = _K["TUPLE"]
        v.of.tuple = vec
    return lower


def _lift_record(fields: list[tuple[str, Lift]]) -> Lift:
    def lift(ctx: Context, v: Any) -> dict[str, Any]:
        vec = v.of.record
        data = vec.data
        result = {}
        for i, (name, field) in enumerate(fields):
            result[name] = field(ctx, data[i].val)
            data[i].val.kind = _K["BOOL"]
        ffi.wasmtime_component_valrecord_delete(ctypes.byref(vec))
        return result
    return lift


def _lower_record(fields: list[tuple[str, Lower]]) -> Lower:
    def lower(ctx: Context, value: Any, v: Any) -> None:
        vec = ffi.wasmtime_component_valrecord_t()
        ffi.wasmtime_component_valrecord_new_uninit(ctypes.byref(vec), len(fields))
        data = vec.data
        done = 0
        try:
            for i, (name, field) in enumerate(fields):
                field(ctx, value[name], data[i].val)
                data[i].name = _new_name(name)
                done += 1
        except BaseException:
            for j in range(done, len(fields)):
                data[j].val.kind = _K["BOOL"]
                data[j].name = _new_name("")
            ffi.wasmtime_component_valrecord_delete(ctypes.byref(vec))
            raise
        v.kind = _K["RECORD"]
        v.of.record = vec
    return lower


# -- variants, options, results -----------------------------------------------

def _take_boxed(ctx: Context, ptr: Any, lift: Lift | None) -> Any:
    """Lift a heap-allocated payload and free its box."""
    if not ptr or lift is None:
        return None
    value = lift(ctx, ptr.contents)
    ptr.contents.kind = _K["BOOL"]
    ffi.wasmtime_component_val_free(ptr)
    return value


def _box(ctx: Context, value: Any, lower: Lower | None) -> Any:
    if lower is None:
        return None
    raw = _VAL()
    lower(ctx, value, raw)
    return ffi.wasmtime_component_val_new(ctypes.byref(raw))


def _lift_variant(cases: dict[str, Lift | None]) -> Lift:
    def lift(ctx: Context, v: Any) -> Case:
        variant = v.of.variant
        tag = _name_from(variant.discriminant)
        ffi.wasm_byte_vec_delete(ctypes.byref(variant.discriminant))
        payload = _take_boxed(ctx, variant.val, cases[tag])
        variant.val = None
        return Case(tag, payload)
    return lift


def _lower_variant(cases: dict[str, Lower | None]) -> Lower:
    def lower(ctx: Context, value: Any, v: Any) -> None:
        tag, payload = value
        if tag not in cases:
            raise ValueError(f"{tag!r} is not a case of {sorted(cases)}")
        boxed = _box(ctx, payload, cases[tag])
        v.kind = _K["VARIANT"]
        v.of.variant.discriminant = _new_name(tag)
        v.of.variant.val = boxed
    return lower


def _lift_option(payload: Lift) -> Lift:
    def lift(ctx: Context, v: Any) -> Any:
        value = _take_boxed(ctx, v.of.option, payload)
        v.of.option = None
        return value
    return lift


def _lower_option(payload: Lower) -> Lower:
    def lower(ctx: Context, value: Any, v: Any) -> None:
        v.kind = _K["OPTION"]
        v.of.option = None if value is None else _box(ctx, value, payload)
    return lower


def _lift_result(ok: Lift | None, err: Lift | None) -> Lift:
    def lift(ctx: Context, v: Any) -> Case:
        result = v.of.result
        if result.is_ok:
            return Case("ok", _take_boxed(ctx, result.val, ok))
        return Case("err", _take_boxed(ctx, result.val, err))
    return lift


def _lower_result(ok: Lower | None, err: Lower | None) -> Lower:
    def lower(ctx: Context, value: Any, v: Any) -> None:
        tag, payload = value
        is_ok = tag == "ok"
        boxed = _box(ctx, payload, ok if is_ok else err)
        v.kind = _K["RESULT"]
        v.of.result.is_ok = is_ok
        v.of.result.val = boxed
    return lower


# -- resources -----------------------------------------------------------------

def _lift_resource(resources: Resources, ctx: Context, v: Any, owned: bool) -> object:
    any_ptr = ffi.take_pointer(v.of, "resource")
    return resources.lift_resource(ctx, any_ptr, owned)


def _lower_resource(resources: Resources, ctx: Context, obj: Any, type_id: int, v: Any) -> None:
    v.kind = _K["RESOURCE"]
    v.of.resource = resources.lower_resource(ctx, obj, type_id)
