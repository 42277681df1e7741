"""The cost of one host call, without a guest interpreter in the way (not a test).

    python bench/hostcall.py [--calls 100000] [--repeat 7] [--only SHAPE,...]
    python bench/hostcall.py --callgrind [--calls 10000] [--only SHAPE,...]
                             [--bindings capsock,stock,floor]
    python bench/hostcall.py --callgrind --only receive-hex,send-hex,nop \
                             --bindings capsock,floor --size 64 --calls 10000

A hand-written component (WAT, below) imports ``capsock:net/bench`` and
calls one of its functions in a core-wasm loop ``--calls`` times, so a
call's time is the host call and nothing else (the loop is a few machine
instructions). Each function has one of the argument shapes the real WIT
uses most:

=============  ============================================================
shape          WIT signature (``self`` is ``borrow<thing>``)
=============  ============================================================
nop            ``nop: func()`` (no arguments, no result)
family         ``[method]thing.family: func() -> ip-address-family``
               (``address-family``, the ``probe hostcall`` call)
size           ``[method]thing.size: func() -> result<u64, error-code>``
fail           ``size``'s shape, returning ``err(would-block)``
set            ``[method]thing.set: func(value: bool) -> result<_, error-code>``
recv           ``[method]thing.recv: func(max-len: u64) -> result<list<u8>, error-code>``
               (``--size`` bytes back, default 16)
recv-latin1    ``[method]thing.recv-latin1: func(max-len: u64) -> result<string, error-code>``
send           ``[method]thing.send: func(data: list<u8>) -> result<u64, error-code>``
poll           ``poll: func(ids: list<u32>, timeout: option<u64>) -> result<list<u32>, error-code>``
send-to        ``[method]thing.send-to: func(data: list<u8>, remote: ip-socket-address)
               -> result<u64, error-code>``: the whole path of one address, a
               real core UDP ``send`` to ``127.0.0.1:9`` (conversion, policy
               check under an ``allow-outbound`` rule, no audit log, OS
               ``sendto``)
receive-hex    ``tcp-receive-hex: func(socket: borrow<thing>, max-len: u64)
               -> result<string, error-code>`` and
send-hex       ``tcp-send-hex: func(socket: borrow<thing>, data: string)
               -> result<u64, error-code>``: the two calls the BSD echo makes
               per exchange, the whole path: ``fast-io``'s own functions on
               a real core TCP socket (accepted through the core's listener
               under an ``allow-inbound`` rule, default limits, the
               ``max_call_bytes`` cap the host links with, no audit log or
               metrics), ``--size`` bytes per call (``2 x --size`` hex
               digits), against a peer process on loopback that keeps the
               socket fed (receive) or drained (send); the peer is not
               under valgrind, so ``--callgrind`` counts the host alone
=============  ============================================================

and is bound three ways, interleaved, medians of ``--repeat`` runs:

* ``capsock``: :func:`capsock.binding.registrar.link`, the real binding;
* ``stock``: wasmtime-py's own ``LinkerInstance.add_func`` (only the shapes
  it can express the same way: nop, family, size, set);
* ``floor``: ``nop`` only, a ctypes callback whose body is ``return 0``
  (the cost of wasmtime's dynamic host-function path plus a ctypes
  callback: nothing built on this C API can be cheaper).

``--callgrind`` instead runs each (shape, binding) under ``valgrind
--tool=callgrind`` at ``--calls`` and 2 x ``--calls`` and prints the
difference divided by ``--calls``: instructions per host call, which do
not depend on the load of the machine (~20 s per run once the components
are compiled and cached in the temp directory).

Where the floor is (callgrind, wasmtime-py 50, CPython 3.11, x86-64; the
first three items before branch h-hostcall, whose numbers follow them):

* an empty host function (``floor``): ~3,900 instructions, ~0.45 us: about
  1,900 in wasmtime (the guest-to-host trampoline, its dynamic ``func_new``
  path converting arguments to ``Val`` and back, two vectors) and about
  2,100 in the ctypes callback (GIL, seven arguments converted, a Python
  frame). Nothing built on wasmtime's C API from Python is cheaper;
  wasmtime-py's own ``add_func`` spends ~41,000 on it.
* every C call back into wasmtime from inside the callback (a borrow needs
  three: ``resource_any_to_host`` ends it, ``resource_host_rep``,
  ``resource_host_delete``; an enum, string or list result one to allocate
  it; a boxed ``result`` payload one more, ``val_new``): ~2,300
  instructions, of which ~600 are the C function and libffi and the rest
  ctypes' own marshalling (``from_param`` per argument, ``ffi_prep_cif``
  per call). capsock binds them once with ``PYFUNCTYPE`` and int arguments,
  the cheapest ctypes offers.
* so ``family`` (borrow in, enum out) cannot go below ~16,500 with ctypes:
  ~4,500 in wasmtime (the borrow and the enum cost it more than ``nop``),
  ~2,100 for the callback, ~9,900 for its four C calls (~2,600 of that in
  C). capsock's is ~23,600: the other ~7,000 is Python (the lift, the
  method, the lower). Going lower needs a different FFI (cffi, or a small C
  extension doing the borrow in one call), or a typed host-function API in
  wasmtime's C API (no ``Val`` round trip).

* ``send-to`` (the address path end to end, a ``sendto(2)`` included):
  ~127,000 instructions (dc7c6e6), from ~171,000 (2a25b50) when the
  binding built a ``Case``, a dict and a throwaway ``Case`` per address
  and asked the policy through four differently shaped calls.

* the BSD echo's two calls (``--size 64``; wasmtime-py 49, one session,
  the old tree through ``CAPSOCK_HOST``): ``receive-hex`` 46,029 -> 32,439,
  ``send-hex`` 48,499 -> 33,954, ``family`` 24,205 -> 22,012, ``nop``
  6,847 -> 6,249 (b1bb79a -> branch h-hostcall; the empty callback 4,401).
  What went: a closure and two frames per OS call, the meter, charge and
  observer calls of an instance with no byte quota and no observer
  (decided once per socket), the lazy-compile wrapper frame, three of the
  string argument's four frames, the result's second frame and its three
  item stores (one ``pack_into``), and the ``resource_host_rep`` C call of
  every borrow (the rep is read where ``resource_host_rep_offset`` found
  it). What is left of ``receive-hex``'s 32,439: ~5,600 in wasmtime (the
  borrow and u64 arguments as ``Val``, the string result lowered into the
  guest), ~2,100 the ctypes callback, ~10,000 its four C calls
  (``any_to_host``, ``host_delete``, ``byte_vec_new``, ``val_new``),
  ~2,100 the C work (``recv``, ``hex``, encode), and ~12,600 Python
  bytecode (~220 bytecodes over eight frames: the registrar's
  dispatch, the borrow, the lane, the core's state check, the backend,
  the lower). ``send-hex``: ~5,200 wasmtime, ~2,100 callback, ~6,400 for
  three C calls, ~3,000 C work (``fromhex``, ``sendall``, UTF-8 decode),
  ~17,000 Python. Going further means fewer frames than layers (the
  binding, core and backend each keep one) or a cheaper FFI than ctypes.

``CAPSOCK_HOST=DIR`` measures another checkout's binding layer with this
script, e.g. ``git archive HEAD~1 host | tar -x -C /tmp/old`` then
``CAPSOCK_HOST=/tmp/old/host python bench/hostcall.py --bindings capsock``.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

#: another checkout's host/ to measure (e.g. an older commit's), else this one's
HOST = os.environ.get("CAPSOCK_HOST") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "host")
sys.path.insert(0, HOST)

from wasmtime import Engine, Store, WasmtimeError  # noqa: E402
from wasmtime import _ffi as ffi  # noqa: E402
from wasmtime.component import Component, Linker, ResourceType  # noqa: E402

from capsock.addresses import SocketAddress  # noqa: E402
from capsock.binding.handles import HandleTable  # noqa: E402
from capsock.binding.registrar import link  # noqa: E402
from capsock.errors import ErrorCode, NetError  # noqa: E402

ERROR_CODES = " ".join(f'"{code.value}"' for code in ErrorCode)

# shape -> (import name, core signature of the lowered import, loop body)
# The loop body calls the import once; $h is the thing handle, $size the
# byte count, memory offset 8192 holds the bytes/ids to send, 64 the retptr.
SHAPES: dict[str, tuple[str, str, str]] = {
    "nop": ("nop", "", "(call $f)"),
    "family": ("[method]thing.family", "(param i32) (result i32)",
               "(drop (call $f (local.get $h)))"),
    "size": ("[method]thing.size", "(param i32 i32)",
             "(call $f (local.get $h) (i32.const 64))"),
    "fail": ("[method]thing.fail", "(param i32 i32)",
             "(call $f (local.get $h) (i32.const 64))"),
    "set": ("[method]thing.set", "(param i32 i32 i32)",
            "(call $f (local.get $h) (i32.const 1) (i32.const 64))"),
    "recv": ("[method]thing.recv", "(param i32 i64 i32)",
             "(call $f (local.get $h) (i64.extend_i32_u (local.get $size)) (i32.const 64))"),
    "recv-latin1": ("[method]thing.recv-latin1", "(param i32 i64 i32)",
                    "(call $f (local.get $h) (i64.extend_i32_u (local.get $size))"
                    " (i32.const 64))"),
    "send": ("[method]thing.send", "(param i32 i32 i32 i32)",
             "(call $f (local.get $h) (i32.const 8192) (local.get $size) (i32.const 64))"),
    "poll": ("poll", "(param i32 i32 i32 i64 i32)",
             "(call $f (i32.const 8192) (i32.const 2) (i32.const 1) (i64.const 0)"
             " (i32.const 64))"),
    # self, data (ptr, len), the variant flattened (case, then the wider
    # ipv6 payload: port, flow-info, 8 groups, scope-id; ipv4 uses 5), retptr
    "send-to": ("[method]thing.send-to", "(param" + " i32" * 16 + ")",
                "(call $f (local.get $h) (i32.const 8192) (local.get $size) (i32.const 0)"
                " (i32.const 9) (i32.const 127) (i32.const 0) (i32.const 0) (i32.const 1)"
                + " (i32.const 0)" * 6 + " (i32.const 64))"),
    # the real fast-io lanes: max-len = --size; the hex digits at 8192
    "receive-hex": ("tcp-receive-hex", "(param i32 i64 i32)",
                    "(call $f (local.get $h) (i64.extend_i32_u (local.get $size))"
                    " (i32.const 64))"),
    "send-hex": ("tcp-send-hex", "(param i32 i32 i32 i32)",
                 "(call $f (local.get $h) (i32.const 8192)"
                 " (i32.shl (local.get $size) (i32.const 1)) (i32.const 64))"),
}
#: shapes served by `capsock:net/fast-io`'s implementation on a real socket
REAL_TCP_SHAPES = ("receive-hex", "send-hex")
STOCK_SHAPES = ("nop", "family", "size", "set")

API = f"""
    (type $ec' (enum {ERROR_CODES}))
    (export "error-code" (type $ec (eq $ec')))
    (type $fam' (enum "ipv4" "ipv6"))
    (export "ip-address-family" (type $fam (eq $fam')))
    (export "thing" (type $t (sub resource)))
    (export "nop" (func))
    (export "make" (func (result (own $t))))
    (export "[method]thing.family" (func (param "self" (borrow $t)) (result $fam)))
    (export "[method]thing.size" (func (param "self" (borrow $t))
        (result (result u64 (error $ec)))))
    (export "[method]thing.fail" (func (param "self" (borrow $t))
        (result (result u64 (error $ec)))))
    (export "[method]thing.set" (func (param "self" (borrow $t)) (param "value" bool)
        (result (result (error $ec)))))
    (export "[method]thing.recv" (func (param "self" (borrow $t)) (param "max-len" u64)
        (result (result (list u8) (error $ec)))))
    (export "[method]thing.recv-latin1" (func (param "self" (borrow $t)) (param "max-len" u64)
        (result (result string (error $ec)))))
    (export "[method]thing.send" (func (param "self" (borrow $t)) (param "data" (list u8))
        (result (result u64 (error $ec)))))
    (type $v4 (tuple u8 u8 u8 u8))
    (type $v6 (tuple u16 u16 u16 u16 u16 u16 u16 u16))
    (type $v4sa' (record (field "port" u16) (field "address" $v4)))
    (export "ipv4-socket-address" (type $v4sa (eq $v4sa')))
    (type $v6sa' (record (field "port" u16) (field "flow-info" u32) (field "address" $v6)
        (field "scope-id" u32)))
    (export "ipv6-socket-address" (type $v6sa (eq $v6sa')))
    (type $sa' (variant (case "ipv4" $v4sa) (case "ipv6" $v6sa)))
    (export "ip-socket-address" (type $sa (eq $sa')))
    (export "[method]thing.send-to" (func (param "self" (borrow $t)) (param "data" (list u8))
        (param "remote" $sa) (result (result u64 (error $ec)))))
    (export "poll" (func (param "ids" (list u32)) (param "timeout" (option u64))
        (result (result (list u32) (error $ec)))))
"""
#: the fast-io lanes' two functions, imported only by their own shapes (the
#: other shapes' components, and their cached compilations, stay as they were)
FAST_IO_API = """
    (export "tcp-receive-hex" (func (param "socket" (borrow $t)) (param "max-len" u64)
        (result (result string (error $ec)))))
    (export "tcp-send-hex" (func (param "socket" (borrow $t)) (param "data" string)
        (result (result u64 (error $ec)))))
"""
#: hex digits for `send-hex` to send (64 KiB of them: `--size` up to 32 KiB)
HEX_DIGITS = "0123456789abcdef" * 4096


def component_wat(shape: str) -> str:
    name, signature, body = SHAPES[shape]
    api, data, pages = API, "", 1
    if shape in REAL_TCP_SHAPES:
        api += FAST_IO_API
        data, pages = f'(data (i32.const 8192) "{HEX_DIGITS}")', 2
    return f"""
(component
  (import "capsock:net/bench" (instance $api {api}))
  (alias export $api "make" (func $make))
  (alias export $api "{name}" (func $f))
  (core module $libc
    (memory (export "memory") {pages})
    {data}
    (global $next (mut i32) (i32.const 16384))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      ;; every returned buffer goes to the same place: the loop never reads them
      (i32.const 16384)))
  (core instance $libc (instantiate $libc))
  (alias core export $libc "memory" (core memory $mem))
  (alias core export $libc "realloc" (core func $realloc))
  (core func $make_l (canon lower (func $make)))
  (core func $f_l (canon lower (func $f) (memory $mem) (realloc $realloc)))
  (core module $m
    (import "h" "make" (func $make (result i32)))
    (import "h" "f" (func $f {signature}))
    (func (export "run") (param $n i32) (param $size i32)
      (local $h i32)
      (local.set $h (call $make))
      (block $done (loop $l
        (br_if $done (i32.eqz (local.get $n)))
        {body}
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $l))))
  )
  (core instance $hi (export "make" (func $make_l)) (export "f" (func $f_l)))
  (core instance $i (instantiate $m (with "h" (instance $hi))))
  (func (export "run") (param "n" u32) (param "size" u32)
    (canon lift (core func $i "run")))
)
"""


PAYLOAD = bytes(range(256)) * 256
TEXT = PAYLOAD.decode("latin-1")


class Thing:
    _udp: Any = None

    def family(self) -> str:
        return "ipv4"

    def size(self) -> int:
        return 65536

    def fail(self) -> int:
        raise NetError(ErrorCode.WOULD_BLOCK)

    def set(self, value: bool) -> None:
        pass

    def recv(self, max_len: int) -> bytes:
        return PAYLOAD[:max_len]

    def recv_latin1(self, max_len: int) -> str:
        return TEXT[:max_len]

    def send(self, data: bytes) -> int:
        return len(data)

    def send_to(self, data: bytes, remote: Any) -> int:
        if remote.__class__ is not SocketAddress:  # a binding that lifts a WIT value
            from capsock.binding.wit_values import address_from_wit
            remote = address_from_wit(remote)
        if self._udp is None:
            self._udp = _udp_socket()
        return self._udp.send(data, remote)  # type: ignore[no-any-return]


def _udp_socket() -> Any:
    """A core UDP socket allowed to send to 127.0.0.1 (port 9: nobody
    listens, and an unconnected UDP socket is not told)."""
    from capsock.backends.os import OsBackend
    from capsock.core.context import InstanceContext
    from capsock.core.udp import open_udp
    from capsock.policy import Policy

    policy = Policy.from_flags(allow_outbound=["udp://127.0.0.1:*"])
    return open_udp(InstanceContext(policy, OsBackend()), policy, False)


class Bench:
    resources = {"thing": Thing}

    def nop(self) -> None:
        pass

    def make(self) -> Thing:
        return Thing()

    def poll(self, ids: list[int], timeout: int | None) -> list[int]:
        return ids


#: The peer of a real-socket shape, a separate process (valgrind does not
#: follow it: ``--trace-children`` is off): it keeps the host's socket fed
#: with bytes (`feed`) or drained (`drain`) until the connection ends.
PEER = """
import socket, sys
sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
block = bytes(range(256)) * 256
try:
    if sys.argv[2] == "feed":
        while True:
            sock.sendall(block)
    else:
        while sock.recv(1 << 20):
            pass
except OSError:
    pass
"""


class TcpBench(Bench):
    """`make` hands out a real connected `tcp-socket` (a core socket the
    core's listener accepted from the peer), and the lanes are fast-io's."""

    def __init__(self, shape: str) -> None:
        from capsock.backends.os import OsBackend
        from capsock.binding.interfaces.fast_io import FastIo
        from capsock.binding.interfaces.socket_tcp import TcpSocketResource
        from capsock.core.context import InstanceContext
        from capsock.core.tcp import open_tcp
        from capsock.policy import Policy

        policy = Policy.from_flags(allow_inbound=["tcp://127.0.0.1:*"])
        self.context = context = InstanceContext(policy, OsBackend())
        listener = open_tcp(context, policy, False)
        listener.bind(SocketAddress.from_os(("127.0.0.1", 0)))
        listener.listen(1)
        port = listener.local_address().port
        self.peer = subprocess.Popen(
            [sys.executable, "-c", PEER, str(port),
             "feed" if shape == "receive-hex" else "drain"])
        core, _ = listener.accept()
        listener.close()
        self.socket = TcpSocketResource(core)
        fast_io = FastIo(context)
        self.tcp_receive_hex = fast_io.tcp_receive_hex
        self.tcp_send_hex = fast_io.tcp_send_hex

    def make(self) -> Any:
        return self.socket

    def close(self) -> None:
        self.socket.drop()
        self.peer.wait(timeout=10)


def link_capsock(engine: Engine, component: Component, shape: str) -> Linker:
    linker = Linker(engine)
    if shape in REAL_TCP_SHAPES:
        bench = TcpBench(shape)
        CLOSE.append(bench.close)
        # as the host links a guest: string arguments capped (runtime/host.py)
        link(linker, engine, component, {"bench": bench}, HandleTable(),
             max_call_bytes=bench.context.limits.max_call_bytes,
             refuse=bench.context.call_too_large)
    else:
        link(linker, engine, component, {"bench": Bench()}, HandleTable())
    return linker


#: what to close when the measurements are done (the real sockets' peers)
CLOSE: list[Callable[[], None]] = []


def link_stock(engine: Engine, component: Component, shape: str) -> Linker:
    """wasmtime-py's own path: a Python function per import."""
    from wasmtime.component import ResourceHost

    things: dict[int, Thing] = {}
    linker = Linker(engine)
    with linker.root() as root, root.add_instance("capsock:net/bench") as api:
        api.add_resource("thing", ResourceType.host(1), lambda store, rep: None)

        def make(store: Any) -> Any:
            things[1] = Thing()
            return ResourceHost.own(1, 1).to_any(store)

        def method(name: str) -> Callable[..., Any]:
            def call(store: Any, this: Any, *args: Any) -> Any:
                return getattr(things[this.to_host(store).rep], name)(*args)
            return call
        api.add_func("make", make)
        api.add_func("nop", lambda store: None)
        for name in ("family", "size", "set"):
            api.add_func(f"[method]thing.{name}", method(name))
    return linker


_RAW_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p,
                                 ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
                                 ctypes.c_void_p, ctypes.c_size_t)


@_RAW_CALLBACK  # type: ignore[untyped-decorator]
def _empty(env: Any, ctx: Any, ty: Any, args: Any, nargs: Any, results: Any,
           nresults: Any) -> int:
    return 0


def link_floor(engine: Engine, component: Component, shape: str) -> Linker:
    """`nop` as a ctypes callback that returns at once; `make` through capsock."""
    from wasmtime.component import ResourceHost

    linker = Linker(engine)
    with linker.root() as root, root.add_instance("capsock:net/bench") as api:
        api.add_resource("thing", ResourceType.host(1), lambda store, rep: None)
        api.add_func("make", lambda store: ResourceHost.own(1, 1).to_any(store))
        add = ffi.dll["wasmtime_component_linker_instance_add_func"]
        add.restype = ctypes.c_void_p
        add.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, _RAW_CALLBACK,
                        ctypes.c_void_p, ctypes.c_void_p]
        error = add(ctypes.cast(api.ptr(), ctypes.c_void_p), b"nop", 3, _empty, None, None)
        assert not error
    return linker


BINDINGS: dict[str, Callable[[Engine, Component, str], Linker]] = {
    "capsock": link_capsock, "stock": link_stock, "floor": link_floor}
SELECTED = list(BINDINGS)


def applies(binding: str, shape: str) -> bool:
    if binding not in SELECTED:
        return False
    return (binding == "capsock" or (binding == "stock" and shape in STOCK_SHAPES)
            or (binding == "floor" and shape == "nop"))


def compiled(engine: Engine, shape: str) -> Component:
    """The bench component for `shape`, compiled once per wasmtime version
    (cached next to the system's temp files: compiling under valgrind takes
    most of a run)."""
    wat = component_wat(shape)
    key = hashlib.sha256(f"{version('wasmtime')}\n{wat}".encode()).hexdigest()[:24]
    path = os.path.join(tempfile.gettempdir(), f"capsock-hostcall-{key}.cwasm")
    if os.path.exists(path):
        with open(path, "rb") as f:
            try:
                return Component.deserialize(engine, f.read())
            except WasmtimeError:
                # compiled for CPU features valgrind's CPU lacks (or the
                # other way round): compile again for this one
                pass
    component = Component(engine, wat)
    with tempfile.NamedTemporaryFile(dir=os.path.dirname(path), delete=False) as out:
        out.write(component.serialize())
    os.replace(out.name, path)
    return component


class Runner:
    """One instantiated bench component: `run(n)` makes n host calls."""

    def __init__(self, engine: Engine, shape: str, binding: str, size: int) -> None:
        component = compiled(engine, shape)
        self.store = Store(engine)
        linker = BINDINGS[binding](engine, component, shape)
        if binding != "capsock":
            linker.define_unknown_imports_as_traps(component)
        instance = linker.instantiate(self.store, component)
        func = instance.get_func(self.store, "run")
        assert func is not None
        self.func = func
        self.size = size

    def run(self, calls: int) -> float:
        began = time.perf_counter()
        self.func(self.store, calls, self.size)
        return time.perf_counter() - began


def measure(args: argparse.Namespace, shapes: list[str]) -> None:
    engine = Engine()
    runners = {(shape, binding): Runner(engine, shape, binding, args.size)
               for shape in shapes for binding in BINDINGS if applies(binding, shape)}
    for runner in runners.values():
        runner.run(1000)  # warm up
    times: dict[tuple[str, str], list[float]] = {key: [] for key in runners}
    for _ in range(args.repeat):
        for key, runner in runners.items():
            times[key].append(runner.run(args.calls) / args.calls * 1e6)
    print(f"{'shape':12} {'binding':8} {'us/call':>8} {'min':>7} {'max':>7}")
    for (shape, binding), samples in times.items():
        print(f"{shape:12} {binding:8} {statistics.median(samples):8.2f} "
              f"{min(samples):7.2f} {max(samples):7.2f}")


def instructions(shape: str, binding: str, calls: int, size: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                        sys.executable, __file__,
                        "--one", f"{shape}:{binding}", "--calls", str(calls),
                        "--size", str(size)],
                       check=True, capture_output=True, timeout=1800)
        with open(out) as f:
            for line in f:
                if line.startswith("summary:") or line.startswith("totals:"):
                    return int(line.split()[1])
    raise RuntimeError("no callgrind summary")


def one(args: argparse.Namespace) -> None:
    """One (shape, binding): warm up, then `--calls` calls (run under valgrind)."""
    shape, binding = args.one.split(":")
    runner = Runner(Engine(), shape, binding, args.size)
    runner.run(100)
    runner.run(args.calls)


def callgrind(args: argparse.Namespace, shapes: list[str]) -> None:
    print(f"{'shape':12} {'binding':8} {'instructions/call':>18}")
    for shape in shapes:
        for binding in BINDINGS:
            if not applies(binding, shape):
                continue
            low = instructions(shape, binding, args.calls, args.size)
            high = instructions(shape, binding, 2 * args.calls, args.size)
            print(f"{shape:12} {binding:8} {(high - low) / args.calls:18.0f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--size", type=int, default=16, help="bytes for recv/send")
    parser.add_argument("--only", default=",".join(SHAPES))
    parser.add_argument("--bindings", default=",".join(BINDINGS))
    parser.add_argument("--callgrind", action="store_true")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    SELECTED[:] = args.bindings.split(",")
    try:
        if args.one:
            one(args)
            return
        shapes = args.only.split(",")
        if args.callgrind:
            callgrind(args, shapes)
        else:
            measure(args, shapes)
    finally:
        for close in CLOSE:
            close()


if __name__ == "__main__":
    main()
