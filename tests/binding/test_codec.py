"""The codec's byte fast path against wasmtime's own C values."""

from __future__ import annotations

import ctypes
import os

import pytest
from wasmtime import _ffi as ffi

from capsock.binding.codec import _lift_bytes, _lower_bytes


@pytest.mark.parametrize("size", [0, 1, 31, 4096, 65536, 65537, 1 << 20])
def test_bytes_round_trip_through_c_values(size: int) -> None:
    data = os.urandom(size)
    value = ffi.wasmtime_component_val_t()
    _lower_bytes(None, data, value)
    assert value.kind == ffi.WASMTIME_COMPONENT_LIST.value
    assert value.of.list.size == size
    if size:  # every element is a real u8 value, as wasmtime expects
        assert all(value.of.list.data[i].kind == ffi.WASMTIME_COMPONENT_U8.value
                   for i in (0, size // 2, size - 1))
        assert value.of.list.data[size - 1].of.u8 == data[-1]
    assert _lift_bytes(None, value) == data


def test_lower_accepts_bytearray_and_memoryview() -> None:
    for payload in (bytearray(b"abc"), memoryview(b"xyz")):
        value = ffi.wasmtime_component_val_t()
        _lower_bytes(None, payload, value)
        assert _lift_bytes(None, value) == bytes(payload)


def test_lower_rejects_non_bytes() -> None:
    with pytest.raises(TypeError):
        _lower_bytes(None, [1, 2, 3], ffi.wasmtime_component_val_t())


def test_shrinking_after_a_large_value_keeps_kinds() -> None:
    """The scratch buffer is reused: a small list after a large one."""
    for size in (100_000, 3):
        value = ffi.wasmtime_component_val_t()
        data = bytes(range(256)) * (size // 256) + bytes(size % 256)
        _lower_bytes(None, data, value)
        assert _lift_bytes(None, value) == data
    assert ctypes.sizeof(ffi.wasmtime_component_val_t) > 1
