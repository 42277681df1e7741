"""Killing a running guest from the embedder (`KillSwitch`), end to end.

Real guests, real loopback sockets, in this process: the kill comes from
the test's thread while `Host.run` runs in another. Each way a guest can be
busy is covered, and checked to really be happening when the kill lands:

* spinning in pure wasm (a hand-written component: no guest app spins
  without host calls), and a componentize-py guest in a loop of host calls
  (`probe hostcall`);
* blocked in `accept` (bsdecho: blocking BSD sockets) or in `poll` (echo:
  its event loop) on the pre-opened listener;
* blocked in `receive` on an accepted connection (bsdecho, mid-connection).

"Blocked" is read from /proc/self/task/TID/syscall: the test waits until
the guest's thread sits in that system call, so the host-call path is the
one exercised, not a lucky epoch check.
"""

from __future__ import annotations

import gc
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from wasmtime import Engine, wat2wasm

from capsock import Host, MemoryBackend, OsBackend, Policy, Preopen, TcpListenSpec, VirtualNetwork
from capsock.runtime import GuestKilled, KillSwitch, load_component, new_engine

from ..conftest import capsock_command, capsock_env
from .test_teardown_hostile import open_fds, os_threads

#: A component whose `run` loops forever without a single host call.
SPIN_WAT = """
(component
  (core module $m
    (func (export "run") (result i32)
      (loop $forever (br $forever))
      i32.const 0))
  (core instance $i (instantiate $m))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $run-instance (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $run-instance)))
"""

#: System call numbers (x86_64, aarch64) of the blocking calls the guests make.
SYSCALLS = {
    "x86_64": {"accept": {43, 288}, "recv": {45}, "poll": {7, 271}},
    "aarch64": {"accept": {202, 242}, "recv": {207}, "poll": {73}},
}
KILLS = 50
#: A kill must end a run this fast (it takes ~1-5 ms; the margin is for a
#: loaded two-core CI machine).
PROMPT = 5.0


@pytest.fixture(scope="module")
def spin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("spin") / "spin.wasm"
    path.write_bytes(wat2wasm(SPIN_WAT))
    return path


@pytest.fixture(scope="module")
def apps(guests: dict[str, Path]) -> dict[str, Path]:
    """The guests used here, compiled into the cache first: a kill cannot
    interrupt wasmtime compiling a component (~10-30 s cold), and these
    tests time kills, not compilations."""
    engine = new_engine()
    for app in ("bsdecho", "echo", "probe"):
        load_component(engine, guests[app])
    return guests


class Running:
    """`host.run(...)` in a thread, with its outcome and its native thread id."""

    def __init__(self, host: Host, component: Path, args: list[str], out: Path,
                 **kwargs: object) -> None:
        self.switch = KillSwitch()
        self.out = out
        self.outcome: int | BaseException | None = None
        self.tid = 0
        started = threading.Event()

        def target() -> None:
            self.tid = threading.get_native_id()
            started.set()
            try:
                self.outcome = host.run(component, args, stdout=out, kill_switch=self.switch,
                                        **kwargs)  # type: ignore[arg-type]
            except BaseException as error:  # noqa: BLE001 - the test inspects it
                # Without its traceback: that holds this frame, whose `self`
                # holds the error, a cycle only the cyclic GC would free.
                self.outcome = error.with_traceback(None)

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()
        started.wait(10)

    def wait_line(self, prefix: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.out.exists():
                for line in self.out.read_text().splitlines():
                    if line.startswith(prefix):
                        return line
            if not self.thread.is_alive():
                raise AssertionError(f"the guest ended before {prefix!r}: {self.outcome!r}")
            time.sleep(0.01)
        raise AssertionError(f"no {prefix!r} within {timeout}s")

    def wait_in(self, call: str, timeout: float = 30.0) -> None:
        """Until the guest's thread is blocked in system call `call`."""
        numbers = SYSCALLS.get(os.uname().machine, {}).get(call)
        if numbers is None:  # another architecture: settle for a pause
            time.sleep(0.5)
            return
        deadline = time.monotonic() + timeout
        seen = ""
        while time.monotonic() < deadline:
            try:
                seen = Path(f"/proc/self/task/{self.tid}/syscall").read_text().split()[0]
            except (OSError, IndexError):
                time.sleep(0.5)
                return
            if seen.isdigit() and int(seen) in numbers:
                time.sleep(0.02)  # and still there: really blocked
                now = Path(f"/proc/self/task/{self.tid}/syscall").read_text().split()[0]
                if now == seen:
                    return
            time.sleep(0.005)
        raise AssertionError(f"the guest never blocked in {call} (last syscall {seen})")

    def kill_and_wait(self) -> float:
        """Kill, wait for `run` to end; the seconds it took."""
        start = time.monotonic()
        self.switch.kill("test kill")
        self.thread.join(PROMPT)
        took = time.monotonic() - start
        assert not self.thread.is_alive(), f"run still going {PROMPT}s after the kill"
        return took

    def assert_killed(self) -> None:
        assert isinstance(self.outcome, GuestKilled), self.outcome
        assert self.outcome.reason == "test kill"
        assert "killed" in str(self.outcome)


def listener_host(port: int = 0, **kwargs: object) -> Host:
    return Host(tcp_listen=[TcpListenSpec.parse(f"127.0.0.1:{port}")], **kwargs)  # type: ignore[arg-type]


def listening_port(run: Running) -> int:
    return int(run.wait_line("listening on ").rsplit(":", 1)[1])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- one kill of each kind -------------------------------------------------------------

def test_kill_stops_a_guest_spinning_in_pure_wasm(spin: Path, tmp_path: Path) -> None:
    run = Running(Host(), spin, [], tmp_path / "out")
    time.sleep(0.3)  # it is spinning: nothing else it could do
    assert run.kill_and_wait() < PROMPT
    run.assert_killed()


def test_kill_stops_a_guest_busy_in_a_loop_of_host_calls(apps: dict[str, Path],
                                                         tmp_path: Path) -> None:
    host = Host(policy=Policy.from_flags(allow_outbound=["tcp://127.0.0.1:9"]))
    run = Running(host, apps["probe"], ["hostcall", str(10**10)], tmp_path / "out")
    time.sleep(1.0)
    assert run.thread.is_alive()
    run.kill_and_wait()
    run.assert_killed()


@pytest.mark.parametrize(("app", "call"), [("bsdecho", "accept"), ("echo", "poll")])
def test_kill_mid_accept(apps: dict[str, Path], tmp_path: Path, app: str, call: str) -> None:
    """Blocked in the kernel on the pre-opened listener: the kill shuts it
    down, the call returns, the guest traps; the port is the host's again."""
    port = free_port()
    run = Running(listener_host(port), apps[app], [], tmp_path / "out")
    assert listening_port(run) == port
    run.wait_in(call)
    run.kill_and_wait()
    run.assert_killed()
    with socket.create_server(("127.0.0.1", port)) as again:  # nobody holds it any more
        assert again.getsockname()[1] == port


def test_kill_mid_connection(apps: dict[str, Path], tmp_path: Path) -> None:
    """Blocked in `receive` on an accepted connection: the peer sees the
    connection end (EOF), so the host closed it, not just forgot it."""
    run = Running(listener_host(), apps["bsdecho"], [], tmp_path / "out")
    port = listening_port(run)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(b"hello")
        assert client.recv(5) == b"hello"
        run.wait_in("recv")
        run.kill_and_wait()
        run.assert_killed()
        assert client.recv(10) == b""


def test_kill_before_the_run_and_after_it(apps: dict[str, Path], tmp_path: Path) -> None:
    """Killed first: no guest code runs and pre-opens handed over are closed.
    Killed after the end: nothing happens; the switch stays killed."""
    switch = KillSwitch()
    switch.kill()
    listener = socket.create_server(("127.0.0.1", 0))
    given = Preopen("l", "tcp", False, OsBackend().adopt_tcp(listener.dup()))
    with pytest.raises(GuestKilled, match="killed by the embedder"):
        Host().run(apps["bsdecho"], [], preopens=[given], kill_switch=switch)
    assert given.socket.fileno() == -1
    listener.close()

    late = KillSwitch()
    host = Host(policy=Policy.from_flags(allow_inbound=["tcp://127.0.0.1:*"]))
    out = tmp_path / "out"
    code = host.run(apps["probe"], ["accept-unbound"], stdout=out, kill_switch=late)
    late.kill()
    assert code == 0 and late.killed
    with pytest.raises(GuestKilled):  # a switch is a cancellation token: it stays killed
        host.run(apps["probe"], ["accept-unbound"], stdout=out, kill_switch=late)


def test_one_kill_leaves_the_other_runs_of_the_engine_alone(spin: Path, apps: dict[str, Path],
                                                            tmp_path: Path) -> None:
    """A kill increments the engine's epoch, which every store of it sees;
    only the killed one traps. The other spinner and a server keep going."""
    host = listener_host()
    victim = Running(host, spin, [], tmp_path / "victim")
    bystander = Running(host, spin, [], tmp_path / "bystander")
    server = Running(host, apps["bsdecho"], ["--max-connections", "1"], tmp_path / "server")
    port = listening_port(server)
    time.sleep(0.2)
    victim.kill_and_wait()
    victim.assert_killed()
    time.sleep(0.3)
    assert bystander.thread.is_alive() and server.thread.is_alive()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(b"still here")
        client.shutdown(socket.SHUT_WR)
        assert client.recv(100) == b"still here"
    server.thread.join(30)
    assert server.outcome == 0
    bystander.kill_and_wait()
    bystander.assert_killed()


def test_kill_keeps_the_embedders_shared_listener(apps: dict[str, Path], tmp_path: Path) -> None:
    """The embedder keeps a listener and hands each run a dup (as `capsock
    serve` does). The kill must shut the dup down to wake `accept`, which
    shuts the shared socket down too; afterwards it listens again on the
    same address, for the host and for the next guest."""
    listener = socket.create_server(("127.0.0.1", 0))  # port 0: the kernel releases it
    address = listener.getsockname()
    host = Host()

    def preopen() -> list[Preopen]:
        return [Preopen(f"{address[0]}:{address[1]}", "tcp", False,
                        OsBackend().adopt_tcp(listener.dup()))]

    try:
        run = Running(host, apps["bsdecho"], [], tmp_path / "out", preopens=preopen())
        run.wait_line("listening on")
        run.wait_in("accept")
        run.kill_and_wait()
        run.assert_killed()
        assert listener.getsockname() == address
        with socket.create_connection(address, timeout=5):
            listener.settimeout(5)
            conn, _ = listener.accept()  # the host's own use of it
            conn.close()
        nxt = Running(host, apps["bsdecho"], ["--max-connections", "1"], tmp_path / "next",
                      preopens=preopen())
        nxt.wait_line("listening on")
        with socket.create_connection(address, timeout=10) as client:
            client.sendall(b"next guest")
            client.shutdown(socket.SHUT_WR)
            assert client.recv(100) == b"next guest"
        nxt.thread.join(30)
        assert nxt.outcome == 0
    finally:
        listener.close()


def test_kill_on_the_memory_backend(apps: dict[str, Path], tmp_path: Path) -> None:
    """A virtual socket's wait is a condition variable, not a system call:
    the kill closes the instance's sockets, which wakes it."""
    net = VirtualNetwork()
    host = Host(backend=MemoryBackend(net), tcp_listen=[TcpListenSpec.parse("127.0.0.1:8080")])
    run = Running(host, apps["bsdecho"], [], tmp_path / "out")
    run.wait_line("listening on")
    time.sleep(0.3)
    run.kill_and_wait()
    run.assert_killed()


# -- nothing left behind --------------------------------------------------------------

def test_50_kills_leave_nothing_behind(spin: Path, apps: dict[str, Path],
                                       tmp_path: Path) -> None:
    """Fifty kills, in turn spinning, mid-accept, mid-poll and mid-connection:
    no growth in descriptors, OS threads or Python threads, and the
    pre-opened port still serves a guest afterwards."""
    port = free_port()
    host = listener_host(port)

    def spinning() -> None:
        run = Running(host, spin, [], tmp_path / "spin")
        time.sleep(0.05)
        run.kill_and_wait()
        run.assert_killed()

    def accepting(app: str, call: str) -> Callable[[], None]:
        def kill() -> None:
            out = tmp_path / f"{app}.out"
            out.unlink(missing_ok=True)
            run = Running(host, apps[app], [], out)
            listening_port(run)
            run.wait_in(call)
            run.kill_and_wait()
            run.assert_killed()
        return kill

    def connected() -> None:
        out = tmp_path / "conn.out"
        out.unlink(missing_ok=True)
        run = Running(host, apps["bsdecho"], [], out)
        listening_port(run)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(b"x")
            assert client.recv(1) == b"x"
            run.wait_in("recv")
            run.kill_and_wait()
            run.assert_killed()
            assert client.recv(1) == b""

    kinds = [spinning, accepting("bsdecho", "accept"), accepting("echo", "poll"), connected]
    for kind in kinds:  # warm-up: compile cache, lazily started threads
        kind()
    # A trap reaches Python through wasmtime-py's `enter_wasm`, whose frame
    # keeps the trap it raises in a local: a cycle through the traceback
    # that holds the run's frames (store, component: an open .cwasm) until
    # the cyclic GC runs, as for a guest that traps by itself. What must
    # not grow is what survives a collection.
    gc.collect()
    fds, threads, py_threads = open_fds(), os_threads(), threading.active_count()
    took = time.monotonic()
    for i in range(KILLS):
        kinds[i % len(kinds)]()
    took = time.monotonic() - took
    gc.collect()
    assert open_fds() <= fds
    assert os_threads() <= threads
    assert threading.active_count() <= py_threads
    # and the pre-opened port is the host's: the next guest serves on it
    out = tmp_path / "last.out"
    last = Running(host, apps["bsdecho"], ["--max-connections", "1"], out)
    assert listening_port(last) == port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(b"after 50 kills")
        client.shutdown(socket.SHUT_WR)
        assert client.recv(100) == b"after 50 kills"
    last.thread.join(30)
    assert last.outcome == 0
    print(f"{KILLS} kill cycles in {took:.1f}s")


# -- the compilation cache and the CLI ------------------------------------------------

def test_cache_keeps_interruptible_and_plain_artifacts_apart(spin: Path, tmp_path: Path) -> None:
    """Code compiled with epoch checks cannot be loaded by an engine without
    them (nor the reverse): each kind gets its own cache entry, and both
    are hits the second time."""
    load_component(new_engine(), spin, tmp_path)
    load_component(Engine(), spin, tmp_path)
    entries = sorted(tmp_path.glob("*.cwasm"))
    assert len(entries) == 2
    stamps = [entry.stat().st_mtime_ns for entry in entries]
    load_component(new_engine(), spin, tmp_path)
    load_component(Engine(), spin, tmp_path)
    assert [entry.stat().st_mtime_ns for entry in sorted(tmp_path.glob("*.cwasm"))] == stamps


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cli_run_kills_the_guest_on_a_signal(spin: Path, apps: dict[str, Path],
                                             sig: signal.Signals) -> None:
    """`capsock run` on a spinning guest and on one blocked in `accept`:
    Ctrl-C (or SIGTERM) kills the guest and exits 128+signal."""
    for args in ([str(spin)], ["--tcplisten", "127.0.0.1:0", str(apps["bsdecho"])]):
        process = subprocess.Popen(capsock_command("run", *args), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env=capsock_env())
        try:
            if "--tcplisten" in args:
                assert process.stdout is not None
                assert process.stdout.readline().startswith("listening on")
            time.sleep(1.0)
            process.send_signal(sig)
            code = process.wait(timeout=20)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert process.stderr is not None
        stderr = process.stderr.read()
        assert code == 128 + sig, stderr
        assert f"{sig.name}: killing the guest" in stderr
        assert "Traceback" not in stderr


def test_serve_threads_kill_stragglers_after_the_grace_period(apps: dict[str, Path]) -> None:
    """`capsock serve --mode thread`: an instance still busy with a connection
    when the grace period ends is killed (it used to be abandoned, its
    sockets left open); the client sees its connection closed and no
    socket is left open."""
    process = subprocess.Popen(
        capsock_command("serve", "--instances", "1", "--mode", "thread", "--grace", "1",
                        "--tcplisten", "127.0.0.1:0", str(apps["bsdecho"])),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=capsock_env())
    try:
        assert process.stderr is not None and process.stdout is not None
        port = int(process.stderr.readline().split("127.0.0.1:")[1].split()[0])
        assert process.stdout.readline().startswith("listening on")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(b"busy")
            assert client.recv(4) == b"busy"  # the instance now waits in receive
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=30)
            assert time.monotonic() - started < 10
            assert client.recv(10) == b""
        stderr = process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "grace period over; killed the remaining instances" in stderr
    assert "0 socket(s) still open" in stderr
    assert code == 1, stderr
