"""Run the wasi:sockets cases against hosts, side by side.

A *host row* is anything that can run the probe component with a case
plan: capsock in this process on either backend (`CapsockRow`), or any
command line (`CommandRow`, e.g. the wasmtime CLI or node running a
jco-transpiled probe, see ``bench/wasi_conformance.py``). Each row says
which setups it can express (`WasiSetup.grants` against its switches);
the others are reported as "cannot express" rather than run under a
policy that is not the case's.

Peers are those of the capsock:net kit (`capsock.conformance.harness`:
echo, silent, closed port, UDP echo, DNS), plus a UDP *control* peer for
the receive-filter case (a datagram ``PORT`` sent to it makes it send
``stranger`` to ``127.0.0.1:PORT`` from a second port, then ``ack`` from
its own) and a *witness* (`Witness`), the target of denial cases: if
anything reaches it during a setup's run, its cases fail whatever the
guest was told.

A probe that traps ends its run; the harness marks the case that was
running ``crashed`` and reruns the rest of the plan (bounded: at most one
run per case).
"""

from __future__ import annotations

import json
import shlex
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ...errors import ErrorCode, NetError
from ..cases import Setup
from ..harness import MemoryPeers, OsPeers, Peers, fill, ipv6_available, matches, virtual_accepts
from .cases import WASI_CASES, WASI_SETUPS, WasiCase, WasiSetup

__all__ = ["CANNOT", "CapsockRow", "CommandRow", "HostRow", "Outcome", "capsock_flags", "grant",
           "run_rows", "side_by_side", "start_peers", "summary", "to_json"]

#: The outcome of a case a row cannot express.
CANNOT = "cannot express"
RUN_TIMEOUT = 600.0  # seconds for one run of the probe (a whole setup)


@dataclass(frozen=True)
class Outcome:
    case: WasiCase
    expected: str
    got: str

    @property
    def verdict(self) -> str:
        if self.got == CANNOT or self.got.startswith("skipped"):
            return "n/e" if self.got == CANNOT else "skip"
        return "pass" if matches(self.expected, self.got) else "fail"


class HostRow(Protocol):
    """One host of the table."""

    name: str

    def expresses(self, setup: WasiSetup) -> bool:
        """Whether this host's switches can state `setup`'s grants."""
        ...

    def run(self, setup: WasiSetup, flags: dict[str, list[str]], plan: str, component: Path,
            peers: Peers, report: Path) -> None:
        """Run `component` with `plan` (its one argument); its stdout to `report`."""
        ...


# -- peers ------------------------------------------------------------------------------------

def _control_os(stack: ExitStack) -> str:
    control = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for sock in (control, stranger):
        stack.callback(sock.close)
        sock.bind(("127.0.0.1", 0))
    control.settimeout(0.2)
    stop = threading.Event()
    stack.callback(stop.set)

    def loop() -> None:
        while not stop.is_set():
            try:
                data, peer = control.recvfrom(512)
                stranger.sendto(b"stranger", ("127.0.0.1", int(data)))
                control.sendto(b"ack", peer)
            except (OSError, ValueError):
                continue

    threading.Thread(target=loop, daemon=True).start()
    return f"127.0.0.1:{control.getsockname()[1]}"


def _control_memory(peers: MemoryPeers, stack: ExitStack) -> str:
    control = peers.network.udp_bind(("127.0.0.1", 7110), timeout=0.2)
    stranger = peers.network.udp_bind(("127.0.0.1", 7111), timeout=0.2)
    stack.callback(control.close)
    stack.callback(stranger.close)
    stop = threading.Event()
    stack.callback(stop.set)

    def loop() -> None:
        while not stop.is_set():
            try:
                data, peer = control.recvfrom()
                stranger.sendto(b"stranger", ("127.0.0.1", int(data)))
                control.sendto(b"ack", peer)
            except NetError as error:
                if error.code is not ErrorCode.TIMEOUT:
                    return
            except ValueError:
                continue

    threading.Thread(target=loop, daemon=True).start()
    return "127.0.0.1:7110"


class Witness:
    """A TCP listener and a UDP socket that count what reaches them: the
    target of denial cases (``{witness}``, ``{udp_witness}``), which must
    see nothing, since a denial makes no system call toward its target."""

    def __init__(self) -> None:
        self.hits = 0
        self.stop = threading.Event()

    def hit(self) -> None:
        self.hits += 1

    def start(self, loop: Callable[[], None]) -> None:
        threading.Thread(target=loop, daemon=True).start()


def _witness_os(witness: Witness, stack: ExitStack) -> dict[str, str]:
    tcp = socket.socket()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for sock in (tcp, udp):
        stack.callback(sock.close)
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.2)
    tcp.listen(16)
    stack.callback(witness.stop.set)

    def accept_loop() -> None:
        while not witness.stop.is_set():
            try:
                conn, _ = tcp.accept()
            except OSError:
                continue
            witness.hit()
            conn.close()

    def receive_loop() -> None:
        while not witness.stop.is_set():
            try:
                udp.recvfrom(65536)
            except OSError:
                continue
            witness.hit()

    witness.start(accept_loop)
    witness.start(receive_loop)
    return {"witness": f"127.0.0.1:{tcp.getsockname()[1]}",
            "udp_witness": f"127.0.0.1:{udp.getsockname()[1]}"}


def _witness_memory(witness: Witness, peers: MemoryPeers, stack: ExitStack) -> dict[str, str]:
    listener = peers.network.listen(("127.0.0.1", 7112), timeout=0.2)
    udp = peers.network.udp_bind(("127.0.0.1", 7113), timeout=0.2)
    stack.callback(listener.close)
    stack.callback(udp.close)
    stack.callback(witness.stop.set)

    def accept_loop() -> None:
        for conn in virtual_accepts(listener, witness.stop):
            witness.hit()
            conn.close()

    def receive_loop() -> None:
        while not witness.stop.is_set():
            try:
                udp.recvfrom()
            except NetError as error:
                if error.code is ErrorCode.TIMEOUT:
                    continue
                return
            witness.hit()

    witness.start(accept_loop)
    witness.start(receive_loop)
    return {"witness": "127.0.0.1:7112", "udp_witness": "127.0.0.1:7113"}


def start_peers(backend: str, stack: ExitStack) -> tuple[Peers, dict[str, str], Witness]:
    """The kit's peers for `backend`, the control peer and the witness;
    their values."""
    has_ipv6 = ipv6_available()
    witness = Witness()
    if backend == "memory":
        memory = MemoryPeers(stack, has_ipv6)
        values = memory.values()
        values["control"] = _control_memory(memory, stack)
        values.update(_witness_memory(witness, memory, stack))
        return memory, values, witness
    os_peers = OsPeers(stack, has_ipv6)
    values = os_peers.values()
    values["control"] = _control_os(stack)
    values.update(_witness_os(witness, stack))
    return os_peers, values, witness


# -- rows -------------------------------------------------------------------------------------

def _kit_setup(setup: WasiSetup) -> Setup:
    """The capsock:net kit's setup for `setup`: its DNS peer always (so an
    unknown name is unknown there, not on the machine's resolver)."""
    return Setup(setup.name, setup.doc, setup.flags, dns=True, ipv6=setup.ipv6,
                 peer_address=setup.peer_address)


class CapsockRow:
    """capsock in this process, on the peers' backend (OS or memory)."""

    def __init__(self, backend: str) -> None:
        self.name = f"capsock ({backend})"
        self.backend = backend

    def expresses(self, setup: WasiSetup) -> bool:
        return True  # the rules are capsock's own

    def run(self, setup: WasiSetup, flags: dict[str, list[str]], plan: str, component: Path,
            peers: Peers, report: Path) -> None:
        peers.host_for(_kit_setup(setup), flags).run(component, [plan], stdout=report)


#: A row's switches for one setup (and its rules, placeholders filled, in
#: capsock's flag syntax): the words of its command, or None when they
#: cannot express it.
Switches = Callable[[WasiSetup, dict[str, list[str]]], list[str] | None]


class CommandRow:
    """Any host run as a command: ``template`` has ``{switches}``,
    ``{component}`` and ``{plan}`` (shell-quoted where they are put), and
    ``switches`` turns a setup's grants into that host's switches."""

    def __init__(self, name: str, template: str, switches: Switches,
                 env: Mapping[str, str] | None = None, takes_dns: bool = False) -> None:
        self.name = name
        self.template = template
        self.switches = switches
        self.env = dict(env) if env is not None else None
        #: the host takes capsock's ``--dns=ADDRESS`` (the harness's DNS peer)
        self.takes_dns = takes_dns

    def expresses(self, setup: WasiSetup) -> bool:
        return ((self.takes_dns or not setup.own_dns)
                and self.switches(setup, dict(setup.flags)) is not None)

    def run(self, setup: WasiSetup, flags: dict[str, list[str]], plan: str, component: Path,
            peers: Peers, report: Path) -> None:
        words = self.switches(setup, flags) or []
        if self.takes_dns and isinstance(peers, OsPeers):
            words.append(f"--dns={peers.dns.address}")
        command = self.template.format(switches=" ".join(shlex.quote(w) for w in words),
                                       component=shlex.quote(str(component)),
                                       plan=shlex.quote(plan))
        with report.open("w") as out:
            subprocess.run(command, shell=True, stdout=out, stderr=subprocess.DEVNULL,
                           stdin=subprocess.DEVNULL, timeout=RUN_TIMEOUT, check=False,
                           env=self.env)


def capsock_flags(setup: WasiSetup, flags: dict[str, list[str]]) -> list[str]:
    """The setup as `capsock run` flags: for a host that takes capsock's."""
    words = [f"--{name}={rule}" for name, rules in flags.items() for rule in rules]
    if setup.peer_address != "real":
        words.append(f"--peer-address={setup.peer_address}")
    return words


def grant(setup: WasiSetup, capability: str) -> str:
    """A setup's grant for a capability its cases do not use is "none"."""
    return setup.grants.get(capability, "none")


# -- running ----------------------------------------------------------------------------------

def _read(report: Path) -> dict[str, str]:
    outcomes: dict[str, str] = {}
    for line in report.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
            outcomes[str(record["case"])] = str(record["got"])
        except (ValueError, KeyError, TypeError):
            continue
    return outcomes


def run_setup(row: HostRow, setup: WasiSetup, cases: Sequence[WasiCase], peers: Peers,
              values: dict[str, str], component: Path, workdir: Path) -> list[Outcome]:
    """Run one setup's cases on one row; a crash costs one case, not the rest."""
    flags = {name: [fill(rule, values) for rule in rules] for name, rules in setup.flags.items()}
    got: dict[str, str] = {}
    pending = list(cases)
    for attempt in range(len(cases)):
        if not pending:
            break
        plan = json.dumps([[c.id, c.kind, fill(list(c.args), values)] for c in pending])
        report = workdir / f"{setup.name}-{attempt}.jsonl"
        try:
            row.run(setup, flags, plan, component, peers, report)
        except subprocess.TimeoutExpired:
            pass
        except Exception as error:  # noqa: BLE001 - the row failed: say so per case
            for c in pending:
                got[c.id] = f"host error: {type(error).__name__}: {error}"[:200]
            break
        outcomes = _read(report) if report.exists() else {}
        got.update({c.id: outcomes[c.id] for c in pending if c.id in outcomes})
        rest = [c for c in pending if c.id not in outcomes]
        if not rest:
            break
        got[rest[0].id] = "crashed"
        pending = rest[1:]
    return [Outcome(c, str(fill(c.expect, values)), got.get(c.id, "crashed")) for c in cases]


def run_rows(rows: Sequence[HostRow], backend: str, component: Path,
             select: Callable[[WasiCase], bool] = lambda case: True
             ) -> dict[str, list[Outcome]]:
    """Every selected case on every row (one set of peers on `backend`);
    per row, the outcomes in case order."""
    chosen = [c for c in WASI_CASES if select(c)]
    has_ipv6 = ipv6_available()
    table: dict[str, list[Outcome]] = {}
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        peers, values, witness = start_peers(backend, stack)
        for index, row in enumerate(rows):
            found: dict[str, Outcome] = {}
            for name, setup in WASI_SETUPS.items():
                group = [c for c in chosen if c.setup == name]
                if not group:
                    continue
                if setup.ipv6 and not has_ipv6:
                    found.update({c.id: Outcome(c, c.expect, "skipped: no IPv6 on loopback")
                                  for c in group})
                elif not row.expresses(setup):
                    found.update({c.id: Outcome(c, c.expect, CANNOT) for c in group})
                else:
                    workdir = Path(tmp) / str(index)
                    workdir.mkdir(exist_ok=True)
                    before = witness.hits
                    outcomes = run_setup(row, setup, group, peers, values, component, workdir)
                    time.sleep(WITNESS_GRACE)  # what was sent reaches the witness by then
                    reached = witness.hits - before
                    for outcome in outcomes:
                        if reached and _aims_at_witness(outcome.case):
                            outcome = Outcome(outcome.case, outcome.expected,
                                              f"{outcome.got}, but the witness saw {reached}")
                        found[outcome.case.id] = outcome
            table[row.name] = [found[c.id] for c in chosen]
    return table


WITNESS_GRACE = 0.3  # seconds; the witness threads poll every 0.2 s


def _aims_at_witness(case: WasiCase) -> bool:
    return any("witness}" in str(arg) for arg in case.args)


# -- reports ----------------------------------------------------------------------------------

def summary(outcomes: Sequence[Outcome]) -> str:
    counts = {verdict: sum(o.verdict == verdict for o in outcomes)
              for verdict in ("pass", "fail", "n/e", "skip")}
    return (f"{counts['pass']} pass, {counts['fail']} fail, {counts['n/e']} cannot express"
            + (f", {counts['skip']} skipped" if counts["skip"] else ""))


def side_by_side(table: Mapping[str, Sequence[Outcome]], markdown: bool = False,
                 details: bool = True) -> str:
    """Case x host: pass / fail (with what it got) / n/e (cannot express)."""
    names = list(table)
    cases = [o.case for o in next(iter(table.values()))] if table else []

    def cell(outcome: Outcome) -> str:
        verdict = outcome.verdict
        if verdict == "fail" and details:
            return f"FAIL {outcome.got[:40]}"
        return {"pass": "pass", "fail": "FAIL", "n/e": "n/e", "skip": "skip"}[verdict]

    rows = [[c.id, *[cell(table[name][i]) for name in names]] for i, c in enumerate(cases)]
    totals = ["total", *[summary(table[name]) for name in names]]
    header = ["case", *names]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += [f"| `{r[0]}` | " + " | ".join(r[1:]) + " |" for r in rows]
        lines.append("| " + " | ".join(totals) + " |")
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    out += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    out += [f"{name}: {summary(table[name])}" for name in names]
    return "\n".join(out)


def to_json(table: Mapping[str, Sequence[Outcome]]) -> dict[str, object]:
    return {name: [{"case": o.case.id, "setup": o.case.setup, "doc": o.case.doc,
                    "expected": o.expected, "got": o.got, "result": o.verdict}
                   for o in outcomes] for name, outcomes in table.items()}
