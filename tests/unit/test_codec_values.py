"""The codec against wasmtime itself, for every WIT type capsock uses.

A component exports ``f-N: func(v: T) -> T`` for each type T below; its
core code passes the flat arguments straight to the import ``g-N`` of the
same type, bound by capsock's registrar to a Python echo. So a value goes
wasmtime-py -> guest -> capsock's lift -> Python -> capsock's lower ->
guest -> wasmtime-py, and comes back equal only if the codec reads and
writes wasmtime's C values exactly as wasmtime does.

Also: lowering a value that does not fit leaves the slot a plain `bool`
(nothing leaks or dangles), and many host calls of the common shapes leave
the process' memory where it was (the binding neither leaks nor frees what
it does not own: arguments belong to wasmtime, results to the guest).

``CAPSOCK_MEMCHECK=1`` also runs the round trips and every
``bench/hostcall.py`` shape under valgrind's memcheck (a few minutes) and
fails on any invalid read or write: the codec works on raw addresses, and
a slot freed while still in use shows up there and nowhere else reliably.
"""

from __future__ import annotations

import ctypes
import gc
import importlib.util
import ipaddress
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from wasmtime import Engine, Store
from wasmtime import _ffi as ffi
from wasmtime.component import Component, Linker, Record, Variant

from capsock.addresses import SocketAddress
from capsock.binding.codec import Case, Compiler, Resources
from capsock.binding.handles import HandleTable
from capsock.binding.registrar import link

ROOT = Path(__file__).resolve().parent.parent.parent

# (WIT type, flat core params, whether the result goes through a return
#  pointer, values as wasmtime-py writes them)
TYPES: list[tuple[str, str, bool, list[Any]]] = [
    ("bool", "i32", False, [True, False]),
    ("u8", "i32", False, [0, 255]),
    ("s8", "i32", False, [-128, 127]),
    ("u16", "i32", False, [65535]),
    ("s16", "i32", False, [-32768]),
    ("u32", "i32", False, [0, 2**32 - 1]),
    ("s32", "i32", False, [-2**31]),
    ("u64", "i64", False, [0, 2**64 - 1]),
    ("s64", "i64", False, [-2**63, 2**63 - 1]),
    ("char", "i32", False, ["x", "\u20ac", "\U0001f600"]),
    ("string", "i32 i32", True, ["", "h\u00e9llo", "\x00\xff" * 300]),
    ("$e", "i32", False, ["a", "b-c"]),
    ("(list u8)", "i32 i32", True, [b"", b"\x00", bytes(range(256)) * 300]),
    ("(list u32)", "i32 i32", True, [[], [1, 2, 2**32 - 1]]),
    ("(list string)", "i32 i32", True, [["a", "", "\u00e9"]]),
    ("(tuple u8 string)", "i32 i32 i32", True, [(7, "x")]),
    ("$r", "i32 i32 i32", True, ["record"]),
    ("$v", "i32 i64 i32", True, [Variant("none"), Variant("num", 2**40),
                                 Variant("other", 1), Variant("text", "t")]),
    ("(option u32)", "i32 i32", True, [None, 0, 7]),
    ("(option string)", "i32 i32 i32", True, [None, "", "s"]),
    ("(result u64 (error string))", "i32 i64 i32", True, [5, "bad"]),
    ("(list (tuple u32 (option string)))", "i32 i32", True, [[(1, None), (2, "two")]]),
    # the two address variants, which the codec maps to the core's types
    ("$sa", " ".join(["i32"] * 12), True, ["socket-address"]),
    ("$ip", " ".join(["i32"] * 9), True, ["ip-address"]),
]

API_TYPES = """
    (type $e' (enum "a" "b-c"))
    (export "e" (type $e (eq $e')))
    (type $r' (record (field "a" u32) (field "b" string)))
    (export "r" (type $r (eq $r')))
    (type $v' (variant (case "none") (case "num" u64) (case "other" u64) (case "text" string)))
    (export "v" (type $v (eq $v')))
    (type $v4 (tuple u8 u8 u8 u8))
    (type $v6 (tuple u16 u16 u16 u16 u16 u16 u16 u16))
    (type $ip' (variant (case "ipv4" $v4) (case "ipv6" $v6)))
    (export "ip" (type $ip (eq $ip')))
    (type $v4sa' (record (field "port" u16) (field "address" $v4)))
    (export "v4sa" (type $v4sa (eq $v4sa')))
    (type $v6sa' (record (field "port" u16) (field "flow-info" u32) (field "address" $v6)
        (field "scope-id" u32)))
    (export "v6sa" (type $v6sa (eq $v6sa')))
    (type $sa' (variant (case "ipv4" $v4sa) (case "ipv6" $v6sa)))
    (export "sa" (type $sa (eq $sa')))
"""


def _params(flat: str) -> str:
    return " ".join(f"(param {t})" for t in flat.split())


def _component() -> str:
    funcs, aliases, lowers, core_imports, core_funcs, instance_funcs, lifts = \
        [], [], [], [], [], [], []
    for i, (wit, flat, retptr, _) in enumerate(TYPES):
        funcs.append(f'(export "g-{i}" (func (param "v" {wit}) (result {wit})))')
        aliases.append(f'(alias export $api "g-{i}" (func $g{i}))')
        lowers.append(f"(core func $g{i}l (canon lower (func $g{i}) (memory $mem)"
                      f" (realloc $realloc) string-encoding=utf8))")
        args = " ".join(f"(local.get {j})" for j in range(len(flat.split())))
        if retptr:
            core_imports.append(f'(import "h" "g-{i}" (func $g{i} {_params(flat)} (param i32)))')
            core_funcs.append(f'(func (export "f-{i}") {_params(flat)} (result i32)'
                              f" (call $g{i} {args} (i32.const 1024)) (i32.const 1024))")
        else:
            core_imports.append(f'(import "h" "g-{i}" (func $g{i} {_params(flat)}'
                                f" (result {flat})))")
            core_funcs.append(f'(func (export "f-{i}") {_params(flat)} (result {flat})'
                              f" (call $g{i} {args}))")
        instance_funcs.append(f'(export "g-{i}" (func $g{i}l))')
        lifts.append(f'(func (export "f-{i}") (param "v" {wit}) (result {wit})'
                     f' (canon lift (core func $i "f-{i}") (memory $mem)'
                     f" (realloc $realloc) string-encoding=utf8))")
    nl = "\n  "
    return f"""
(component
  (import "capsock:net/codec" (instance $api {API_TYPES} {" ".join(funcs)}))
  (alias export $api "e" (type $e))
  (alias export $api "r" (type $r))
  (alias export $api "v" (type $v))
  (alias export $api "sa" (type $sa))
  (alias export $api "ip" (type $ip))
  {nl.join(aliases)}
  (core module $libc
    (memory (export "memory") 1)
    (global $next (mut i32) (i32.const 4096))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $p i32) (local $end i32)
      (local.set $p (i32.and (i32.add (global.get $next) (i32.sub (local.get 2) (i32.const 1)))
                             (i32.sub (i32.const 0) (local.get 2))))
      (local.set $end (i32.add (local.get $p) (local.get 3)))
      (if (i32.gt_u (local.get $end) (i32.shl (memory.size) (i32.const 16)))
        (then (drop (memory.grow (i32.add (i32.shr_u (local.get $end) (i32.const 16))
                                          (i32.const 1))))))
      (global.set $next (local.get $end))
      (local.get $p)))
  (core instance $libc (instantiate $libc))
  (alias core export $libc "memory" (core memory $mem))
  (alias core export $libc "realloc" (core func $realloc))
  {nl.join(lowers)}
  (core module $m
    {nl.join(core_imports)}
    {nl.join(core_funcs)})
  (core instance $hi {" ".join(instance_funcs)})
  (core instance $i (instantiate $m (with "h" (instance $hi))))
  {nl.join(lifts)}
)
"""


class _Echo:
    """Every `g-N`: return the argument as capsock lifted it."""

    resources: dict[str, type] = {}

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("g_"):
            raise AttributeError(name)

        def echo(value: Any) -> Any:
            self.seen.append(value)
            return value
        return echo


@pytest.fixture(scope="module")
def echo() -> tuple[Store, Any, _Echo]:
    engine = Engine()
    component = Component(engine, _component())
    linker = Linker(engine)
    iface = _Echo()
    link(linker, engine, component, {"codec": iface}, HandleTable())
    store = Store(engine)
    return store, linker.instantiate(store, component), iface


def _record(a: int, b: str) -> Record:
    value = Record()
    value.a, value.b = a, b  # type: ignore[attr-defined]
    return value


def _fields(**fields: Any) -> Record:
    """A wasmtime-py record; `flow_info` is the field `flow-info`."""
    value = Record()
    for name, field in fields.items():
        setattr(value, name.replace("_", "-"), field)
    return value


#: ip-socket-address values as wasmtime-py writes them, and as the codec
#: hands them to the host
SOCKET_ADDRESSES = [
    (Variant("ipv4", _fields(port=8080, address=(127, 0, 0, 1))),
     SocketAddress(ipaddress.IPv4Address("127.0.0.1"), 8080)),
    (Variant("ipv4", _fields(port=0, address=(255, 254, 1, 0))),
     SocketAddress(ipaddress.IPv4Address("255.254.1.0"), 0)),
    (Variant("ipv6", _fields(port=65535, flow_info=2**32 - 1,
                             address=(0x2001, 0xdb8, 0, 0, 0, 0, 0xff00, 0xabcd),
                             scope_id=7)),
     SocketAddress(ipaddress.IPv6Address("2001:db8::ff00:abcd"), 65535, 2**32 - 1, 7)),
    (Variant("ipv6", _fields(port=1, flow_info=0, address=(0, 0, 0, 0, 0, 0xffff, 0x7f00, 1),
                             scope_id=0)),
     SocketAddress(ipaddress.IPv6Address("::ffff:127.0.0.1"), 1)),
]
IP_ADDRESSES = [
    (Variant("ipv4", (10, 0, 0, 1)), ipaddress.IPv4Address("10.0.0.1")),
    (Variant("ipv6", (0xfe80, 0, 0, 0, 0, 0, 0, 0x1234)), ipaddress.IPv6Address("fe80::1234")),
]


@pytest.mark.parametrize("index", range(len(TYPES)), ids=[t[0] for t in TYPES])
def test_values_round_trip_through_wasmtime(echo: tuple[Store, Any, _Echo], index: int) -> None:
    store, instance, iface = echo
    wit, _, _, values = TYPES[index]
    if values == ["record"]:
        values = [_record(0, ""), _record(2**32 - 1, "b\u00e9")]
    elif values == ["socket-address"]:
        values = [wire for wire, _ in SOCKET_ADDRESSES]
    elif values == ["ip-address"]:
        values = [wire for wire, _ in IP_ADDRESSES]
    func = instance.get_func(store, f"f-{index}")
    for value in values:
        iface.seen.clear()
        assert func(store, value) == value, wit
        assert len(iface.seen) == 1


def test_capsock_representations(echo: tuple[Store, Any, _Echo]) -> None:
    """What the Python side sees (the codec's documented mapping)."""
    store, instance, iface = echo
    index = {wit: i for i, (wit, *_) in enumerate(TYPES)}

    def seen(wit: str, value: Any) -> Any:
        iface.seen.clear()
        instance.get_func(store, f"f-{index[wit]}")(store, value)
        return iface.seen[0]

    assert seen("(list u8)", b"ab") == b"ab"
    assert seen("$e", "b-c") == "b-c"
    assert seen("$r", _record(1, "x")) == {"a": 1, "b": "x"}
    assert seen("$v", Variant("num", 3)) == Case("num", 3)
    assert seen("$v", Variant("none")) == Case("none", None)
    assert seen("(option u32)", None) is None
    assert seen("(result u64 (error string))", "bad") == Case("err", "bad")
    assert seen("(tuple u8 string)", (1, "y")) == (1, "y")
    assert seen("(list (tuple u32 (option string)))", [(1, None)]) == [(1, None)]
    for wire, address in SOCKET_ADDRESSES:
        assert seen("$sa", wire) == address
    for wire, ip in IP_ADDRESSES:
        assert seen("$ip", wire) == ip


class _NoResources(Resources):
    pass


def _type_of(wit: str) -> Any:
    engine = Engine()
    index = next(i for i, t in enumerate(TYPES) if t[0] == wit)
    api: Any = Component(engine, _component()).type.imports(engine)["capsock:net/codec"].ty
    func: Any = api.exports(engine)[f"g-{index}"].ty
    return func.params[0][1]


@pytest.mark.parametrize(("wit", "bad"), [
    ("$r", {"a": 1}),  # a field missing
    ("$r", {"a": 1, "b": 2}),  # the wrong type, after one field was written
    ("(list (tuple u32 (option string)))", [(1, "x"), (2, 3)]),  # fails at the second
    ("(tuple u8 string)", (1, "x", 2)),
    ("$v", Case("nope")),
    ("$sa", SocketAddress(ipaddress.IPv4Address("1.2.3.4"), 65536)),  # port out of range
    ("$sa", ("1.2.3.4", 80)),  # not a SocketAddress
    ("$sa", SocketAddress(ipaddress.IPv6Address("::1"), 80, 2**32)),  # flow info out of range
    ("$sa", SocketAddress(ipaddress.IPv6Address("::1"), 80, 0, -1)),  # scope id out of range
    ("$e", "z"),
    ("u8", 256),
    ("u32", -1),
    ("u64", "1"),
    ("string", b"bytes"),
    ("(list u8)", "text"),
])
def test_a_failed_lowering_leaves_a_bool(wit: str, bad: Any) -> None:
    lower = Compiler(_NoResources()).lower(_type_of(wit))
    slot = ffi.wasmtime_component_val_t()
    with pytest.raises((TypeError, ValueError, KeyError)):
        lower(None, bad, ctypes.addressof(slot))
    assert slot.kind == ffi.WASMTIME_COMPONENT_BOOL.value


def _hostcall_bench() -> Any:
    spec = importlib.util.spec_from_file_location("hostcall_bench", ROOT / "bench/hostcall.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["hostcall_bench"] = module
    spec.loader.exec_module(module)
    return module


def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() // 1024


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs /proc")
def test_many_host_calls_leave_memory_flat() -> None:
    """bench/hostcall.py's shapes: borrows, enums, results, errors, lists,
    strings, a list argument. A leak of one small allocation per call would
    show as megabytes here."""
    bench = _hostcall_bench()
    engine = Engine()
    for shape in ("family", "fail", "recv", "recv-latin1", "send", "poll"):
        runner = bench.Runner(engine, shape, "capsock", 64)
        runner.run(20_000)
        before = _rss_kib()
        runner.run(100_000)
        grown = _rss_kib() - before
        assert grown < 2048, f"{shape}: +{grown} KiB over 100000 calls"


def _exercise() -> None:
    """Every round trip and every bench shape once, with garbage collected
    after linking (run under memcheck by the test below)."""
    engine = Engine()
    component = Component(engine, _component())
    linker = Linker(engine)
    link(linker, engine, component, {"codec": _Echo()}, HandleTable())
    gc.collect()
    store = Store(engine)
    instance = linker.instantiate(store, component)
    for i, (wit, _, _, values) in enumerate(TYPES):
        if values == ["record"]:
            values = [_record(1, "x")]
        elif values == ["socket-address"]:
            values = [wire for wire, _ in SOCKET_ADDRESSES]
        elif values == ["ip-address"]:
            values = [wire for wire, _ in IP_ADDRESSES]
        func: Any = instance.get_func(store, f"f-{i}")
        for value in values:
            assert func(store, value) == value, wit
    bench = _hostcall_bench()
    for shape in bench.SHAPES:
        runner = bench.Runner(engine, shape, "capsock", 64)
        gc.collect()
        runner.run(50)
    print("exercised", flush=True)


@pytest.mark.skipif(not os.environ.get("CAPSOCK_MEMCHECK") or not shutil.which("valgrind"),
                    reason="set CAPSOCK_MEMCHECK=1 (needs valgrind; a few minutes)")
def test_no_invalid_memory_access_under_memcheck() -> None:
    env = {**os.environ, "PYTHONMALLOC": "malloc",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "host"), str(ROOT)])}
    done = subprocess.run(["valgrind", "--tool=memcheck", "--error-limit=no", sys.executable,
                           __file__], env=env, capture_output=True, text=True, timeout=3600)
    assert "exercised" in done.stdout, done.stderr[-4000:]
    invalid = [line for line in done.stderr.splitlines() if "Invalid read" in line
               or "Invalid write" in line or "Invalid free" in line]
    assert not invalid, done.stderr[-8000:]


if __name__ == "__main__":
    _exercise()
