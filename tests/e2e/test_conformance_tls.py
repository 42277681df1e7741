"""The `tls` extension's conformance cases pass on both backends, through
the same kit (`capsock conformance`) and the same TLS code path in the host
(`backends.tls` over whichever backend socket), with a PKI the kit makes
per run. Only the two probes are built here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from capsock.conformance import CASES

from ..conftest import BUILD, ROOT, capsock_command, capsock_env

PROBES = ("conformance", "conformance-fast-io")


@pytest.fixture(scope="module")
def probes() -> list[str]:
    done = subprocess.run([sys.executable, str(ROOT / "guest" / "build.py"), *PROBES],
                          cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env=capsock_env())
    if done.returncode != 0:
        pytest.fail(f"guest build failed:\n{done.stdout}\n{done.stderr}")
    return ["--component", str(BUILD / "conformance.wasm"),
            "--fast-io-component", str(BUILD / "conformance-fast-io.wasm")]


@pytest.mark.parametrize("backend", ["os", "memory"])
def test_tls_cases_pass(probes: list[str], backend: str, tmp_path: Path) -> None:
    report = tmp_path / "tls.json"
    done = subprocess.run(capsock_command("conformance", "--backend", backend, *probes,
                                          "-k", "tls.", "--json", str(report)),
                          capture_output=True, text=True, env=capsock_env(), timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
    data = json.loads(report.read_text())
    expected = [case.id for case in CASES if case.id.startswith("tls.")]
    assert [case["case"] for case in data["cases"]] == expected
    assert len(expected) >= 20
    assert data["failed"] == 0 and data["skipped"] == 0
