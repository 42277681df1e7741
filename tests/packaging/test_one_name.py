"""Names and constants defined once across the host's layers."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "host" / "capsock"


def _module_level_names(kind: type[ast.AST]) -> dict[str, list[str]]:
    """name -> the modules defining it at module level (assignments or classes)."""
    found: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.parse(path.read_text(), str(path)).body:
            names: list[str] = []
            if kind is ast.Assign and isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = [t.id for t in targets if isinstance(t, ast.Name)]
            elif kind is ast.ClassDef and isinstance(node, ast.ClassDef):
                names = [node.name]
            for name in names:
                found.setdefault(name, []).append(str(path.relative_to(PACKAGE)))
    return found


def test_shared_constants_are_defined_once() -> None:
    defined = _module_level_names(ast.Assign)
    assert defined["IPAddress"] == ["policy/rules.py"]  # the policy is the floor
    assert defined["MAX_PORT"] == ["policy/rules.py"]
    assert defined["MAX_DATAGRAM"] == ["addresses.py"]
    assert "_MAX_PORT" not in defined


def test_one_class_per_socket_name_and_layer() -> None:
    """The core's TcpSocket/UdpSocket; the backends' Os*/Memory* sockets;
    the binding's *Resource: no two layers share a class name."""
    classes = _module_level_names(ast.ClassDef)
    assert classes["TcpSocket"] == ["core/tcp.py"]
    assert classes["UdpSocket"] == ["core/udp.py"]
    # the conformance kit is a product of its own (its `Case` is a table row)
    duplicated = {name: where for name, where in classes.items()
                  if len([w for w in where if not w.startswith("conformance/")]) > 1}
    assert duplicated == {}


def test_the_policy_imports_nothing_of_capsock_outside_itself() -> None:
    for path in (PACKAGE / "policy").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level > 1:
                raise AssertionError(f"{path.name}:{node.lineno} imports ..{node.module}")
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) \
                    else [node.module or ""]
                assert not any(n.startswith("capsock") for n in names), path


def test_the_readmes_layout_table_names_real_places() -> None:
    """README "How the host is built" tells a newcomer which folder to open
    for each kind of change: every place it names exists."""
    readme = (PACKAGE.parents[1] / "README.md").read_text()
    section = readme.split("## How the host is built\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "`" in line]
    places = [p for row in rows for p in re.findall(r"`([^`]+)`", row.rsplit("|", 2)[1])]
    assert len(rows) >= 6 and places
    for place in places:
        path = (PACKAGE.parent / place) if place.startswith("capsock/") \
            else PACKAGE.parents[1] / place if "/" in place else PACKAGE / place
        assert path.exists(), place
