"""Run the conformance cases: prepare each setup, run the probes, compare.

For every :class:`~capsock.conformance.cases.Setup` the harness starts the
peers it needs (echo servers, a silent server, a closed port, a DNS
server), builds a :class:`~capsock.Host` with the setup's rules and
pre-opens on the chosen backend, runs the core probe once with the
setup's core cases (and the probe of each extension the host implements
once with that extension's cases), and compares each reported outcome
with the table. The cases of an extension the host does not implement
are reported as skipped.
"""

from __future__ import annotations

import json
import re
import shlex
import socket
import ssl
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from xml.sax.saxutils import escape, quoteattr

from ..addresses import SocketAddress, parse_host_port
from ..backends.memory import MemoryBackend, VirtualConnection, VirtualListener, VirtualNetwork
from ..backends.resolvers import DnsResolver
from ..core.tls import TlsListenSpec, TlsSettings
from ..errors import ErrorCode, NetError
from ..policy import MappingTable, Policy, is_mapping
from ..runtime.host import Host, TcpListenSpec, UdpBindSpec
from .cases import CASES, SETUPS, ZONE, Case, Setup
from .dns_server import DnsServer
from .tls_peers import SERVERS, TestPki, make_pki, serve_tls


@dataclass
class Result:
    case: Case
    expected: str
    got: str
    passed: bool
    skipped: bool = False


@dataclass(frozen=True)
class Probes:
    """The probe components: the core probe (the world `imports`) and, for
    each extension the host implements, the probe built with it."""

    core: Path
    extensions: Mapping[str, Path] = field(default_factory=dict)

    def for_case(self, case: Case) -> Path | None:
        """The probe that runs `case`; None when its extension is not there."""
        return self.core if case.extension is None else self.extensions.get(case.extension)


class Peers(Protocol):
    """The host-side peers of a run, and how to reach them."""

    def values(self) -> dict[str, str]: ...
    def host_for(self, setup: Setup, flags: dict[str, list[str]]) -> Host: ...


def ipv6_available() -> bool:
    """A real probe of the machine: can we bind ::1?"""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


# -- OS peers ---------------------------------------------------------------------------

def _serve_tcp(sock: socket.socket, handler: Callable[[socket.socket], None],
               stop: threading.Event) -> None:
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            conn, _ = sock.accept()
        except OSError:
            continue
        threading.Thread(target=handler, args=(conn,), daemon=True).start()


def _echo(conn: socket.socket) -> None:
    with conn:
        conn.settimeout(30)
        try:
            while data := conn.recv(65536):
                conn.sendall(data)
        except OSError:
            pass


def _silent(conn: socket.socket) -> None:
    with conn:
        conn.settimeout(30)
        try:
            while conn.recv(65536):
                pass
        except OSError:
            pass


def _serve_udp(sock: socket.socket, stop: threading.Event) -> None:
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            data, peer = sock.recvfrom(65536)
            sock.sendto(data, peer)
        except OSError:
            continue


class OsPeers:
    """Real peers on loopback, for the OS backend."""

    def __init__(self, stack: ExitStack, ipv6: bool) -> None:
        self._stop = threading.Event()
        stack.callback(self._stop.set)
        self._values: dict[str, str] = {}
        self._tcp("echo", "127.0.0.1", _echo, stack)
        self._tcp("silent", "127.0.0.1", _silent, stack)
        self._udp("udp", "127.0.0.1", stack)
        if ipv6:
            self._tcp("echo6", "::1", _echo, stack)
            self._udp("udp6", "::1", stack)
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            port = closed.getsockname()[1]
        self._values.update(closed=f"127.0.0.1:{port}", closed_port=str(port))
        self.dns = stack.enter_context(DnsServer(ZONE))
        self._values["dns"] = self.dns.address
        self.pki = _pki(stack, self._values)
        for name, context, behaviour in _tls_servers(self.pki):
            self._tcp(name, "127.0.0.1", _os_tls(context, behaviour), stack)

    def _tcp(self, name: str, host: str, handler: Callable[[socket.socket], None],
             stack: ExitStack) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        stack.callback(sock.close)
        sock.bind((host, 0))
        sock.listen(64)
        port = sock.getsockname()[1]
        threading.Thread(target=_serve_tcp, args=(sock, handler, self._stop), daemon=True).start()
        shown = f"[{host}]" if ":" in host else host
        self._values.update({name: f"{shown}:{port}", f"{name}_port": str(port)})

    def _udp(self, name: str, host: str, stack: ExitStack) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        stack.callback(sock.close)
        sock.bind((host, 0))
        port = sock.getsockname()[1]
        threading.Thread(target=_serve_udp, args=(sock, self._stop), daemon=True).start()
        shown = f"[{host}]" if ":" in host else host
        key = "udp_echo6" if name == "udp6" else "udp_echo"
        self._values.update({key: f"{shown}:{port}", f"{name}_port": str(port)})

    def values(self) -> dict[str, str]:
        return dict(self._values)

    def host_for(self, setup: Setup, flags: dict[str, list[str]]) -> Host:
        resolver_kwargs: dict[str, Any] = {}
        if setup.dns:
            resolver_kwargs["resolver"] = DnsResolver(
                SocketAddress.from_os(("127.0.0.1", self.dns.port)))
        return Host(policy=_policy(flags), mappings=_mappings(flags),
                    tcp_listen=[TcpListenSpec.parse(t) for t in setup.tcplisten],
                    udp_bind=[UdpBindSpec.parse(u) for u in setup.udpbind],
                    peer_address=setup.peer_address, tls=_tls_settings(setup, self.pki),
                    tls_listen=_tls_listens(setup, self.pki), **resolver_kwargs)



def virtual_accepts(listener: VirtualListener, stop: threading.Event
                    ) -> Iterator[VirtualConnection]:
    """The connections a virtual `listener` accepts until `stop` is set or
    it is closed; its accept timeout (short, so that the stop is noticed)
    is waited through."""
    while not stop.is_set():
        try:
            conn, _ = listener.accept()
        except NetError as error:
            if error.code is ErrorCode.TIMEOUT:
                continue
            return
        yield conn

class MemoryPeers:
    """The same peers as virtual services on an in-memory network.

    Each connection gets its own thread, like the OS peers, so a probe that
    keeps a connection open never blocks the next one.
    """

    def __init__(self, stack: ExitStack, ipv6: bool) -> None:
        self.network = VirtualNetwork(names=ZONE)
        self._stop = threading.Event()
        stack.callback(self._stop.set)
        self._values: dict[str, str] = {"dns": "memory"}
        for name, host in (("echo", "127.0.0.1"), ("echo6", "::1")):
            self._tcp(name, host, 7001, _virtual_echo, stack)
        self._tcp("silent", "127.0.0.1", 7002, _virtual_silent, stack)
        self._values.update(closed="127.0.0.1:7003", closed_port="7003")
        for name, host in (("udp", "127.0.0.1"), ("udp6", "::1")):
            self._udp(name, host, 7004, stack)
        self.pki = _pki(stack, self._values)
        for port, (name, context, behaviour) in enumerate(_tls_servers(self.pki), 7010):
            self._tcp(name, "127.0.0.1", port, _virtual_tls(context, behaviour), stack)

    def _tcp(self, name: str, host: str, port: int,
             handler: Callable[[VirtualConnection], None], stack: ExitStack) -> None:
        listener = self.network.listen((host, port), timeout=0.5)
        stack.callback(listener.close)

        def accept_loop() -> None:
            for conn in virtual_accepts(listener, self._stop):
                # The accept timeout (0.5 s, to notice the stop) would be the
                # connection's too: a guest pausing longer mid-exchange on a
                # loaded machine got `connection-reset` (tcp.send.echo-1mib).
                # 30 s, as the OS peers.
                conn.sock.set_timeout(30)
                threading.Thread(target=handler, args=(conn,), daemon=True).start()

        threading.Thread(target=accept_loop, daemon=True).start()
        shown = f"[{host}]" if ":" in host else host
        self._values.update({name: f"{shown}:{port}", f"{name}_port": str(port)})

    def _udp(self, name: str, host: str, port: int, stack: ExitStack) -> None:
        peer = self.network.udp_bind((host, port), timeout=0.5)
        stack.callback(peer.close)

        def echo_loop() -> None:
            while not self._stop.is_set():
                try:
                    data, sender = peer.recvfrom()
                    peer.sendto(data, sender)
                except NetError as error:
                    if error.code is not ErrorCode.TIMEOUT:
                        return

        threading.Thread(target=echo_loop, daemon=True).start()
        shown = f"[{host}]" if ":" in host else host
        key = "udp_echo6" if name == "udp6" else "udp_echo"
        self._values.update({key: f"{shown}:{port}", f"{name}_port": str(port)})

    def values(self) -> dict[str, str]:
        return dict(self._values)

    def host_for(self, setup: Setup, flags: dict[str, list[str]]) -> Host:
        return Host(policy=_policy(flags), mappings=_mappings(flags),
                    backend=MemoryBackend(self.network),
                    tcp_listen=[TcpListenSpec.parse(t) for t in setup.tcplisten],
                    udp_bind=[UdpBindSpec.parse(u) for u in setup.udpbind],
                    peer_address=setup.peer_address, resolver=self.network.resolver(),
                    tls=_tls_settings(setup, self.pki), tls_listen=_tls_listens(setup, self.pki))


def _virtual_echo(conn: VirtualConnection) -> None:
    with conn:
        try:
            while data := conn.recv():
                conn.sendall(data)
        except NetError:
            pass


def _virtual_silent(conn: VirtualConnection) -> None:
    with conn:
        try:
            while conn.recv():
                pass
        except NetError:
            pass


def _pki(stack: ExitStack, values: dict[str, str]) -> TestPki | None:
    """The TLS cases' PKI, in a folder that lives as long as the peers;
    None without the `cryptography` package (the `tls` cases are then
    reported as skipped, saying so)."""
    try:
        import cryptography  # noqa: F401  (make_pki imports its parts)
    except ImportError:
        return None
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="capsock-pki-")))
    pki = make_pki(folder)
    values["tls_ca"] = str(pki.ca)
    values["tls_cert"], values["tls_key"] = (str(path) for path in pki.leaves["good"])
    return pki


def _tls_servers(pki: TestPki | None) -> list[tuple[str, ssl.SSLContext, str]]:
    """(placeholder name, server context, behaviour) of each TLS peer."""
    if pki is None:
        return []
    return [(name, pki.server_context(kind), behaviour)
            for name, (kind, behaviour) in SERVERS.items()]


def _tls_settings(setup: Setup, pki: TestPki | None) -> TlsSettings | None:
    """A TLS setup trusts the test CA only (so no system CA can vouch for a
    test certificate)."""
    return TlsSettings((pki.ca,), ca_only=True) if setup.tls and pki is not None else None


def _tls_listens(setup: Setup, pki: TestPki | None) -> list[TlsListenSpec]:
    """The setup's --tls-listen pre-opens, with the PKI's good certificate."""
    if pki is None:
        return []
    cert, key = pki.leaves["good"]
    return [TlsListenSpec(parse_host_port(text), cert, key) for text in setup.tlslisten]


def _os_tls(context: ssl.SSLContext, behaviour: str) -> Callable[[socket.socket], None]:
    def handle(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(30)
            serve_tls(conn.recv, conn.sendall, context, behaviour)
    return handle


def _virtual_tls(context: ssl.SSLContext, behaviour: str
                 ) -> Callable[[VirtualConnection], None]:
    def handle(conn: VirtualConnection) -> None:
        with conn:
            serve_tls(conn.recv, conn.sendall, context, behaviour)
    return handle


def _policy(flags: dict[str, list[str]]) -> Policy:
    """The setup's plain rules (its `->` rules are `_mappings`')."""
    return Policy.from_flags(**{name.replace("-", "_"): [r for r in rules if not is_mapping(r)]
                                for name, rules in flags.items()})


def _mappings(flags: dict[str, list[str]]) -> MappingTable | None:
    """The setup's `->` rules, or None."""
    def mapped(name: str) -> list[str]:
        return [rule for rule in flags.get(name, []) if is_mapping(rule)]

    table = MappingTable.build(outbound=mapped("allow-outbound"),
                               inbound=mapped("allow-inbound"), resolve=mapped("allow-resolve"))
    return table if table else None


# -- running ---------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{([a-z0-9_]+)\}")


def fill(value: Any, values: dict[str, str]) -> Any:
    """Replace {placeholders} in strings (recursively in lists/tuples)."""
    if isinstance(value, str):
        def replace(match: re.Match[str]) -> str:
            return values[match.group(1)]
        filled = _PLACEHOLDER.sub(replace, value)
        return int(filled) if value.startswith("{") and value.endswith("_port}") else filled
    if isinstance(value, (list, tuple)):
        return [fill(item, values) for item in value]
    return value


def matches(expected: str, got: str) -> bool:
    if expected.startswith("re:"):
        return re.fullmatch(expected[3:], got) is not None
    return expected == got


def command_flags(setup: Setup, flags: dict[str, list[str]], values: dict[str, str]) -> list[str]:
    """The setup as `capsock run` flags: what another host must be told."""
    out = [f"--{name}={rule}" for name, rules in flags.items() for rule in rules]
    out += [f"--tcplisten={spec}" for spec in setup.tcplisten]
    out += [f"--udpbind={spec}" for spec in setup.udpbind]
    if setup.peer_address != "real":
        out.append(f"--peer-address={setup.peer_address}")
    if setup.dns:
        out.append(f"--dns={values['dns']}")
    if setup.tls:
        out += [f"--tls-ca={values['tls_ca']}", "--tls-ca-only"]
    if setup.tlslisten:
        out += [f"--tls-listen={spec}" for spec in setup.tlslisten]
        out += [f"--tls-cert={values['tls_cert']}", f"--tls-key={values['tls_key']}"]
    return out


def run_setup(setup: Setup, cases: Sequence[Case], peers: Peers, component: Path,
              workdir: Path, host_command: str | None = None) -> list[Result]:
    """Run one setup's cases in one guest run.

    With `host_command` (e.g. ``"otherhost run {flags} {component} {args}"``)
    another host runs the guest instead of this one: the placeholders are
    replaced by the setup's flags in capsock syntax, the component path and
    the case plan (one shell-quoted argument), and its stdout is the report.
    """
    values = peers.values()
    flags = {name: [fill(rule, values) for rule in rules] for name, rules in setup.flags.items()}
    plan = [[c.id, c.kind, fill(list(c.args), values)] for c in cases]
    report = workdir / f"{setup.name}.jsonl"
    if host_command is None:
        peers.host_for(setup, flags).run(component, [json.dumps(plan)], stdout=report)
    else:
        command = host_command.format(
            flags=" ".join(shlex.quote(flag) for flag in command_flags(setup, flags, values)),
            component=shlex.quote(str(component)), args=shlex.quote(json.dumps(plan)))
        with report.open("w") as out:
            subprocess.run(command, shell=True, stdout=out, timeout=600, check=False)
    outcomes: dict[str, str] = {}
    for line in report.read_text().splitlines():
        try:
            record = json.loads(line)
            outcomes[record["case"]] = record["got"]
        except (ValueError, KeyError, TypeError):
            continue
    results = []
    for case in cases:
        got = outcomes.get(case.id, "crashed")
        results.append(Result(case, case.expect, got, matches(case.expect, got)))
    return results


PeersFactory = Callable[[ExitStack, bool], Peers]


def peers_factory(backend: str) -> PeersFactory:
    """The peers for a backend: real loopback ones, or virtual ones."""
    if backend == "os":
        return OsPeers
    if backend == "memory":
        return MemoryPeers
    raise ValueError(f"no conformance peers for backend {backend!r}")


def run_all(probes: Probes | Path, peers_factory: PeersFactory,
            select: Callable[[Case], bool] = lambda case: True,
            host_command: str | None = None) -> list[Result]:
    """Run every selected case; IPv6 setups are skipped without IPv6, and
    the cases of an extension `probes` has no probe for (the host does not
    implement it) are skipped. A bare path is the core probe alone."""
    if not isinstance(probes, Probes):
        probes = Probes(probes)
    has_ipv6 = ipv6_available()
    results: list[Result] = []
    chosen = [case for case in CASES if select(case)]
    for case in chosen:
        if probes.for_case(case) is None:
            results.append(Result(case, case.expect,
                                  f"skipped: the host does not implement {case.extension}",
                                  True, True))
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        peers = peers_factory(stack, has_ipv6)
        if "tls_ca" not in peers.values():  # no PKI: the tls cases cannot run here
            no_tls = [case for case in chosen if case.extension == "tls"]
            results += [Result(c, c.expect, "skipped: the TLS peers need the `cryptography` "
                                            "package", True, True)
                        for c in no_tls if probes.for_case(c) is not None]
            chosen = [case for case in chosen if case.extension != "tls"]
        for name, setup in SETUPS.items():
            by_probe: dict[Path, list[Case]] = {}
            for case in chosen:
                probe = probes.for_case(case)
                if case.setup == name and probe is not None:
                    by_probe.setdefault(probe, []).append(case)
            for index, (probe, group) in enumerate(by_probe.items()):
                if setup.ipv6 and not has_ipv6:
                    results += [Result(c, c.expect, "skipped: no IPv6 on loopback", True, True)
                                for c in group]
                    continue
                workdir = Path(tmp) / str(index)
                workdir.mkdir(exist_ok=True)
                results += run_setup(setup, group, peers, probe, workdir, host_command)
    order = {case.id: index for index, case in enumerate(CASES)}
    return sorted(results, key=lambda result: order[result.case.id])


# -- reports ---------------------------------------------------------------------------

def table(results: Sequence[Result]) -> str:
    width = max(len(r.case.id) for r in results)
    lines = [f"{'case':{width}}  {'expected':28}  {'got':28}  result"]
    for r in results:
        verdict = "skip" if r.skipped else "pass" if r.passed else "FAIL"
        lines.append(f"{r.case.id:{width}}  {r.expected[:28]:28}  {r.got[:28]:28}  {verdict}")
    passed = sum(r.passed and not r.skipped for r in results)
    failed = sum(not r.passed for r in results)
    skipped = sum(r.skipped for r in results)
    lines.append(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    return "\n".join(lines)


def to_json(results: Sequence[Result], backend: str) -> dict[str, Any]:
    return {
        "backend": backend,
        "passed": sum(r.passed and not r.skipped for r in results),
        "failed": sum(not r.passed for r in results),
        "skipped": sum(r.skipped for r in results),
        "cases": [{"case": r.case.id, "interface": r.case.id.split(".")[0],
                   "setup": r.case.setup, "doc": r.case.doc, "expected": r.expected,
                   "got": r.got, "result": "skip" if r.skipped else
                   "pass" if r.passed else "fail"} for r in results],
    }


def to_junit(results: Sequence[Result], backend: str) -> str:
    failures = sum(not r.passed for r in results)
    skipped = sum(r.skipped for r in results)
    out = [f'<testsuite name={quoteattr("capsock-conformance-" + backend)} '
           f'tests="{len(results)}" failures="{failures}" skipped="{skipped}">']
    for r in results:
        name = quoteattr(r.case.id)
        classname = quoteattr(r.case.id.split(".")[0])
        if r.skipped:
            out.append(f"  <testcase name={name} classname={classname}><skipped/></testcase>")
        elif r.passed:
            out.append(f"  <testcase name={name} classname={classname}/>")
        else:
            message = quoteattr(f"expected {r.expected}, got {r.got}")
            out.append(f"  <testcase name={name} classname={classname}>"
                       f"<failure message={message}>{escape(r.case.doc)}</failure></testcase>")
    out.append("</testsuite>")
    return "\n".join(out) + "\n"
