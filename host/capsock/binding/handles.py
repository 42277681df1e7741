"""Handle tables and the borrow rule: the one place that owns both.

Each guest instance has one :class:`HandleTable`. A host object handed to
the guest gets an integer *rep* that is never reused, so a stale handle can
never alias a newer socket. The component model already guarantees that a
guest can only pass a live handle of the right resource type; this table
maps it back to the Python object.

The borrow rule of wasmtime-py (measured on 49.0.0, the pinned version):
a borrowed handle arrives as a `ResourceAny`; converting it with
``wasmtime_component_resource_any_to_host`` both yields the rep **and ends
the borrow**. Calling ``resource_any_drop`` after that traps with
"unknown handle index", and not converting it traps with "borrow handles
still remain at the end of the call". So every resource argument is
converted exactly once, here, and never dropped. The `ResourceAny` box
itself belongs to the call's argument array, which wasmtime frees after
the callback returns, so it is neither taken out nor deleted here: a
borrow costs three C calls (``any_to_host``, ``host_rep``,
``host_delete``), the fewest the C API allows, or two where the rep is
read from the host value itself (``_wasmtime_capi.resource_host_rep_offset``
finds where this wasmtime keeps it; 49.0.0 does, at offset 8).

Several borrows per call follow the same rule, one conversion each, in
argument order (a `list<borrow<pollable>>` element by element): `poll`
over three pollables, `fast-io.splice(source, target, ...)` with two
different sockets or the same socket twice all return the right answer on
49.0.0 (``tests/e2e/test_concurrency.py::test_one_poll_over_several_pollables``,
``::test_splice_takes_two_borrowed_sockets``, conformance cases
``socket.poll.three``, ``socket.poll.same-twice``, ``fast-io.splice.*``).
wasmtime-py 50.0.1 breaks this: the second conversion in one call (or
the first of a list of two) traps with "BUG: deferred host scope has no
call context", which is why capsock pins 49.0.0 (README "Why wasmtime-py
49"); those tests fail with that reason if an upgrade brings it back.
"""

from __future__ import annotations

import ctypes
import itertools
import threading
from typing import Any

from wasmtime.component import ResourceType

from .._log import log
from ._wasmtime_capi import error_from_pointer as _error
from ._wasmtime_capi import resource_host_rep_offset
from .codec import _P as _PAYLOAD
from .codec import _VIEWS, _WORDS, Context, Lift, Resources, _word, capi


def release(obj: object) -> None:
    """Call the object's `drop()` if it has one; log, never raise."""
    drop = getattr(obj, "drop", None)
    if drop is not None:
        try:
            drop()
        except Exception:
            log.exception("capsock: error while releasing %r", obj)


_TYPE_IDS = itertools.count(0x6361_0000)  # "ca": distinct from other embedders' ids


class HandleTable(Resources):
    """Maps reps to host objects for one guest instance."""

    def __init__(self) -> None:
        self._objects: dict[int, object] = {}
        self._reps = itertools.count(1)
        self._lock = threading.Lock()
        self._type_ids: dict[str, int] = {}
        self._types: list[tuple[ResourceType, int]] = []
        # where the C API writes a converted handle (one instance's calls
        # run on one thread at a time)
        self._out = ctypes.c_void_p()
        self._out_address = ctypes.addressof(self._out)
        self._out_index = self._out_address >> 3  # in `_WORDS`

    # -- resource types -----------------------------------------------------
    def define(self, qualified_name: str, component_type: ResourceType) -> ResourceType:
        """The host resource type backing `component_type` (`iface#name`).

        The component's own view of an imported resource type is recorded
        so that function signatures naming it can be mapped to the host id.
        """
        type_id = self._type_ids.get(qualified_name)
        if type_id is None:
            type_id = next(_TYPE_IDS)
            self._type_ids[qualified_name] = type_id
        self._types.append((component_type, type_id))
        return ResourceType.host(type_id)

    def type_id(self, ty: Any) -> int:
        for known, type_id in self._types:
            if known == ty:
                return type_id
        raise TypeError("resource type not defined by capsock")

    # -- objects ---------------------------------------------------------------
    def add(self, obj: object) -> int:
        with self._lock:
            rep = next(self._reps)
            self._objects[rep] = obj
        return rep

    def get(self, rep: int) -> object:
        try:
            return self._objects[rep]
        except KeyError:
            raise LookupError(f"no live handle with rep {rep}") from None

    def remove(self, rep: int) -> object | None:
        with self._lock:
            return self._objects.pop(rep, None)

    def drop(self, rep: int) -> None:
        """The guest dropped its handle: forget the object and release it."""
        release(self.remove(rep))

    def drop_all(self) -> None:
        """Teardown: release every object the guest still holds."""
        for obj in self.clear():
            release(obj)

    def live(self) -> list[object]:
        with self._lock:
            return list(self._objects.values())

    def clear(self) -> list[object]:
        """Forget every object (teardown); returns them so they can be closed."""
        with self._lock:
            objects = list(self._objects.values())
            self._objects.clear()
        return objects

    # -- codec hooks ----------------------------------------------------------
    def lift_resource(self, ctx: Context, any_ptr: int, owned: bool) -> object:
        """Turn a guest handle into its host object (ending a borrow).

        For an owned handle the guest gives the object up: it leaves the
        table, and the resource destructor will not run for it.
        """
        error = _any_to_host(ctx, any_ptr, self._out_address)
        if error:
            raise _error(error)
        host = self._out.value
        rep = _host_rep(host)
        _host_delete(host)
        if owned:
            obj = self.remove(rep)
            if obj is None:
                raise LookupError(f"no live handle with rep {rep}")
            return obj
        try:
            return self._objects[rep]
        except KeyError:
            raise LookupError(f"no live handle with rep {rep}") from None

    def lifter(self, owned: bool) -> Lift:
        return self._lift_own if owned else self._lift_borrow

    def _lift_borrow(self, ctx: Context, a: int) -> object:
        """`lift_resource` of the borrow at value address `a`, in one frame
        (most calls have one: `self`). The rep is read where this wasmtime
        keeps it in the resource host (`_REP_AT`), or asked of
        `resource_host_rep` where the probe could not tell: two C calls per
        borrow, or three."""
        error = _any_to_host(ctx, _WORDS[(a + _PAYLOAD) >> 3], self._out_address)
        if error:
            raise _error(error)
        host = _WORDS[self._out_index]
        rep = _host_rep(host) if _REP_AT is None else _U32[(host + _REP_AT) >> 2]
        _host_delete(host)
        try:
            return self._objects[rep]
        except KeyError:
            raise LookupError(f"no live handle with rep {rep}") from None

    def _lift_own(self, ctx: Context, a: int) -> object:
        return self.lift_resource(ctx, _word(a + _PAYLOAD), True)

    def lower_resource(self, ctx: Context, obj: Any, type_id: int) -> int:
        """Hand a host object to the guest as a new owned handle."""
        rep = self.add(obj)
        host = capi.host_new(True, rep, type_id)
        error = capi.host_to_any(ctx, host, self._out_address)
        _host_delete(host)
        if error:
            self.remove(rep)
            raise _error(error)
        return self._out.value or 0


_any_to_host = capi.any_to_host
_host_rep = capi.host_rep
_host_delete = capi.host_delete
#: The rep's byte offset in a resource host (None: ask `_host_rep`).
_REP_AT = resource_host_rep_offset()
_U32 = _VIEWS["I"]
