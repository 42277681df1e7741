"""The wasi:sockets conformance section: every case passes on capsock's own
WASI host on both backends (the same probe .wasm the wasmtime CLI and jco
run in bench/wasi_conformance.py), and the harness reports what it gets."""

from __future__ import annotations

import ast
import json
import shlex
import subprocess
from pathlib import Path

import pytest

from capsock.conformance.wasi.build import PROBE_DIR, build_probe
from capsock.conformance.wasi.cases import CAPABILITIES, WASI_CASES, WASI_SETUPS
from capsock.runtime.cache import default_cache_dir

from ..conftest import capsock_command, capsock_env


@pytest.fixture(scope="session")
def wasi_probe() -> Path:
    """The probe, built by componentize-py against the derived WASI WIT
    (cached by content in the shared build cache)."""
    return build_probe(default_cache_dir())


def _run(probe: Path, tmp_path: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str],
                                                            list[dict[str, str]]]:
    report = tmp_path / "wasi.json"
    done = subprocess.run(capsock_command("conformance", "--wasi-sockets", "--component",
                                          str(probe), "--json", str(report), *extra),
                          capture_output=True, text=True, env=capsock_env(), timeout=900)
    data = json.loads(report.read_text()) if report.exists() else {}
    return done, next(iter(data.values()), [])


@pytest.mark.parametrize("backend", ["os", "memory"])
def test_capsock_passes_every_wasi_case(wasi_probe: Path, tmp_path: Path, backend: str) -> None:
    done, cases = _run(wasi_probe, tmp_path, "--backend", backend)
    failed = [f"{c['case']}: expected {c['expected']}, got {c['got']}" for c in cases
              if c["result"] == "fail"]
    assert done.returncode == 0 and not failed, "\n".join(failed) + done.stderr[-2000:]
    assert [c["case"] for c in cases] == [c.id for c in WASI_CASES]
    assert all(c["result"] in ("pass", "skip") for c in cases)
    # skipped only for want of IPv6 on loopback
    assert all(WASI_SETUPS[c["setup"]].ipv6 for c in cases if c["result"] == "skip")


def test_capsock_run_passes_every_wasi_case_as_a_host_command(wasi_probe: Path,
                                                              tmp_path: Path) -> None:
    """The same through the CLI contract: `capsock run FLAGS probe.wasm PLAN`
    picks the WASI host by the component's imports."""
    command = " ".join(shlex.quote(word) for word in capsock_command("run"))
    done, cases = _run(wasi_probe, tmp_path, "--host-command",
                       f"{command} {{flags}} {{component}} {{args}}")
    failed = [f"{c['case']}: expected {c['expected']}, got {c['got']}" for c in cases
              if c["result"] == "fail"]
    assert done.returncode == 0 and not failed, "\n".join(failed) + done.stderr[-2000:]
    assert len(cases) == len(WASI_CASES)


def test_a_wrong_outcome_fails_and_a_crash_costs_one_case(wasi_probe: Path,
                                                          tmp_path: Path) -> None:
    """A "host" that answers one case wrongly and then dies: that case
    fails, the next is `crashed`, the rest are rerun (and crash in turn,
    one run each, so the loop ends)."""
    first = WASI_CASES[0].id
    host = tmp_path / "host.sh"
    host.write_text(f"echo {shlex.quote(json.dumps({'case': first, 'got': 'access-denied'}))}\n")
    done, cases = _run(wasi_probe, tmp_path, "-k", "network.instance-network",
                       "--host-command", f"sh {host} {{flags}} {{component}} {{args}}")
    assert done.returncode == 1
    by_id = {c["case"]: c for c in cases}
    assert by_id[first]["result"] == "fail" and by_id[first]["got"] == "access-denied"
    assert by_id["network.instance-network.none"]["got"] == "crashed"


def test_cases_name_real_probes_and_setups() -> None:
    """Every case's kind is a probe of the guest, every setup exists and
    states its grants in the words hosts understand; 60+ cases, denials
    among them."""
    tree = ast.parse((PROBE_DIR / "app.py").read_text())
    kinds = {node.name[2:].replace("_", "-") for node in tree.body
             if isinstance(node, ast.FunctionDef) and node.name.startswith("p_")}
    assert {c.kind for c in WASI_CASES} <= kinds
    assert {c.setup for c in WASI_CASES} <= set(WASI_SETUPS)
    for setup in WASI_SETUPS.values():
        assert set(setup.grants) <= set(CAPABILITIES)
        assert set(setup.grants.values()) <= {"all", "none", "some"}
    assert len(WASI_CASES) >= 60
    assert sum(c.expect == "access-denied" for c in WASI_CASES) >= 10


LIAR = """import json, socket, sys
for case_id, kind, args in json.loads(sys.argv[-1]):
    host, _, port = args[0].rpartition(":")
    socket.create_connection((host, int(port)), timeout=10).close()
    print(json.dumps({"case": case_id, "got": "access-denied"}), flush=True)
"""


def test_a_denial_that_reaches_its_target_fails(wasi_probe: Path, tmp_path: Path) -> None:
    """A "host" that says access-denied but connected anyway: the witness
    peer at the target saw it, so the case fails."""
    liar = tmp_path / "liar.py"
    liar.write_text(LIAR)
    done, cases = _run(wasi_probe, tmp_path, "-k", "tcp.connect.denied-port",
                       "--host-command", f"python3 {liar} {{flags}} {{component}} {{args}}")
    assert done.returncode == 1
    assert [c["got"] for c in cases] == ["access-denied, but the witness saw 1"]
