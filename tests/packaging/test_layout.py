"""Three products, three places: what keeps them apart (fast checks)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

from ..conftest import capsock_env

ROOT = Path(__file__).resolve().parents[2]


def test_the_runtime_never_imports_the_toolchain() -> None:
    """`capsock run` and the library work without the build extra: nothing
    on their import path reaches capsock.toolchain."""
    code = ("import sys, capsock, capsock.cli, capsock.runtime; "
            "capsock.cli.build_parser(['run', 'x.wasm']); "
            "print(sorted(m for m in sys.modules if m.startswith('capsock.toolchain')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env=capsock_env())
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_just_demo_builds_exactly_the_demos_guests() -> None:
    """The Quickstart's first command builds only what examples/demo.py runs."""
    spec = importlib.util.spec_from_file_location("demo", ROOT / "examples" / "demo.py")
    assert spec is not None and spec.loader is not None
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    recipe = re.search(r"^demo:\s*\(build((?:\s+\"[^\"]+\")*)\)", (ROOT / "Justfile").read_text(),
                       re.M)
    assert recipe is not None, "the Justfile's demo recipe depends on (build APP...)"
    assert tuple(re.findall(r"\"([^\"]+)\"", recipe.group(1))) == demo.GUESTS


def test_ci_runs_the_readme_test_command_verbatim_and_the_checks() -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Quickstart\s+```sh\n(.*?)```", readme, re.S)
    assert block is not None
    commands = block.group(1).strip().splitlines()
    assert len(commands) == 2 and commands[0].endswith("just demo")
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1] in ci
    assert ".venv/bin/just check" in ci
    check = re.search(r"^check:.*?\n((?:    .*\n)+)", (ROOT / "Justfile").read_text(), re.M)
    assert check is not None
    assert "mypy --strict host/capsock" in check.group(1)
    assert "mypy --strict guest/capsock_guest" in check.group(1)
    assert "ruff check" in check.group(1)
