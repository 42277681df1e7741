"""wasmtime-py's private C API: one door, and it checks the version."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

from ..conftest import capsock_env

PACKAGE = Path(__file__).resolve().parents[2] / "host" / "capsock"
DOOR = PACKAGE / "binding" / "_wasmtime_capi.py"
#: wasmtime-py's private members capsock has used (error constructors and
#: pointer accessors); any `wasmtime._x` module is private too.
PRIVATE_MEMBERS = {"_from_ptr", "_consume", "_set_ptr", "_ffi", "_bindings"}


def _private_uses(path: Path) -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("wasmtime"):
            module = node.module or ""
            if any(part.startswith("_") for part in module.split(".")):
                found.append(f"{path.name}:{node.lineno} from {module}")
            found += [f"{path.name}:{node.lineno} from {module} import {alias.name}"
                      for alias in node.names if alias.name.startswith("_")]
        elif isinstance(node, ast.Import):
            found += [f"{path.name}:{node.lineno} import {alias.name}" for alias in node.names
                      if alias.name.startswith("wasmtime.")
                      and any(p.startswith("_") for p in alias.name.split("."))]
        elif isinstance(node, ast.Attribute) and node.attr in PRIVATE_MEMBERS:
            found.append(f"{path.name}:{node.lineno} .{node.attr}")
    return found


def test_only_the_door_names_wasmtimes_private_api() -> None:
    uses = {str(path.relative_to(PACKAGE)): _private_uses(path)
            for path in PACKAGE.rglob("*.py") if path != DOOR}
    assert {path: found for path, found in uses.items() if found} == {}
    assert _private_uses(DOOR), "the door itself reaches wasmtime._ffi (the check sees it)"


def test_the_runtime_reaches_the_binding_through_its_init() -> None:
    """capsock.runtime imports `capsock.binding`, never its private modules."""
    for path in (PACKAGE / "runtime").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and "binding." in node.module:
                raise AssertionError(f"{path.name}:{node.lineno} imports {node.module}")


def _import_capsock_with_wasmtime(version: str, site: Path) -> subprocess.CompletedProcess[str]:
    """Import capsock where the wasmtime-py found first says it is `version`:
    a folder holding the real package (a symlink) and a ``.dist-info`` of
    that version, as pip lays one out, first on the path."""
    import wasmtime
    (site / "wasmtime").symlink_to(Path(wasmtime.__file__).parent)
    info = site / f"wasmtime-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: wasmtime\nVersion: {version}\n")
    env = capsock_env()
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    code = "import capsock.runtime\nprint('imported')\n"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env=env)


def test_another_wasmtime_version_is_refused_at_import_with_the_fix(tmp_path: Path) -> None:
    done = _import_capsock_with_wasmtime("50.0.1", tmp_path)
    assert done.returncode != 0
    assert "ImportError" in done.stderr
    assert "needs wasmtime-py 49.0.0, found 50.0.1: pip install 'wasmtime==49.0.0'" \
        in done.stderr, done.stderr


def test_the_pinned_version_imports(tmp_path: Path) -> None:
    done = _import_capsock_with_wasmtime("49.0.0", tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "imported"


def test_the_version_is_read_where_pip_puts_it() -> None:
    """The fast read (the ``.dist-info`` folder's name) agrees with
    ``importlib.metadata`` for the installed wasmtime-py."""
    from importlib import metadata

    from capsock.binding._wasmtime_capi import _installed_version
    assert _installed_version() == metadata.version("wasmtime")
