"""Reading a resource host's rep from memory (handles._lift_borrow, at
handles._REP_AT).

Every method call of every end-to-end test converts a borrowed handle this
way, among many live sockets, so a wrong offset would hand a call the
wrong socket (or none) all over the suite; these tests say why when it is
the probe that changed.
"""

from __future__ import annotations

from capsock.binding._wasmtime_capi import resource_host_rep_offset
from capsock.binding.codec import _VIEWS, capi
from capsock.binding.handles import HandleTable


def test_the_pinned_wasmtime_keeps_the_rep_where_the_probe_says() -> None:
    """On the pinned wasmtime the probe finds the offset, and it reads the
    rep of hosts the probe did not make: owned or not, the smallest and
    the largest rep, any type."""
    offset = resource_host_rep_offset()
    assert offset is not None, "the probe lost the rep: every borrow pays a third C call"
    for owned, rep, ty in ((True, 1, 0x6361_0000), (False, 0xFFFF_FFFF, 1),
                           (False, 123_456, 0xFFFF_FFFF), (True, 0, 0)):
        host = capi.host_new(owned, rep, ty)
        try:
            assert _VIEWS["I"][(host + offset) >> 2] == rep
            assert capi.host_rep(host) == rep
        finally:
            capi.host_delete(host)


def test_borrows_are_lifted_by_reading_the_rep() -> None:
    from capsock.binding import handles
    table = HandleTable()
    assert table.lifter(False) == table._lift_borrow
    assert handles._REP_AT is not None and handles._REP_AT == resource_host_rep_offset()
