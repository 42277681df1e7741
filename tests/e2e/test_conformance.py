"""The conformance suite passes on both backends (core and fast-io), it can
fail, and it runs the core alone against a host of the core."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from capsock.backends.errno_map import ERRNO_TO_CODE
from capsock.backends.os import OsBackend, OsStreamSocket
from capsock.conformance import CASES, OsPeers, Probes, run_all
from capsock.conformance.cases import Setup
from capsock.errors import ErrorCode, NetError
from capsock.runtime.host import Host

from ..conftest import capsock_command, capsock_env


def _probes(guests: dict[str, Path]) -> list[str]:
    return ["--component", str(guests["conformance"]),
            "--fast-io-component", str(guests["conformance-fast-io"])]


def test_os_backend_passes_every_case(guests: dict[str, Path], tmp_path: Path) -> None:
    report = tmp_path / "conformance.json"
    junit = tmp_path / "conformance.xml"
    done = subprocess.run(capsock_command("conformance", *_probes(guests),
                                          "--json", str(report), "--junit", str(junit)),
                          capture_output=True, text=True, env=capsock_env(), timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    data = json.loads(report.read_text())
    assert len(CASES) >= 100
    assert [case["case"] for case in data["cases"]] == [case.id for case in CASES]
    assert data["failed"] == 0
    assert all(case["result"] in ("pass", "skip") for case in data["cases"])
    assert junit.read_text().count("<testcase ") == len(CASES)
    assert f"{data['passed']} passed, 0 failed" in done.stdout


def test_memory_backend_passes_every_case(guests: dict[str, Path], tmp_path: Path) -> None:
    report = tmp_path / "memory.json"
    done = subprocess.run(capsock_command("conformance", "--backend", "memory", *_probes(guests),
                                          "--json", str(report)),
                          capture_output=True, text=True, env=capsock_env(), timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    data = json.loads(report.read_text())
    assert data["backend"] == "memory"
    assert data["failed"] == 0 and data["skipped"] == 0
    assert len(data["cases"]) == len(CASES)
    assert any(case["interface"] == "fast-io" for case in data["cases"])


class _RefusedBecomesReset(OsStreamSocket):
    """A deliberately wrong backend: a refused connection says reset."""

    def connect(self, address: Any) -> None:
        try:
            super().connect(address)
        except NetError as error:
            if error.code is ErrorCode.CONNECTION_REFUSED:
                raise NetError(ErrorCode.CONNECTION_RESET, "wrong on purpose") from None
            raise


class _BrokenBackend(OsBackend):
    def tcp_socket(self, ipv6: bool) -> OsStreamSocket:
        return _RefusedBecomesReset(super().tcp_socket(ipv6).raw)


class _BrokenPeers(OsPeers):
    def host_for(self, setup: Setup, flags: dict[str, list[str]]) -> Host:
        host = super().host_for(setup, flags)
        host.backend = _BrokenBackend()
        return host


def test_suite_reports_exactly_the_broken_cases(guests: dict[str, Path]) -> None:
    assert ERRNO_TO_CODE  # the real table is untouched; only the subclass lies
    probes = Probes(guests["conformance"], {"fast-io": guests["conformance-fast-io"]})
    results = run_all(probes, lambda stack, ipv6: _BrokenPeers(stack, ipv6))
    failed = {result.case.id for result in results if not result.passed}
    assert failed == {"tcp.connect.refused", "tcp.connect.deny-leaves-others"}
    assert len(results) == len(CASES)


def test_case_table_is_consistent() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))
    assert {case.id.split(".")[0] for case in CASES} == {"socket", "tcp", "udp", "resolve",
                                                         "fast-io", "tls"}
    assert {case.extension for case in CASES} == {None, "fast-io", "tls"}


def test_core_cases_run_on_a_host_of_the_core_alone(guests: dict[str, Path]) -> None:
    """A host that implements only the core (another host, told through
    --host-command, that says no extension) runs the core probe, which
    imports no extension; the extension's cases are skipped, not run."""
    assert not any(name.startswith("capsock:net/fast-io")
                   for name in _imports(guests["conformance"]))
    assert any(name.startswith("capsock:net/fast-io@0.2.0")
               for name in _imports(guests["conformance-fast-io"]))
    other_host = " ".join(capsock_command("run")) + " {flags} {component} {args}"
    done = subprocess.run(capsock_command("conformance", *_probes(guests), "-k", "poll",
                                          "--host-command", other_host),
                          capture_output=True, text=True, env=capsock_env(), timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "socket.poll.three" in done.stdout and "fast-io" not in done.stdout
    done = subprocess.run(capsock_command("conformance", *_probes(guests), "-k", "splice.echo",
                                          "--host-command", other_host),
                          capture_output=True, text=True, env=capsock_env(), timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 passed, 0 failed, 1 skipped" in done.stdout
    done = subprocess.run(capsock_command("conformance", *_probes(guests), "-k", "splice.echo",
                                          "--host-command", other_host, "--extensions",
                                          "fast-io"),
                          capture_output=True, text=True, env=capsock_env(), timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "1 passed, 0 failed" in done.stdout


def _imports(component: Path) -> list[str]:
    from wasmtime import Engine

    from capsock.runtime.cache import load_component

    engine = Engine()
    return list(load_component(engine, component).type.imports(engine))


def test_another_host_is_checked_through_host_command(guests: dict[str, Path]) -> None:
    """The documented way to check another host, with capsock as that host."""
    other_host = " ".join(capsock_command("run")) + " {flags} {component} {args}"
    env = capsock_env()
    done = subprocess.run(capsock_command("conformance", *_probes(guests),
                                          "-k", "tcp.connect", "--host-command", other_host),
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 failed" in done.stdout
