"""Conversion between wasmtime's C component values and Python values.

wasmtime-py converts values by walking its `ValType` objects on every call,
re-querying the C API for each nested type, and converts `list<u8>` one
element at a time (~135 ms for 64 KiB). This module instead *compiles* each
WIT type once, at link time, into a pair of closures over raw addresses:

* a **lift** ``(ctx, address) -> object`` reading the
  ``wasmtime_component_val_t`` at `address`;
* a **lower** ``(ctx, object, address) -> None`` writing one there.

`ctx` is the ``wasmtime_context_t *`` of the call, as an int. Values are
read and written through memoryviews of the whole address space, one per
scalar format (``_WORDS[(a + 8) >> 3]`` is the 8-byte payload of the value
at `a`): an index operation, where a ctypes structure laid over the address
(``from_address``) costs an object per access. They are only ever indexed
at addresses wasmtime handed to the call, or inside memory it allocated
for the value being written, exactly as ``from_address`` would be. Every C
function is called through a pre-bound pointer (:data:`capi`) that takes
plain ints and keeps the GIL (the calls are short and never re-enter
Python).

Lifts never free: the values are a host call's arguments, which wasmtime
owns and drops after the callback returns (``crates/c-api/src/component/
linker.rs``: the argument ``Vec`` goes out of scope), so reading them is
all there is to do. A lower writes the payload first and the `kind` byte
last, so a value whose lowering failed half way is still the `bool` wasmtime
pre-filled the slot with and is dropped as such.

`list<u8>` never loops in Python: wasmtime stores it as an array of 32-byte
values whose byte payload sits at a fixed offset, so a strided `memoryview`
slice reads or writes all payload bytes at C speed (~1 ms for 64 KiB).

Python representations (chosen for speed and unambiguity, since the
conversion is type-directed; the two address variants, recognised by
their shape, are the core's own types, so an address is converted once,
here, and never exists as a throwaway `Case`):

=================  ==========================================
WIT                Python
=================  ==========================================
bool, integers     bool, int
string             str
enum               str (the case name, e.g. ``"access-denied"``)
flags              frozenset of the names set (lower takes any iterable)
list<u8>           bytes (lower also takes bytearray/memoryview)
list<T>            list
tuple<...>         tuple
record             dict keyed by WIT field name
ip-socket-address  :class:`capsock.addresses.SocketAddress`
ip-address         ``ipaddress.IPv4Address`` / ``IPv6Address``
variant            :class:`Case` ``(tag, value)``
option<T>          None or the value (nested options are refused)
result<T, E>       :class:`Case` ``("ok"|"err", value)``
own/borrow         the host object (see :mod:`capsock.binding.handles`)
=================  ==========================================

:meth:`Compiler.lower_ok` and :meth:`Compiler.lower_err` write the two
cases of a `result` directly from the payload, for the binding layer's
fallible functions (no :class:`Case` is built on that path).
"""

from __future__ import annotations

import ctypes
import ipaddress
import struct
import sys
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

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
    FlagsType,
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

from ..addresses import IPAddress, SocketAddress
from ..errors import NetError
from ._wasmtime_capi import dll, ffi

Context = Any  # the wasmtime_context_t * of a call, an int
Lift = Callable[[Context, int], Any]
Lower = Callable[[Context, Any, int], None]


class Case(NamedTuple):
    """A variant or result value: the case name and its payload."""

    tag: str
    value: Any = None


class CodecError(TypeError):
    """A WIT type this codec does not support, found at link time."""


# -- the C layout ---------------------------------------------------------------

_VAL = ffi.wasmtime_component_val_t
#: the size of one wasmtime_component_val_t (an argument's stride)
VAL_SIZE = _VAL_SIZE = ctypes.sizeof(_VAL)
_P = ffi.wasmtime_component_val.of.offset  # the payload
_ENTRY_SIZE = ctypes.sizeof(ffi.wasmtime_component_valrecord_entry)
_ENTRY_VAL = ffi.wasmtime_component_valrecord_entry.val.offset
_K = {name: getattr(ffi, f"WASMTIME_COMPONENT_{name}").value for name in (
    "BOOL", "S8", "U8", "S16", "U16", "S32", "U32", "S64", "U64", "CHAR",
    "STRING", "LIST", "RECORD", "TUPLE", "VARIANT", "ENUM", "OPTION", "RESULT",
    "RESOURCE", "FLAGS",
)}

#: The address space as bytes, and as each scalar format: the value at
#: address `a` has its kind byte at ``_BYTES[a]`` and, e.g., a u64 payload
#: at ``_VIEWS["Q"][(a + _P) >> 3]`` (values and their fields are aligned).
_BYTES: memoryview[int] = memoryview(
    (ctypes.c_char * (sys.maxsize & ~7)).from_address(0)).cast("B")
_VIEWS: dict[str, memoryview[Any]] = {
    fmt: _BYTES.cast(fmt) for fmt in ("?", "b", "B", "h", "H", "i", "I", "q", "Q")}
_WORDS: memoryview[int] = _VIEWS["Q"]

# The layout the views assume, checked against wasmtime-py's declarations:
# 8-byte pointers; a value is a kind byte and, at _P, a union whose vectors
# (string, enum, list, tuple, record, variant name) are (size, data), whose
# result is (is_ok, val) and whose variant is (name, val).
assert ctypes.sizeof(ctypes.c_void_p) == 8 and ctypes.alignment(_VAL) == 8 and _P == 8
assert ffi.wasm_byte_vec_t.data.offset == 8  # type: ignore[attr-defined]
assert ffi.wasmtime_component_valresult.val.offset == 8  # type: ignore[attr-defined]
assert ffi.wasmtime_component_valvariant.val.offset == 16  # type: ignore[attr-defined]
assert _ENTRY_VAL % 8 == 0 and _ENTRY_SIZE % 8 == 0


def _word(a: int) -> int:
    """The 8-byte word at address `a` (8-aligned)."""
    word: int = _WORDS[a >> 3]
    return word


def _vector(a: int) -> tuple[int, int]:
    """(size, data) of the vector payload of the value at `a`."""
    i = (a + _P) >> 3
    return _WORDS[i], _WORDS[i + 1]


def _set_vector(a: int, size: int, data: int) -> None:
    i = (a + _P) >> 3
    _WORDS[i] = size
    _WORDS[i + 1] = data


def _address(v: Any) -> int:
    """An address, or a ctypes value's address (the tests pass those)."""
    return v if isinstance(v, int) else ctypes.addressof(v)


class _CApi:
    """The C functions a call uses, bound once with int-only signatures.

    ``PYFUNCTYPE``: the GIL stays held (each call is a few hundred
    instructions and never calls back into Python), which saves a release
    and re-acquire per call, and, with several guest threads, a wait for
    another thread to hand the GIL back.
    """

    def __init__(self) -> None:
        p, size, u32, b = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint32, ctypes.c_bool

        def bind(name: str, restype: Any, *argtypes: Any) -> Any:
            return ctypes.PYFUNCTYPE(restype, *argtypes)((name, dll))

        self.byte_vec_new = bind("wasm_byte_vec_new", None, p, size, ctypes.c_char_p)
        self.val_new = bind("wasmtime_component_val_new", p, p)
        self.val_delete = bind("wasmtime_component_val_delete", None, p)
        self.vallist_new_uninit = bind("wasmtime_component_vallist_new_uninit", None, p, size)
        self.vallist_delete = bind("wasmtime_component_vallist_delete", None, p)
        self.valtuple_new_uninit = bind("wasmtime_component_valtuple_new_uninit", None, p, size)
        self.valtuple_delete = bind("wasmtime_component_valtuple_delete", None, p)
        self.valrecord_new_uninit = bind("wasmtime_component_valrecord_new_uninit", None, p,
                                         size)
        self.valrecord_delete = bind("wasmtime_component_valrecord_delete", None, p)
        self.valflags_new_uninit = bind("wasmtime_component_valflags_new_uninit", None, p, size)
        self.any_to_host = bind("wasmtime_component_resource_any_to_host", p, p, p, p)
        self.host_new = bind("wasmtime_component_resource_host_new", p, b, u32, u32)
        self.host_rep = bind("wasmtime_component_resource_host_rep", u32, p)
        self.host_delete = bind("wasmtime_component_resource_host_delete", None, p)
        self.host_to_any = bind("wasmtime_component_resource_host_to_any", p, p, p, p)


capi = _CApi()
_byte_vec_new = capi.byte_vec_new
_val_new = capi.val_new


class Resources:
    """How the codec turns resource handles into reps and back.

    The binding layer supplies this; it is the one place that knows the
    borrow rule (see :mod:`capsock.binding.handles`). Pointers are ints.
    """

    def lift_resource(self, ctx: Context, any_ptr: int, owned: bool) -> object:
        raise NotImplementedError

    def lifter(self, owned: bool) -> Lift:
        """The lift of an own (or borrow) handle value; a subclass may
        return a faster one that reads the value itself."""
        lift_resource = self.lift_resource

        def lift(ctx: Context, a: int) -> object:
            return lift_resource(ctx, _word(a + _P), owned)
        return lift

    def lower_resource(self, ctx: Context, obj: Any, type_id: int) -> int:
        raise NotImplementedError

    def type_id(self, ty: Any) -> int:
        raise NotImplementedError


#: Makes the `limit-reached` error of an argument over the call cap, given
#: its length in bytes (the instance writes its audit line there).
Refuse = Callable[[int], NetError]


def _refuse_plainly(size: int) -> NetError:
    from ..errors import ErrorCode

    return NetError(ErrorCode.LIMIT_REACHED, f"an argument of {size} bytes")


class Compiler:
    """Compiles `ValType`s into lift/lower closures (one per use site).

    `max_call_bytes` caps every `string` and `list<u8>` argument: a longer
    one raises `refuse(length)` (a NetError, `limit-reached`) before any
    byte is copied into Python, so the host's share of a call is bounded
    by the cap whatever the guest passes (wasmtime's own lift, done before
    the callback, is bounded by the guest's memory: SECURITY.md 5).
    """

    def __init__(self, resources: Resources, max_call_bytes: int | None = None,
                 refuse: Refuse | None = None) -> None:
        self._resources = resources
        self._enums: list[tuple[EnumType, list[str]]] = []
        self._cap = max_call_bytes
        self._refuse = refuse if refuse is not None else _refuse_plainly

    def enum_names(self, ty: EnumType) -> list[str]:
        """`ty.names`, read once per distinct enum: wasmtime-py reads each
        name with a C call, and `error-code` (18 cases) appears in nearly
        every function; this halves the time `link` spends per instance.
        """
        for known, names in self._enums:
            if known == ty:  # wasmtime_component_enum_type_equal
                return names
        names = ty.names
        self._enums.append((ty, names))
        return names

    # -- lift ---------------------------------------------------------------
    def lift(self, ty: ValType) -> Lift:
        """A closure reading a value of `ty` into Python."""
        if isinstance(ty, Bool):
            return _scalar_lift("?")
        for cls, fmt in _INTEGERS:
            if isinstance(ty, cls):
                return _scalar_lift(fmt)
        if isinstance(ty, Char):
            read = _scalar_lift("I")
            return lambda ctx, a: chr(read(ctx, a))
        if isinstance(ty, String):
            return _lift_string if self._cap is None else _lift_string_capped(self._cap,
                                                                             self._refuse)
        if isinstance(ty, EnumType):
            return _lift_enum(self.enum_names(ty))
        if isinstance(ty, FlagsType):
            return _lift_flags(ty.names)
        if isinstance(ty, ListType):
            element = ty.element
            if isinstance(element, U8):
                return _lift_bytes if self._cap is None else _capped(_lift_bytes, self._cap,
                                                                    self._refuse)
            return _lift_list(self.lift(element))
        if isinstance(ty, TupleType):
            return _lift_tuple([self.lift(t) for t in ty.elements])
        if isinstance(ty, RecordType):
            return _lift_record([(name, self.lift(t)) for name, t in ty.fields])
        if isinstance(ty, VariantType):
            shape = _address_shape(ty)
            if shape == "ip-socket-address":
                return _lift_socket_address
            generic = _lift_variant({name: (self.lift(t) if t is not None else None)
                                     for name, t in ty.cases})
            if shape == "ip-address":
                return lambda ctx, a: _ip_from_case(generic(ctx, a))
            return generic
        if isinstance(ty, OptionType):
            if isinstance(ty.payload, OptionType):
                raise CodecError("option<option<T>> is not supported")
            return _lift_option(self.lift(ty.payload))
        if isinstance(ty, ResultType):
            ok, err = ty.ok, ty.err
            return _lift_result(self.lift(ok) if ok else None, self.lift(err) if err else None)
        if isinstance(ty, (OwnType, BorrowType)):
            return self._resources.lifter(isinstance(ty, OwnType))
        raise CodecError(f"cannot lift WIT type {type(ty).__name__}")

    # -- lower --------------------------------------------------------------
    def lower(self, ty: ValType) -> Lower:
        """A closure writing a Python value of `ty` into a C value."""
        scalar = _scalar_kind(ty)
        if scalar is not None:
            return _scalar_lower(*scalar)
        if isinstance(ty, Char):
            write = _scalar_lower(_K["CHAR"], "I")
            return lambda ctx, value, a: write(ctx, ord(value), a)
        if isinstance(ty, String):
            return _lower_string
        if isinstance(ty, EnumType):
            return _lower_enum(self.enum_names(ty))
        if isinstance(ty, FlagsType):
            return _lower_flags(ty.names)
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
            generic = _lower_variant({name: (self.lower(t) if t is not None else None)
                                      for name, t in ty.cases})
            shape = _address_shape(ty)
            if shape == "ip-socket-address":
                return _lower_socket_address()
            if shape == "ip-address":
                return lambda ctx, value, a: generic(ctx, _ip_case(value), a)
            return generic
        if isinstance(ty, OptionType):
            if isinstance(ty.payload, OptionType):
                raise CodecError("option<option<T>> is not supported")
            return _lower_option(self.lower(ty.payload))
        if isinstance(ty, ResultType):
            return _lower_result(self.lower_ok(ty), self.lower_err(ty))
        if isinstance(ty, OwnType):
            return _lower_resource(self._resources, self._resources.type_id(ty.ty))
        raise CodecError(f"cannot lower WIT type {type(ty).__name__}")

    def lower_ok(self, ty: ResultType) -> Lower:
        """Write ``ok(value)`` of the result type `ty` from the bare payload."""
        return self._lower_case(True, ty.ok)

    def lower_err(self, ty: ResultType) -> Lower:
        """Write ``err(value)`` of the result type `ty` from the bare payload."""
        return self._lower_case(False, ty.err)

    def _lower_case(self, is_ok: bool, payload: ValType | None) -> Lower:
        """A scalar or string payload is written by the case's own frame
        (`_Box.scalar_result`, `_Box.string_result`): every byte lane's
        result is one."""
        if payload is None:
            return _lower_case(is_ok, None)
        if isinstance(payload, String):
            return _Box(_lower_string, is_ok).string_result
        scalar = _scalar_kind(payload)
        if scalar is not None:
            box = _Box(_scalar_lower(*scalar), is_ok)
            kind, fmt = scalar
            box.scalar = (struct.Struct("=B7x" + fmt).pack_into, kind)
            return box.scalar_result
        return _lower_case(is_ok, self.lower(payload))


_INTEGERS: tuple[tuple[type, str], ...] = (
    (U8, "B"), (U16, "H"), (U32, "I"), (U64, "Q"),
    (S8, "b"), (S16, "h"), (S32, "i"), (S64, "q"),
)


# -- scalars -----------------------------------------------------------------

def _scalar_kind(ty: ValType) -> tuple[int, str] | None:
    """(kind, struct format) of a bool or integer type, else None."""
    if isinstance(ty, Bool):
        return _K["BOOL"], "?"
    for cls, fmt in _INTEGERS:
        if isinstance(ty, cls):
            return _K[cls.__name__.upper()], fmt
    return None


def _scalar_lift(fmt: str) -> Lift:
    view = _VIEWS[fmt]
    shift = view.itemsize.bit_length() - 1

    def lift(ctx: Context, a: int) -> Any:
        return view[(a + 8) >> shift]  # the payload
    return lift


def _scalar_lower(kind: int, fmt: str) -> Lower:
    """Out-of-range or non-int values raise (ValueError, TypeError)."""
    view = _VIEWS[fmt]
    shift = view.itemsize.bit_length() - 1

    def lower(ctx: Context, value: Any, a: int) -> None:
        view[(a + 8) >> shift] = value  # the payload
        _BYTES[a] = kind
    return lower


def _read_bytes(a: int) -> bytes:
    """The bytes of the string, enum or variant name of the value at `a`."""
    size, data = _vector(a)
    return bytes(_BYTES[data:data + size]) if size else b""


def _lift_string(ctx: Context, a: int) -> str:
    i = (a + _P) >> 3  # the vector: size, data
    size = _WORDS[i]
    if not size:
        return ""
    data = _WORDS[i + 1]
    # Decoded straight from wasmtime's buffer: no intermediate bytes copy.
    return str(_BYTES[data:data + size], "utf-8")


def _lift_string_capped(cap: int, refuse: Refuse) -> Lift:
    """`_lift_string` refusing more than `cap` UTF-8 bytes (`_capped`, in
    one frame: every string argument of a guest run is capped)."""
    def lift(ctx: Context, a: int) -> str:
        i = (a + _P) >> 3
        size: int = _WORDS[i]
        if size > cap:
            raise refuse(size)
        if not size:
            return ""
        data = _WORDS[i + 1]
        return str(_BYTES[data:data + size], "utf-8")
    return lift


def _capped(lift: Lift, cap: int, refuse: Refuse) -> Lift:
    """`lift`, refusing a string or list<u8> whose vector holds more than
    `cap` elements (UTF-8 bytes of a string, bytes of a list<u8>)."""
    def lift_capped(ctx: Context, a: Any) -> Any:
        size: int = _WORDS[(_address(a) + _P) >> 3]
        if size > cap:
            raise refuse(size)
        return lift(ctx, a)
    return lift_capped


def _lower_string(ctx: Context, value: Any, a: int) -> None:
    if not isinstance(value, str):
        raise TypeError(f"expected str, got {type(value).__name__}")
    data = value.encode("utf-8")
    if data:
        _byte_vec_new(a + _P, len(data), data)
    else:  # wasmtime's empty vector: no allocation
        _set_vector(a, 0, 0)
    _BYTES[a] = _STRING


def _lift_enum(names: list[str]) -> Lift:
    """Case names are looked up, not decoded, per call."""
    known = {name.encode(): name for name in names}

    def lift(ctx: Context, a: int) -> str:
        raw = _read_bytes(a)
        name = known.get(raw)
        return name if name is not None else raw.decode("utf-8")
    return lift


def _lower_enum(names: list[str]) -> Lower:
    """Each case name is encoded once; a call makes one C copy of it.

    (Through `ffi.str_to_capi` an enum cost ~8 us per call: type checks,
    a ctypes array and a memmove; every `err` result is an enum.)
    """
    encoded = {name: name.encode() for name in names}
    kind = _K["ENUM"]
    new_vec = _byte_vec_new

    def lower(ctx: Context, value: Any, a: int) -> None:
        data = encoded.get(value)
        if data is None:
            raise ValueError(f"{value!r} is not one of {sorted(names)}")
        new_vec(a + 8, len(data), data)  # the payload
        _BYTES[a] = kind
    return lower


def _lift_flags(names: list[str]) -> Lift:
    """A `flags` value is a vector of the names set, each a byte vector
    (`wasm_name_t`, 16 bytes: size, data)."""
    known = {name.encode(): name for name in names}

    def lift(ctx: Context, a: int) -> frozenset[str]:
        size, data = _vector(a)
        found = set()
        for i in range(size):
            raw = _read_bytes(data + i * 16 - _P)
            found.add(known.get(raw) or raw.decode("utf-8"))
        return frozenset(found)
    return lift


def _lower_flags(names: list[str]) -> Lower:
    encoded = {name: name.encode() for name in names}
    kind = _K["FLAGS"]

    def lower(ctx: Context, value: Any, a: int) -> None:
        chosen = [encoded[name] for name in names if name in value]
        unknown = set(value) - set(names)
        if unknown:
            raise ValueError(f"{sorted(unknown)} are not flags of {names}")
        if not chosen:
            _set_vector(a, 0, 0)
        else:
            capi.valflags_new_uninit(a + _P, len(chosen))
            data = _word(a + _P + 8)
            for i, raw in enumerate(chosen):
                _byte_vec_new(data + i * 16, len(raw), raw)
        _BYTES[a] = kind
    return lower


# -- lists -------------------------------------------------------------------

def _lift_bytes(ctx: Context, v: Any) -> bytes:
    """Read a list<u8> with one strided copy instead of a loop per byte."""
    size, data = _vector(_address(v))
    if size == 0:
        return b""
    return bytes(_BYTES[data + _P:data + size * _VAL_SIZE:_VAL_SIZE])


class _Kinds:
    """``U8`` kind bytes, grown on demand, for a list<u8>'s kind column."""

    def __init__(self) -> None:
        self.view = memoryview(bytes([_K["U8"]]) * 4096)
        self.lock = threading.Lock()

    def grow(self, count: int) -> memoryview:
        with self.lock:
            if len(self.view) < count:
                size = max(count, 2 * len(self.view))
                self.view = memoryview(bytes([_K["U8"]]) * size)
            return self.view


_KINDS = _Kinds()


def _lower_bytes(ctx: Context, value: Any, v: Any) -> None:
    """Write a list<u8>: wasmtime allocates the values, two strided slice
    assignments fill their kind and payload columns."""
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected bytes, got {type(value).__name__}")
    a = v if v.__class__ is int else ctypes.addressof(v)
    count = len(value)
    if count == 0:
        _set_vector(a, 0, 0)
    else:
        _vallist_new_uninit(a + _P, count)
        data = _WORDS[(a + _P + 8) >> 3]
        end = data + count * _VAL_SIZE
        kinds = _KINDS.view
        if len(kinds) < count:
            kinds = _KINDS.grow(count)
        _BYTES[data:end:_VAL_SIZE] = kinds[:count]
        _BYTES[data + _P:end:_VAL_SIZE] = value
    _BYTES[a] = _LIST


_LIST = _K["LIST"]
_vallist_new_uninit = capi.vallist_new_uninit


def _lift_list(element: Lift) -> Lift:
    def lift(ctx: Context, a: int) -> list[Any]:
        size, data = _vector(a)
        return [element(ctx, data + i * _VAL_SIZE) for i in range(size)]
    return lift


def _lower_array(kind: int, new_uninit: Any, delete: Any, elements: Any) -> Lower:
    """Lower a list or tuple: `elements(value)` pairs each item with its lower."""
    def lower(ctx: Context, value: Any, a: int) -> None:
        pairs = elements(value)
        count = len(pairs)
        if count == 0:
            _set_vector(a, 0, 0)
        else:  # the new values are bools until each is written
            new_uninit(a + _P, count)
            data = _word(a + _P + 8)
            try:
                for i, (item, lower_item) in enumerate(pairs):
                    lower_item(ctx, item, data + i * _VAL_SIZE)
            except BaseException:
                delete(a + _P)
                raise
        _BYTES[a] = kind
    return lower


def _lower_list(element: Lower) -> Lower:
    return _lower_array(_K["LIST"], capi.vallist_new_uninit, capi.vallist_delete,
                        lambda value: [(item, element) for item in value])


# -- tuples and records --------------------------------------------------------

def _lift_tuple(elements: list[Lift]) -> Lift:
    def lift(ctx: Context, a: int) -> tuple[Any, ...]:
        data = _word(a + _P + 8)
        return tuple(element(ctx, data + i * _VAL_SIZE) for i, element in enumerate(elements))
    return lift


def _lower_tuple(elements: list[Lower]) -> Lower:
    """Like `_lower_array`, with the arity known: no list of pairs per call
    (an accept's result is a tuple)."""
    count = len(elements)
    offsets = [(lower_item, i * _VAL_SIZE) for i, lower_item in enumerate(elements)]
    kind = _K["TUPLE"]
    new_uninit, delete = capi.valtuple_new_uninit, capi.valtuple_delete

    def lower(ctx: Context, value: Any, a: int) -> None:
        items = value if isinstance(value, tuple) else tuple(value)
        if len(items) != count:
            raise ValueError(f"expected a {count}-tuple, got {len(items)} items")
        if count == 0:
            _set_vector(a, 0, 0)
        else:  # the new values are bools until each is written
            new_uninit(a + _P, count)
            data = _WORDS[(a + _P + 8) >> 3]
            try:
                for (lower_item, offset), item in zip(offsets, items, strict=False):  # checked
                    lower_item(ctx, item, data + offset)
            except BaseException:
                delete(a + _P)
                raise
        _BYTES[a] = kind
    return lower


def _lift_record(fields: list[tuple[str, Lift]]) -> Lift:
    def lift(ctx: Context, a: int) -> dict[str, Any]:
        data = _word(a + _P + 8) + _ENTRY_VAL
        return {name: field(ctx, data + i * _ENTRY_SIZE)
                for i, (name, field) in enumerate(fields)}
    return lift


def _lower_record(fields: list[tuple[str, Lower]]) -> Lower:
    names = [(name, name.encode(), field) for name, field in fields]
    kind = _K["RECORD"]

    def lower(ctx: Context, value: Any, a: int) -> None:
        capi.valrecord_new_uninit(a + _P, len(names))
        entry = _word(a + _P + 8)
        try:
            for name, encoded, field in names:
                field(ctx, value[name], entry + _ENTRY_VAL)
                _byte_vec_new(entry, len(encoded), encoded)
                entry += _ENTRY_SIZE
        except BaseException:
            capi.valrecord_delete(a + _P)
            raise
        _BYTES[a] = kind
    return lower


# -- variants, options, results -----------------------------------------------

class _Box:
    """Lowers a payload into its own 32-byte slot and moves it to the heap.

    One slot per use site: WIT types are not recursive, so a site is never
    re-entered while its slot is in use, and one instance's calls run on
    one thread at a time. Code that writes to the slot's address holds the
    `_Box` (a bound method does), so the slot lives as long as that code.
    """

    __slots__ = ("slot", "address", "lower", "is_ok", "scalar")

    def __init__(self, lower: Lower, is_ok: bool = True) -> None:
        self.slot = _VAL()
        self.address = ctypes.addressof(self.slot)
        self.lower = lower
        self.is_ok = int(is_ok)  # for `result`
        #: (pack_into of kind and payload, kind) of `lower`'s scalar type,
        #: for `scalar_result`
        self.scalar: tuple[Callable[..., None], int] | None = None

    def __call__(self, ctx: Context, value: Any) -> int:
        self.lower(ctx, value, self.address)
        ptr: int = _val_new(self.address)  # moves the value out, leaving a bool
        return ptr

    def result(self, ctx: Context, value: Any, a: int) -> None:
        """Write the result case `is_ok` with payload `value` at `a` (a
        `Lower`; ``__call__`` inlined: the commonest results)."""
        address = self.address
        self.lower(ctx, value, address)
        boxed = _val_new(address)
        _put_result(_BYTES, a, _RESULT, self.is_ok, boxed)

    def string_result(self, ctx: Context, value: Any, a: int) -> None:
        """`result` for a `lower` that is `_lower_string`, written out."""
        data = _str_encode(value)  # UTF-8; TypeError for a non-str
        address = self.address
        if data:
            _byte_vec_new(address + _P, len(data), data)
        else:  # wasmtime's empty vector: no allocation
            _set_vector(address, 0, 0)
        _BYTES[address] = _STRING
        boxed = _val_new(address)
        _put_result(_BYTES, a, _RESULT, self.is_ok, boxed)

    def scalar_result(self, ctx: Context, value: Any, a: int) -> None:
        """`result` for a `lower` that is `_scalar_lower`, written out (the
        slot's kind and payload in one `pack_into`; a value out of range
        raises before `val_new`, so wasmtime never sees the slot)."""
        put, kind = self.scalar  # type: ignore[misc]
        address = self.address
        put(_BYTES, address, kind, value)
        boxed = _val_new(address)
        _put_result(_BYTES, a, _RESULT, self.is_ok, boxed)


_RESULT = _K["RESULT"]
_STRING = _K["STRING"]
_str_encode = str.encode
#: ``_put_result(_BYTES, a, _RESULT, is_ok, val)`` writes the `result` value
#: at `a` in one call (three item stores cost twice as much), padding
#: zeroed; it takes only values already made (nothing can fail half way).
_RESULT_LAYOUT = struct.Struct("=B7x?7xQ")  # kind, is_ok at _P, val at _P + 8
assert _RESULT_LAYOUT.size == _VAL_SIZE - 8  # the rest of the union is not written
_put_result = _RESULT_LAYOUT.pack_into


def _lift_boxed(lift: Lift | None) -> Callable[[Context, int], Any]:
    def read(ctx: Context, ptr: int) -> Any:
        return lift(ctx, ptr) if ptr and lift is not None else None
    return read


def _lift_variant(cases: dict[str, Lift | None]) -> Lift:
    known = {name.encode(): (name, _lift_boxed(lift)) for name, lift in cases.items()}

    def lift(ctx: Context, a: int) -> Case:
        tag, payload = known[_read_bytes(a)]
        return Case(tag, payload(ctx, _word(a + _P + 16)))
    return lift


def _lower_variant(cases: dict[str, Lower | None]) -> Lower:
    boxes = {name: (name.encode(), _Box(lower) if lower is not None else None)
             for name, lower in cases.items()}
    kind = _K["VARIANT"]

    def lower(ctx: Context, value: Any, a: int) -> None:
        tag, payload = value
        case = boxes.get(tag)
        if case is None:
            raise ValueError(f"{tag!r} is not a case of {sorted(cases)}")
        encoded, box = case
        boxed = box(ctx, payload) if box is not None else 0
        _byte_vec_new(a + _P, len(encoded), encoded)
        _WORDS[(a + _P + 16) >> 3] = boxed
        _BYTES[a] = kind
    return lower


def _lift_option(payload: Lift) -> Lift:
    read = _lift_boxed(payload)

    def lift(ctx: Context, a: int) -> Any:
        return read(ctx, _word(a + _P))
    return lift


def _lower_option(payload: Lower) -> Lower:
    box = _Box(payload)
    kind = _K["OPTION"]

    def lower(ctx: Context, value: Any, a: int) -> None:
        _WORDS[(a + _P) >> 3] = 0 if value is None else box(ctx, value)
        _BYTES[a] = kind
    return lower


def _lift_result(ok: Lift | None, err: Lift | None) -> Lift:
    read_ok, read_err = _lift_boxed(ok), _lift_boxed(err)

    def lift(ctx: Context, a: int) -> Case:
        ptr = _word(a + _P + 8)
        if _BYTES[a + _P]:
            return Case("ok", read_ok(ctx, ptr))
        return Case("err", read_err(ctx, ptr))
    return lift


def _lower_case(is_ok: bool, payload: Lower | None) -> Lower:
    """One case of a result, from its bare payload (ignored for `_`)."""
    kind = _K["RESULT"]
    flag = int(is_ok)
    if payload is None:
        def lower_empty(ctx: Context, value: Any, a: int) -> None:
            _put_result(_BYTES, a, kind, flag, 0)
        return lower_empty
    return _Box(payload, is_ok).result


def _lower_result(ok: Lower, err: Lower) -> Lower:
    def lower(ctx: Context, value: Any, a: int) -> None:
        tag, payload = value
        (ok if tag == "ok" else err)(ctx, payload, a)
    return lower


# -- addresses -----------------------------------------------------------------

def _address_shape(ty: VariantType) -> str | None:
    """``"ip-socket-address"`` or ``"ip-address"`` when `ty` has the shape
    of that WIT variant (component types are structural: a type has no
    name to go by), else None."""
    cases = ty.cases
    if [name for name, _ in cases] != ["ipv4", "ipv6"]:
        return None
    v4, v6 = (t for _, t in cases)
    if _is_tuple_of(v4, U8, 4) and _is_tuple_of(v6, U16, 8):
        return "ip-address"
    if not (isinstance(v4, RecordType) and isinstance(v6, RecordType)):
        return None
    f4, f6 = dict(v4.fields), dict(v6.fields)
    if (list(f4) == ["port", "address"] and isinstance(f4["port"], U16)
            and _is_tuple_of(f4["address"], U8, 4)
            and list(f6) == ["port", "flow-info", "address", "scope-id"]
            and isinstance(f6["port"], U16) and isinstance(f6["flow-info"], U32)
            and _is_tuple_of(f6["address"], U16, 8) and isinstance(f6["scope-id"], U32)):
        return "ip-socket-address"
    return None


def _is_tuple_of(ty: Any, element: type, count: int) -> bool:
    return (isinstance(ty, TupleType) and len(ty.elements) == count
            and all(isinstance(t, element) for t in ty.elements))


_U16 = _VIEWS["H"]
_U32 = _VIEWS["I"]
_IPV4 = ipaddress.IPv4Address
_IPV6 = ipaddress.IPv6Address
_FIELD = _ENTRY_SIZE  # from one record field's value to the next one's


def _lift_socket_address(ctx: Context, a: int) -> SocketAddress:
    """Read an `ip-socket-address` straight into a `SocketAddress`.

    The variant's case name is ``ipv4`` or ``ipv6`` (its 4th byte tells
    them apart); its payload is a boxed record whose field values sit
    `_FIELD` apart; an address tuple's elements are `_VAL_SIZE` apart,
    their payloads at `_P`, so one strided slice reads the IPv4 octets,
    and two (high and low bytes of each u16) the IPv6 address.
    """
    record = _WORDS[(a + _P + 16) >> 3]
    port_value = _WORDS[(record + _P + 8) >> 3] + _ENTRY_VAL
    port = _U16[(port_value + _P) >> 1]
    if _BYTES[_WORDS[(a + _P + 8) >> 3] + 3] == 0x34:  # "ipv4"
        octets = _WORDS[(port_value + _FIELD + _P + 8) >> 3] + _P
        return SocketAddress(_IPV4(bytes(_BYTES[octets:octets + 4 * _VAL_SIZE:_VAL_SIZE])),
                             port)
    flow_info = _U32[(port_value + _FIELD + _P) >> 2]
    groups = _WORDS[(port_value + 2 * _FIELD + _P + 8) >> 3] + _P
    scope_id = _U32[(port_value + 3 * _FIELD + _P) >> 2]
    packed = bytearray(16)
    packed[0::2] = _BYTES[groups + 1:groups + 8 * _VAL_SIZE:_VAL_SIZE]  # big-endian: high
    packed[1::2] = _BYTES[groups:groups + 8 * _VAL_SIZE:_VAL_SIZE]  # then low byte
    return SocketAddress(_IPV6(bytes(packed)), port, flow_info, scope_id)


def _ip_case(ip: IPAddress) -> Case:
    """The `ip-address` variant of `ip` (for the generic variant lower)."""
    packed = ip.packed
    if ip.version == 4:
        return Case("ipv4", tuple(packed))
    return Case("ipv6", tuple(int.from_bytes(packed[i:i + 2], "big") for i in range(0, 16, 2)))


def _ip_from_case(case: Case) -> IPAddress:
    if case.tag == "ipv4":
        return _IPV4(bytes(case.value))
    return _IPV6(b"".join(g.to_bytes(2, "big") for g in case.value))


def _lower_socket_address() -> Lower:
    """Write a `SocketAddress` straight into an `ip-socket-address`: the
    inverse of `_lift_socket_address`, with the same strided slices (the
    generic variant, record and tuple lowers took ~10 µs for an IPv4
    address and ~27 µs for an IPv6 one; every accept, every datagram's
    sender and every address query pays it). The payload record is built
    in this site's own slot and moved to the heap, as `_Box` does. Every
    value is checked before wasmtime allocates anything, so a bad one
    raises and leaves `a` untouched."""
    slot = _VAL()
    s = ctypes.addressof(slot)

    def lower(ctx: Context, value: Any, a: int, _slot: Any = slot) -> None:
        # `_slot` keeps the slot alive as long as this closure (`s` is only
        # its address).
        if not isinstance(value, SocketAddress):
            raise TypeError(f"expected a SocketAddress, got {type(value).__name__}")
        port = value.port
        if not 0 <= port <= 0xFFFF:
            raise ValueError(f"port {port} out of range")
        packed = value.ip.packed
        if len(packed) == 4:
            _valrecord_new_uninit(s + _P, 2)
            entry = _WORDS[(s + _P + 8) >> 3]
            v = entry + _ENTRY_VAL
            _U16[(v + _P) >> 1] = port
            _BYTES[v] = _U16_KIND
            _byte_vec_new(entry, 4, b"port")
            entry += _ENTRY_SIZE
            v = entry + _ENTRY_VAL
            _valtuple_new_uninit(v + _P, 4)
            data = _WORDS[(v + _P + 8) >> 3]
            end = data + 4 * _VAL_SIZE
            _BYTES[data:end:_VAL_SIZE] = _U8_KINDS
            _BYTES[data + _P:end + _P:_VAL_SIZE] = packed
            _BYTES[v] = _TUPLE
            _byte_vec_new(entry, 7, b"address")
            case = b"ipv4"
        else:
            flow_info, scope_id = value.flow_info, value.scope_id
            if not (0 <= flow_info <= 0xFFFFFFFF and 0 <= scope_id <= 0xFFFFFFFF):
                raise ValueError(f"flow info {flow_info} or scope id {scope_id} out of range")
            _valrecord_new_uninit(s + _P, 4)
            entry = _WORDS[(s + _P + 8) >> 3]
            v = entry + _ENTRY_VAL
            _U16[(v + _P) >> 1] = port
            _BYTES[v] = _U16_KIND
            _byte_vec_new(entry, 4, b"port")
            entry += _ENTRY_SIZE
            v = entry + _ENTRY_VAL
            _U32[(v + _P) >> 2] = flow_info
            _BYTES[v] = _U32_KIND
            _byte_vec_new(entry, 9, b"flow-info")
            entry += _ENTRY_SIZE
            v = entry + _ENTRY_VAL
            _valtuple_new_uninit(v + _P, 8)
            data = _WORDS[(v + _P + 8) >> 3]
            end = data + 8 * _VAL_SIZE
            _BYTES[data:end:_VAL_SIZE] = _U16_KINDS
            _BYTES[data + _P:end + _P:_VAL_SIZE] = packed[1::2]  # little-endian: low
            _BYTES[data + _P + 1:end + _P + 1:_VAL_SIZE] = packed[0::2]  # then high byte
            _BYTES[v] = _TUPLE
            _byte_vec_new(entry, 7, b"address")
            entry += _ENTRY_SIZE
            v = entry + _ENTRY_VAL
            _U32[(v + _P) >> 2] = scope_id
            _BYTES[v] = _U32_KIND
            _byte_vec_new(entry, 8, b"scope-id")
            case = b"ipv6"
        _BYTES[s] = _RECORD
        boxed = _val_new(s)  # moves the record out, leaving a bool
        _byte_vec_new(a + _P, 4, case)
        _WORDS[(a + _P + 16) >> 3] = boxed
        _BYTES[a] = _VARIANT
    return lower


_U8_KINDS = bytes([_K["U8"]]) * 4
_U16_KINDS = bytes([_K["U16"]]) * 8
_U16_KIND = _K["U16"]
_U32_KIND = _K["U32"]
_TUPLE = _K["TUPLE"]
_RECORD = _K["RECORD"]
_VARIANT = _K["VARIANT"]
_valrecord_new_uninit = capi.valrecord_new_uninit
_valtuple_new_uninit = capi.valtuple_new_uninit


# -- resources -----------------------------------------------------------------

def _lower_resource(resources: Resources, type_id: int) -> Lower:
    lower_resource = resources.lower_resource
    kind = _K["RESOURCE"]

    def lower(ctx: Context, obj: Any, a: int) -> None:
        _WORDS[(a + _P) >> 3] = lower_resource(ctx, obj, type_id)
        _BYTES[a] = kind
    return lower
