"""What a build bundles: the script's import graph, found before componentize-py runs.

componentize-py keeps only what is *imported* while it snapshots the app
(the folders given with ``-p`` are mounted at build time and gone at run
time), so a module imported lazily (bottle imports ``wsgiref`` inside
``run()``) or one componentize-py never sees (a package in the venv that
runs ``capsock build``) is missing at run time. `find_bundle` walks the
script's imports with `ast`, everywhere (inside functions, ``if`` and
``try`` too), and follows them through the script's own modules and the
third-party packages they reach, so the wrapper can import every one of
them at build time (`Bundle.preload`). A module is looked up where the
guest's CPython would find it, in this order:

1. the standard library (the guest's own copy; not staged, only preloaded);
2. the script's folder;
3. each ``--path DIR``, in order;
4. the environment that runs the build (its ``sys.path``), unless
   ``use_environment`` is off.

Packages are staged by `stage` into a folder of their own (never the
user's folder: componentize-py writes ``__pycache__`` into what it
mounts), so the build's content hash covers exactly what is bundled. A
package with a C extension cannot run in a guest and is refused by name
(`BuildError`), unless only conditional imports reach it (uvicorn's
``import uvloop`` inside ``try``: listed in the note). An import found
nowhere is *unconditional* when it sits at a module's top level outside
any ``if``/``try``/``def`` (the module cannot import without it: a
warning, an error with ``--strict``) and
*conditional* otherwise (bottle's ``import gevent`` in one server adapter:
listed in one note).

A third-party *package* (a folder, from ``--path``, ``--requirements`` or
the environment) is preloaded whole: every submodule, not only those
reached by an ``import`` statement, because packages also import by
string (uvicorn picks its loop and protocol with
``importlib.import_module("uvicorn.loops.asyncio")``), which no walk of
the source can see. Those modules, like any module reached only by a
conditional import, have all their imports counted as conditional. ``tests``/``test``
subpackages and ``__main__`` modules are left out.

`Bundle.soft` are the modules preloaded only because of a conditional
import or the whole-package walk: one of them failing to import in the
guest at build time is listed in one note (uvicorn's ``httptools_impl``
needs a C extension the program never selects); any other failure is a
warning of its own.
"""

from __future__ import annotations

import ast
import shutil
import sys
import sysconfig
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .tools import BuildError

__all__ = ["Bundle", "find_bundle", "stage", "PROVIDED"]

#: Top-level modules every build provides itself: capsock's guest library,
#: componentize-py's generated bindings and runtime helpers.
PROVIDED = frozenset({"capsock_guest", "wit_world", "componentize_py_runtime",
                      "componentize_py_types", "componentize_py_async_support",
                      "poll_loop", "__future__"})
#: Native-code file suffixes: a package holding one cannot run in a guest.
NATIVE_SUFFIXES = (".so", ".pyd", ".dylib")
_SKIP_DIRS = {"__pycache__"}
#: Parts of a package never preloaded by the whole-package walk.
_WHOLE_SKIP = {"tests", "test", "__main__", "__pycache__"}


@dataclass
class Bundle:
    """The result of walking a script's imports (see the module docstring)."""

    #: Top-level name -> file or package folder, in the script's folder.
    local: dict[str, Path] = field(default_factory=dict)
    #: Top-level name -> file or package folder, from ``--path`` or the environment.
    packages: dict[str, Path] = field(default_factory=dict)
    #: Every module to import at build time, in a fixed order.
    preload: list[str] = field(default_factory=list)
    #: Unconditional imports found nowhere: module -> where (``file:line``).
    missing: dict[str, list[str]] = field(default_factory=dict)
    #: Conditional imports found nowhere: module -> where.
    optional: dict[str, list[str]] = field(default_factory=dict)
    #: Modules preloaded only by conditional imports or the whole-package walk.
    soft: set[str] = field(default_factory=set)


#: Statements whose body may not run when the module is imported.
_CONDITIONAL = (ast.If, ast.Try, ast.TryStar, ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda,
                ast.For, ast.AsyncFor, ast.While, ast.Match)


@dataclass(frozen=True)
class _Import:
    name: str
    line: int
    conditional: bool
    #: ``from a import b`` gives ``a`` plus ``a.b`` as a *maybe* module (b may be a name).
    maybe: bool = False


def _imports(tree: ast.Module, package: str) -> list[_Import]:
    """Every import in ``tree`` (a module of ``package``, '' at top level),
    relative ones made absolute, marked conditional unless at top level."""
    found: list[_Import] = []

    def visit(node: ast.AST, conditional: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend(_Import(alias.name, child.lineno, conditional)
                             for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".") if package else []
                    keep = len(parts) - (child.level - 1)
                    if keep <= 0:
                        continue  # beyond the top: Python would fail too
                    base = ".".join(parts[:keep] + ([base] if base else []))
                if base:
                    found.append(_Import(base, child.lineno, conditional))
                found.extend(_Import(f"{base}.{alias.name}" if base else alias.name,
                                     child.lineno, conditional, maybe=True)
                             for alias in child.names if alias.name != "*")
            else:
                visit(child, conditional or isinstance(child, _CONDITIONAL))

    visit(tree, False)
    return found


def _stdlib_dirs() -> list[Path]:
    paths = sysconfig.get_paths()
    return [Path(paths["stdlib"]), Path(paths["platstdlib"])]


def _is_stdlib(name: str) -> bool:
    return name.split(".")[0] in sys.stdlib_module_names


def _stdlib_has(name: str) -> bool:
    """Whether dotted ``name`` is a stdlib module (not an attribute): looked
    up as files, never imported here (``import antigravity`` opens a browser)."""
    parts = name.split(".")
    if len(parts) == 1:
        return True
    for base in _stdlib_dirs():
        stem = base.joinpath(*parts)
        if stem.with_suffix(".py").is_file() or (stem / "__init__.py").is_file():
            return True
    return False


def _find_top(name: str, roots: list[Path]) -> Path | None:
    """``name``'s file or package folder in the first root that has it."""
    for root in roots:
        for candidate in (root / name, root / f"{name}.py"):
            if candidate.is_dir() and (candidate / "__init__.py").is_file():
                return candidate
            if candidate.is_file():
                return candidate
        natives = sorted(p for p in root.glob(f"{name}.*") if p.suffix in NATIVE_SUFFIXES)
        if natives:
            raise BuildError(f"cannot bundle {name!r}: it is a C extension ({natives[0]}); "
                             "a guest runs pure Python only")
        if (root / name).is_dir() and any((root / name).rglob("*.py")):
            return root / name  # a namespace package
    return None


def _module_file(top_path: Path, name: str) -> Path | None:
    """The source file of dotted ``name`` whose top-level module is ``top_path``."""
    parts = name.split(".")[1:]
    if top_path.is_file():
        return top_path if not parts else None
    stem = top_path.joinpath(*parts)
    if (stem / "__init__.py").is_file():
        return stem / "__init__.py"
    if stem.with_suffix(".py").is_file():
        return stem.with_suffix(".py")
    if stem.is_dir():
        return stem  # a namespace package: nothing to parse
    return None


def _refuse_native(name: str, path: Path) -> None:
    if path.is_dir():
        natives = sorted(p for p in path.rglob("*") if p.suffix in NATIVE_SUFFIXES)
        if natives:
            raise BuildError(f"cannot bundle {name!r}: it has a C extension "
                             f"({natives[0]}); a guest runs pure Python only")


def _at(where: str, imp: _Import) -> str:
    """Where an import was found: ``file:line``, or what asked for it
    (``--include``, a whole-package walk) when it has no line."""
    return f"{where}:{imp.line}" if imp.line else where


def find_bundle(script: Path, source: str, search: list[Path],
                use_environment: bool = True, include: Sequence[str] = ()) -> Bundle:
    """Walk ``script``'s imports (see the module docstring). ``script`` is
    resolved; ``search`` are the ``--path`` folders; ``include`` are modules
    to bundle as if the script imported them at its top (``--include``: a
    module only imported by name at run time, e.g. ``importlib.import_module``,
    or lazily by the standard library itself)."""
    folder = script.parent
    roots = [path.resolve() for path in search]
    if use_environment:
        stdlib = {str(path) for path in _stdlib_dirs()}
        roots += [Path(entry).resolve() for entry in sys.path
                  if entry and entry not in stdlib and Path(entry).is_dir()
                  and not entry.endswith(".zip")]
    bundle = Bundle()
    preload: dict[str, None] = {}
    tops: dict[str, Path | None] = {}
    queue: list[tuple[str, Path, str, str, bool]] = []  # (module, file, package, label, soft)
    seen: set[str] = set()

    def locate(top: str) -> Path | None:
        if top not in tops:
            local = _find_top(top, [folder])
            if local is not None and local != script:
                bundle.local[top] = local
                tops[top] = local
            else:
                found = _find_top(top, roots)
                if found is not None:
                    _refuse_native(top, found)
                    bundle.packages[top] = found
                tops[top] = found
        return tops[top]

    def reach(imp: _Import, where: str) -> None:
        top = imp.name.split(".")[0]
        if top in PROVIDED:
            return
        if imp.name in seen:
            if not imp.conditional:
                bundle.soft.discard(imp.name)
            return
        if _is_stdlib(top):
            if not imp.maybe or _stdlib_has(imp.name):
                seen.add(imp.name)
                preload[imp.name] = None
                if imp.conditional:
                    bundle.soft.add(imp.name)
            return
        try:
            path = locate(top)
        except BuildError:
            if not imp.conditional:
                raise
            # a C extension behind a conditional import (uvicorn's uvloop): a note
            tops[top] = None
            bundle.optional.setdefault(imp.name, []).append(f"{_at(where, imp)} (C extension)")
            return
        target = _module_file(path, imp.name) if path is not None else None
        if target is None:
            if imp.maybe:
                return  # `from a import b`: b is a name in a
            bucket = bundle.optional if imp.conditional else bundle.missing
            bucket.setdefault(imp.name, []).append(_at(where, imp))
            return
        seen.add(imp.name)
        preload[imp.name] = None
        if imp.conditional:
            bundle.soft.add(imp.name)
        if target.is_file():
            package = imp.name if target.name == "__init__.py" else imp.name.rpartition(".")[0]
            label = target.relative_to(path.parent).as_posix() if path is not None else imp.name
            queue.append((imp.name, target, package, label, imp.conditional))

    def drain() -> None:
        while queue:
            name, file, package, label, soft = queue.pop(0)
            try:
                tree = ast.parse(file.read_bytes(), str(file))
            except SyntaxError as error:
                if name in bundle.soft:
                    continue  # the guest reports it when the preload fails
                raise BuildError(f"{file}:{error.lineno}: {error.msg}") from None
            for imp in _imports(tree, package):
                if soft and not imp.conditional:  # a conditional module's imports are too
                    imp = _Import(imp.name, imp.line, True, imp.maybe)
                reach(imp, label)

    for imp in _imports(ast.parse(source, script.name), ""):
        reach(imp, script.name)
    for name in include:
        if not all(part.isidentifier() for part in name.split(".")):
            raise BuildError(f"--include {name!r}: not a module name (e.g. heapq, email.mime.text)")
        reach(_Import(name, 0, False), "--include")
    drain()
    walked: set[str] = set()
    while set(bundle.packages) - walked:  # packages reached by the walk reach more
        for top, path in sorted(bundle.packages.items()):
            if top in walked:
                continue
            walked.add(top)
            for name in _submodules(top, path):
                reach(_Import(name, 0, True), f"{top} (whole package)")
        drain()
    bundle.preload = list(preload)
    return bundle


def _submodules(top: str, path: Path) -> list[str]:
    """Every module of package ``path`` (named ``top``), sorted; none for a
    single-file module. Skips `_WHOLE_SKIP` parts and non-identifier names."""
    if path.is_file():
        return []
    names = []
    for file in sorted(path.rglob("*.py")):
        parts = list(file.relative_to(path).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if any(part in _WHOLE_SKIP or not part.isidentifier() for part in parts):
            continue
        names.append(".".join([top, *parts]))
    return names


def _copy_tree(source: Path, target: Path) -> None:
    if source.is_file():
        shutil.copyfile(source, target)
        return
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if any(part in _SKIP_DIRS for part in rel.parts) or path.suffix == ".pyc":
            continue
        if path.is_dir():
            (target / rel).mkdir(parents=True, exist_ok=True)
        elif path.is_file():
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target / rel)


def stage(bundle: Bundle, script: Path, plain: bool, target: Path) -> tuple[Path, Path]:
    """Copy the script's modules into ``target/app`` and the packages into
    ``target/site`` (contents only, no timestamps: the hash and the build
    see bytes). A module app is copied too; a plain script is embedded in
    its wrapper. Returns both folders."""
    app, site = target / "app", target / "site"
    app.mkdir(parents=True)
    site.mkdir()
    if not plain:
        shutil.copyfile(script, app / script.name)
    for _name, path in sorted(bundle.local.items()):
        _copy_tree(path, app / path.name)
    for _name, path in sorted(bundle.packages.items()):
        _copy_tree(path, site / path.name)
    return app, site
