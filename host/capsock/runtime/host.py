"""Run one component with capsock's networking and wasmtime's WASI.

wasmtime's own `wasi:sockets` stays linked (componentize-py guests import
it) but the default `WasiConfig` grants it no network at all: the only way
out of the sandbox is capsock's policy.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from wasmtime import Engine, ExitTrap, Store, WasiConfig, WasmtimeError
from wasmtime.component import Component, Linker

from ..addresses import SocketAddress, parse_host_port
from ..backends.base import Backend, DatagramSocket, Resolver, StreamSocket
from ..backends.os import OsBackend, OsDatagramSocket, OsStreamSocket
from ..backends.tls import transport_of
from ..binding import HandleTable, interfaces_for, link
from ..core.audit import AuditLog
from ..core.context import InstanceContext, Preopen
from ..core.limits import Limits
from ..core.observe import NULL_OBSERVER, InstanceObserver
from ..core.tls import TlsListenSpec, TlsSettings
from ..core.tls import attach as attach_tls
from ..errors import NetError
from ..policy import Checker, MappingTable, Policy
from .activation import InheritedSocket

if TYPE_CHECKING:
    from ..binding import WasiState
    from ..policy.config import PolicyConfig
from .cache import load_component
from .engine import new_engine
from .kill import GuestKilled, KillSwitch, RunGuard


class RunError(Exception):
    """The component cannot be started (not a command, bad pre-open...)."""


class TcpListenSpec(NamedTuple):
    """`--tcplisten HOST:PORT`: a listening socket opened by the host."""

    address: SocketAddress
    backlog: int = 128

    @classmethod
    def parse(cls, text: str) -> TcpListenSpec:
        return cls(parse_host_port(text))


def open_listener(spec: TcpListenSpec, backend: Backend) -> tuple[socket.socket, str]:
    """Open a listener for sharing with `backend` (`capsock serve` dups it
    per instance, across processes too, so it must be an OS socket); its
    name is its real bound address."""
    try:
        sock = backend.open_listener(spec.address, spec.backlog)
    except NetError as error:
        raise RunError(f"cannot listen on {spec.address}: {error.detail or error}") from None
    return _shareable(sock), str(sock.local_address())


def _shareable(sock: StreamSocket | DatagramSocket) -> socket.socket:
    """The OS socket under a backend's socket, or RunError (closing it)."""
    if isinstance(sock, (OsStreamSocket, OsDatagramSocket)):
        return sock.raw
    sock.close()
    raise RunError("shared pre-opens are OS sockets handed to each instance as a dup: "
                   f"the backend made {type(sock).__name__}, use an OS backend")


class UdpBindSpec(NamedTuple):
    """`--udpbind HOST:PORT`: a bound UDP socket opened by the host."""

    address: SocketAddress

    @classmethod
    def parse(cls, text: str) -> UdpBindSpec:
        return cls(parse_host_port(text))


def open_udp(spec: UdpBindSpec, backend: Backend) -> tuple[socket.socket, str]:
    """Open a UDP socket for sharing with `backend` (see `open_listener`);
    its name is its real bound address."""
    try:
        sock = backend.open_udp(spec.address)
    except NetError as error:
        raise RunError(f"cannot bind UDP {spec.address}: {error.detail or error}") from None
    return _shareable(sock), str(sock.local_address())


class DirSpec(NamedTuple):
    """`--dir HOSTDIR::GUESTDIR`: a host directory the guest sees at GUESTDIR.

    Like `wasmtime run --dir`: plain WASI filesystem pre-opens, read-write.
    Files are not networking, so capsock's policy does not judge them; the
    operator's grant is the whole rule. `--dir DIR` alone maps DIR to itself.
    """

    host: Path
    guest: str

    @classmethod
    def parse(cls, text: str) -> DirSpec:
        host, sep, guest = text.partition("::")
        if not host:
            raise ValueError(f"{text!r}: no host directory (expected HOSTDIR::GUESTDIR)")
        if sep and not guest:
            raise ValueError(f"{text!r}: no guest directory (expected HOSTDIR::GUESTDIR)")
        return cls(Path(host), guest if sep else host)

    def check(self) -> None:
        """Fail now, naming the directory, rather than later inside the guest."""
        if not self.host.is_dir():
            raise RunError(f"no such host directory {str(self.host)!r} for --dir")


class Host:
    """A configured host: checker, backend, pre-opens. Runs components.

    Every argument is optional and keyword-only: `Host()` denies all
    networking. `policy` (capsock's rules, e.g. `Policy.from_flags(...)`;
    or a policy file's path, or its parsed `PolicyConfig`, which also
    bring the file's limits, pre-opens, dns, audit log and mode, each
    replaced by the matching argument when one is given)
    or `checker` (any object with the `Checker` method `check(use,
    target, resolved)`, docs/embedding.md) decides every socket operation
    and lookup; give one or neither. A plain class, not a dataclass: see
    policy/rules.py.
    """

    def __init__(self, *, policy: Policy | PolicyConfig | str | Path | None = None,
                 checker: Checker | None = None,
                 backend: Backend | None = None,
                 tcp_listen: Sequence[TcpListenSpec] = (), cache_dir: Path | None = None,
                 engine: Engine | None = None, udp_bind: Sequence[UdpBindSpec] = (),
                 resolver: Resolver | None = None, peer_address: str | None = None,
                 audit_log: AuditLog | None = None, dirs: Sequence[DirSpec] = (),
                 limits: Limits | None = None, mappings: MappingTable | None = None,
                 audit_mode: bool = False,
                 inherited: Sequence[InheritedSocket] = (), tls: TlsSettings | None = None,
                 tls_listen: Sequence[TlsListenSpec] = (), wasi: str = "auto") -> None:
        if policy is not None and checker is not None:
            raise TypeError("Host takes a policy or a checker, not both")
        if isinstance(policy, str | Path):
            # A policy file (`capsock run --policy`); PolicyError names it.
            from ..policy.loader import load_policy

            policy = load_policy(policy)
        if policy is not None and not isinstance(policy, Policy):
            # A PolicyConfig: the one path from a config to a host
            # (runtime/configure.py; imported only here, for start time).
            # What the caller passes explicitly wins, lists add up.
            from .configure import host_parts

            parts = host_parts(policy)
            policy = parts.policy
            limits = limits if limits is not None else parts.limits
            tcp_listen = [*parts.tcp_listen, *tcp_listen]
            udp_bind = [*parts.udp_bind, *udp_bind]
            dirs = [*parts.dirs, *dirs]
            resolver = resolver if resolver is not None else parts.resolver
            peer_address = peer_address if peer_address is not None else parts.peer_address
            audit_log = audit_log if audit_log is not None else parts.audit_log
            audit_mode = audit_mode or parts.audit_mode
            mappings = mappings if mappings is not None else parts.mappings
        #: The `->` rules (`MappingTable.build`): virtual addresses the host
        #: translates (core/translate.py). With a `policy`, each mapping is
        #: also an allow rule for its guest side; an embedder's `checker`
        #: gets no such rule and is asked about both sides.
        self.mappings = mappings if mappings else None
        if checker is None:
            rules = policy if policy is not None else Policy.deny_all()
            if self.mappings is not None:
                outbound, inbound, resolve = self.mappings.allow_rules()
                rules = rules.granting(allow_outbound=outbound, allow_inbound=inbound,
                                       allow_resolve=resolve)
            checker = rules
        #: What decides each socket operation of every instance.
        self.checker: Checker = checker
        self.backend: Backend = backend if backend is not None else OsBackend()
        #: `--tcplisten`: TCP listeners opened before the guest starts.
        self.tcp_listen = tcp_listen
        #: The compilation cache (None: `default_cache_dir()`).
        self.cache_dir = cache_dir
        #: Made by `new_engine` (epoch interruption on) so a kill can stop a
        #: guest spinning in wasm; any other engine works, minus that.
        self.engine = engine if engine is not None else new_engine()
        #: `--udpbind`: UDP sockets bound before the guest starts.
        self.udp_bind = udp_bind
        #: Where names are resolved (`--dns` makes a DnsResolver). None: the
        #: backend's own (`default_resolver()`: the system's for the OS, the
        #: virtual network's name table for the in-memory backend).
        self.resolver = resolver
        #: `--peer-address`: "real", or "hidden" for the reserved stand-ins.
        self.peer_address = peer_address if peer_address is not None else "real"
        #: `--policy-mode=audit`: denials are logged as would-deny, not enforced.
        self.audit_mode = audit_mode
        #: `--audit-log`: already open, so a bad path fails before any guest runs.
        self.audit_log = audit_log
        #: `--dir`: host directories pre-opened for the guest's WASI filesystem.
        self.dirs = dirs
        #: Per-instance limits (`--max-*`): each instance gets its own quotas.
        self.limits = limits if limits is not None else Limits()
        #: `--tls-ca`, `--tls-ca-only`: the trust store of guests' TLS clients.
        self.tls = tls if tls is not None else TlsSettings()
        #: `--tls-listen`: listeners whose connections the host TLS-terminates.
        self.tls_listen = tls_listen
        #: Sockets a launcher passed (socket activation, runtime/activation.py):
        #: the Host keeps them; each instance gets a dup, like `serve`'s.
        self.inherited = inherited
        if wasi not in WASI_MODES:
            raise ValueError(f"wasi must be one of {WASI_MODES}, not {wasi!r}")
        #: Which WASI serves a component (`wasi_host_of`): "auto", "capsock"
        #: (`--wasi-sockets`) or "wasmtime".
        self.wasi = wasi

    def __repr__(self) -> str:
        return (f"Host(checker={self.checker!r}, backend={self.backend!r}, "
                f"tcp_listen={self.tcp_listen!r}, udp_bind={self.udp_bind!r})")

    def new_context(self, preopens: list[Preopen] | None = None,
                    observer: InstanceObserver = NULL_OBSERVER) -> InstanceContext:
        """A fresh instance context with this host's pre-opens opened
        (or with `preopens` already opened by the caller, e.g. `serve`),
        reporting to `observer` (metrics; core/observe.py)."""
        resolver = self.resolver if self.resolver is not None else self.backend.default_resolver()
        context = InstanceContext(self.checker, self.backend,
                                  preopens if preopens is not None else self.open_preopens(),
                                  resolver=resolver, hide_peers=self.peer_address == "hidden",
                                  audit=self.audit_log, limits=self.limits,
                                  mappings=self.mappings, audit_mode=self.audit_mode,
                                  observer=observer)
        attach_tls(context, self.tls)
        return context

    def open_preopens(self) -> list[Preopen]:
        """This host's own pre-opens, opened now: `--tcplisten`, `--tls-listen`, `--udpbind`,
        then a dup of each inherited socket (all closed again on a RunError)."""
        preopens: list[Preopen] = []
        try:
            for spec in self.tcp_listen:
                preopens.append(self._preopen(spec))
            for tls_spec in self.tls_listen:
                preopens.append(self._preopen_tls(tls_spec))
            for udp in self.udp_bind:
                preopens.append(self._preopen_udp(udp))
            for inherited in self.inherited:
                preopens.append(self.adopt_inherited(inherited))
        except RunError:
            for preopen in preopens:
                preopen.socket.close()
            raise
        return preopens

    def run(self, path: str | Path, args: Sequence[str] = (), *,
            env: Sequence[tuple[str, str]] = (),
            preopens: list[Preopen] | None = None,
            stdout: str | Path | None = None,
            kill_switch: KillSwitch | None = None,
            observer: InstanceObserver = NULL_OBSERVER) -> int:
        """Run the component's `wasi:cli/run`; returns its exit code.

        `env` becomes the guest's environment. `preopens`, when given,
        replaces the pre-opens this Host would open itself; the guest's
        teardown closes them either way. `kill_switch.kill()`, from any
        thread, stops the guest wherever it is (kill.py): the instance is
        torn down like any other and this raises `GuestKilled`. `observer`
        is told what the instance does (`runtime.metrics.Metrics.instance`).
        """
        shared = [transport_of(p.socket) for p in preopens] if preopens is not None else []
        if preopens is None and self.inherited:
            # Inherited sockets are the launcher's too: a kill must leave
            # them listening (RunGuard restores shared listeners), so they
            # are opened here, where they can be named as shared.
            preopens = self.open_preopens()
            shared = [transport_of(p.socket)
                      for p in preopens[len(preopens) - len(self.inherited):]]
        guard = RunGuard(self.engine, kill_switch, shared=shared)
        try:
            code = self._run_guarded(path, args, env, preopens, stdout, guard, observer)
        finally:
            guard.close()
        if guard.killed:
            # Raised from this small frame: the traceback an embedder keeps
            # holds no component (an open, mapped .cwasm) and no store.
            raise GuestKilled(guard.reason)
        return code

    def _run_guarded(self, path: str | Path, args: Sequence[str],
                     env: Sequence[tuple[str, str]], preopens: list[Preopen] | None,
                     stdout: str | Path | None, guard: RunGuard,
                     observer: InstanceObserver) -> int:
        """Load, instantiate, run, tear down; the exit code (meaningless
        when `guard.killed`)."""
        if guard.killed:
            if preopens is not None:  # they were handed over: close them as teardown would
                for preopen in preopens:
                    preopen.socket.close()
            return 1
        for directory in self.dirs:
            directory.check()
        component = load_component(self.engine, path, self.cache_dir)
        run_export = _find_run_export(self.engine, component)
        context = self.new_context(preopens, observer)
        table = HandleTable()
        guard.watch(context, table)
        closers: list[Callable[[], None]] = []
        try:
            return self._instantiate_and_run(path, args, env, stdout, component, run_export,
                                             context, table, guard, closers)
        except Exception:
            if not guard.killed:
                raise
            return 1
        finally:
            guard.finish()
            self._teardown(context, table)
            for close in closers:
                close()

    def _instantiate_and_run(self, path: str | Path, args: Sequence[str],
                             env: Sequence[tuple[str, str]], stdout: str | Path | None,
                             component: Component, run_export: str, context: InstanceContext,
                             table: HandleTable, guard: RunGuard,
                             closers: list[Callable[[], None]]) -> int:
        linker = Linker(self.engine)
        capsock_wasi = wasi_host_of(self.engine, component, self.wasi) == "capsock"
        variables = [(name, value) for name, value in env]
        if self.dirs and not any(name == "PWD" for name, _ in env):
            # The first --dir is the guest's working directory: a WASI guest
            # has no cwd of its own, so `capsock build`'s script wrapper
            # chdirs to $PWD (http.server's default ".", os.getcwd()).
            variables.append(("PWD", self.dirs[0].guest))
        argv = [Path(path).name, *args]
        state: WasiState | None = None
        if capsock_wasi:
            # Imported here: ~10 ms of start-up that only components run on
            # capsock's WASI host need (`python -X importtime`).
            from ..binding import WasiState, wasi_interfaces

            state = WasiState(context, args=argv, env=variables, stdout=stdout,
                              dirs=[(d.host, d.guest) for d in self.dirs],
                              stopped=lambda: guard.killed)
            closers.append(state.close)
            link(linker, self.engine, component, interfaces_for(context), table,
                 max_call_bytes=self.limits.max_call_bytes, refuse=context.call_too_large,
                 wasi=wasi_interfaces(state))
        else:
            linker.add_wasip2()
            link(linker, self.engine, component, interfaces_for(context), table,
                 max_call_bytes=self.limits.max_call_bytes, refuse=context.call_too_large)
        store = Store(self.engine)
        limits = self.limits
        # Before instantiation: a component whose initial memory exceeds the
        # limit fails to start, and no memory.grow can pass it later.
        store.set_limits(memory_size=limits.max_memory,
                         table_elements=limits.max_table_elements,
                         instances=limits.max_instances, tables=limits.max_tables,
                         memories=limits.max_memories)
        guard.arm(store)
        if not capsock_wasi:
            wasi = WasiConfig()
            wasi.argv = argv
            wasi.env = [list(pair) for pair in variables]
            wasi.inherit_stdin()
            if stdout is None:
                wasi.inherit_stdout()
            else:  # e.g. the conformance harness reads the guest's report
                wasi.stdout_file = str(stdout)
            wasi.inherit_stderr()
            for directory in self.dirs:
                wasi.preopen_dir(str(directory.host), directory.guest)
            store.set_wasi(wasi)
        try:
            instance = linker.instantiate(store, component)
        except WasmtimeError as error:
            if "exceeds memory limits" in str(error) or "limit exceeded" in str(error) \
                    or "exceeds table limits" in str(error):
                raise RunError(f"{path}: the guest needs more than its limits allow "
                               f"(--max-memory={limits.max_memory}): {error}") from None
            raise
        interface_index = component.get_export_index(run_export)
        func_index = component.get_export_index("run", interface_index)
        if func_index is None:
            raise RunError(f"{path}: {run_export} has no `run` function")
        run = instance.get_func(store, func_index)
        if run is None:
            raise RunError(f"{path}: cannot find {run_export}#run")
        try:
            result = run(store)
        except ExitTrap as exit_trap:
            return exit_trap.code
        except WasmtimeError as error:
            if state is not None and state.exit_code is not None:
                return state.exit_code
            code = _exit_code(error)
            if code is not None:
                return code
            if not guard.killed:
                print(f"capsock: the guest trapped: {error}", flush=True, file=sys.stderr)
            return 1
        return 0 if getattr(result, "tag", "ok") == "ok" else 1

    def _preopen(self, spec: TcpListenSpec) -> Preopen:
        """A listener made by the backend: an OS socket, or a virtual one
        on the in-memory network."""
        try:
            sock = self.backend.open_listener(spec.address, spec.backlog)
        except NetError as error:
            raise RunError(f"cannot listen on {spec.address}: {error.detail or error}") from None
        return Preopen(str(sock.local_address()), "tcp", spec.address.is_ipv6, sock)

    def _preopen_tls(self, spec: TlsListenSpec) -> Preopen:
        """A `--tls-listen` listener: a backend listener whose accepted
        connections are TLS-terminated by the host (`backends.tls`)."""
        try:
            sock = self.backend.open_listener(spec.address, spec.backlog)
        except NetError as error:
            raise RunError(f"cannot listen on {spec.address}: {error.detail or error}") from None
        try:
            listener = spec.listener(sock, self.limits.tls_handshake_timeout)
        except ValueError as error:
            sock.close()
            raise RunError(str(error)) from None
        return Preopen(str(sock.local_address()), "tcp", spec.address.is_ipv6, listener)

    def adopt_inherited(self, inherited: InheritedSocket) -> Preopen:
        """A pre-open on a dup of a socket the launcher passed (the original
        stays with the Host, so every run and every instance gets one)."""
        dup = inherited.sock.dup()
        try:
            sock = (self.backend.adopt_tcp(dup) if inherited.protocol == "tcp"
                    else self.backend.adopt_udp(dup))
        except NetError as error:
            dup.close()
            raise RunError(f"socket activation ({inherited.name}): "
                           f"{error.detail or error}") from None
        return Preopen(inherited.name, inherited.protocol, inherited.ipv6, sock)

    def _preopen_udp(self, spec: UdpBindSpec) -> Preopen:
        try:
            sock = self.backend.open_udp(spec.address)
        except NetError as error:
            raise RunError(f"cannot bind UDP {spec.address}: {error.detail or error}") from None
        return Preopen(str(sock.local_address()), "udp", spec.address.is_ipv6, sock)

    @staticmethod
    def _teardown(context: InstanceContext, table: HandleTable) -> None:
        """Close every socket the guest still held, and unclaimed pre-opens."""
        table.drop_all()
        for preopen in context.take_preopens():
            preopen.socket.close()
        context.flush_denials()


#: `Host(wasi=...)`: which WASI implementation serves a component.
WASI_MODES = ("auto", "capsock", "wasmtime")


def wasi_host_of(engine: Engine, component: Component, mode: str) -> str:
    """"capsock" or "wasmtime": whose WASI serves `component`.

    One instance cannot mix them (they would not share `wasi:io` types).
    "auto" picks capsock's for a component that imports `wasi:sockets`
    and not `capsock:net` (a stock component, whose only network is
    `wasi:sockets`, which wasmtime's C API denies); a capsock guest
    (`capsock:net`, whose componentize-py runtime imports `wasi:sockets`
    without using it) keeps wasmtime's, faster at start-up and stdio.
    """
    if mode != "auto":
        return mode
    names = list(component.type.imports(engine))
    sockets = any(name.startswith("wasi:sockets/") for name in names)
    capsock = any(name.startswith("capsock:net/") for name in names)
    return "capsock" if sockets and not capsock else "wasmtime"


def _find_run_export(engine: Engine, component: Component) -> str:
    for name in component.type.exports(engine):
        if name.startswith("wasi:cli/run@"):
            return name
    raise RunError("the component does not export wasi:cli/run: build it as a command "
                   "(a world that exports wasi:cli/run)")


def _exit_code(error: WasmtimeError) -> int | None:
    """The code of a `wasi:cli/exit` call, which wasmtime reports as an error."""
    text = str(error)
    marker = "exit status "
    if marker in text:
        digits = text.split(marker, 1)[1].split()[0].rstrip(".,")
        if digits.lstrip("-").isdigit():
            return int(digits)
    return None
