"""Build Python guests into capsock components with componentize-py.

Used by ``capsock build APP.py -o APP.wasm`` and by ``guest/build.py`` (the
repository's apps). A guest is a component of the world::

    package capsock:app;
    world app {
        include capsock:net/imports-fast-io@0.2.0;
        export wasi:cli/run@<wasi version>;
    }

(the core plus the `fast-io` extension, which the guest library uses;
``app-core`` is the same with the core only, for guests that must run on
any host of the core, such as the conformance kit's core probe).

componentize-py ships no WASI WIT, so the WASI packages are derived once
per tool version from a bootstrap component whose world needs none
(`ensure_app_wit`), and kept out of git.

An app is either a *module* that exports ``Run`` itself (``Run =
capsock_guest.run_main(main)``) or a *plain script* written for ``python
APP.py``: no top-level ``Run``. A script is wrapped (`wrapper_source`): the
wrapper first makes ``import socket`` / ``import selectors`` resolve to
capsock's BSD layer (``capsock_guest.use_bsd``), imports every module the
script imports (found with `ast`, since componentize-py bundles only what
is imported while it loads the app), compiles the script, and runs it at
*run* time as ``__main__``.

The sources come from the capsock source tree (``wit/`` and
``guest/capsock_guest/``) found next to this package — a checkout or a
``pip install -e .`` — or at ``$CAPSOCK_ROOT``.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BuildError", "Sources", "Tools", "find_sources", "find_tools", "ensure_app_wit",
    "is_script", "script_imports", "wrapper_source", "componentize", "build_script",
]

NET_WORLD = "capsock:net/imports-fast-io@0.2.0"
CORE_NET_WORLD = "capsock:net/imports@0.2.0"
APP_WORLD = "capsock:app/app"
CORE_APP_WORLD = "capsock:app/app-core"
NET_PACKAGE = re.compile(r"^package\s+capsock:net@", re.M)
CLI_PACKAGE = re.compile(r"^package\s+wasi:cli@([0-9A-Za-z.+-]+);", re.M)
SKIP_PARTS = {"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
#: The module name of a script's generated wrapper (unlikely to clash with
#: a module the script imports from its own folder).
WRAPPER_MODULE = "capsock_script_main"

Progress = Callable[[str], None]


class BuildError(Exception):
    """A build failed; the message says which step and shows its output."""


# ---------------------------------------------------------------- sources


@dataclass(frozen=True)
class Sources:
    """Where capsock's WIT and the guest library live."""

    root: Path

    @property
    def wit(self) -> Path:
        return self.root / "wit"

    @property
    def guest(self) -> Path:
        """The folder holding the ``capsock_guest`` package (a ``-p`` path)."""
        return self.root / "guest"

    @property
    def library(self) -> Path:
        return self.guest / "capsock_guest"


def find_sources() -> Sources:
    """``$CAPSOCK_ROOT``, else the source tree this package sits in."""
    candidates = []
    if os.environ.get("CAPSOCK_ROOT"):
        candidates.append(Path(os.environ["CAPSOCK_ROOT"]))
    candidates.append(Path(__file__).resolve().parents[2])
    for root in candidates:
        sources = Sources(root)
        if sources.wit.is_dir() and (sources.library / "__init__.py").is_file():
            return sources
    raise BuildError("capsock's sources (wit/ and guest/capsock_guest/) not found next to "
                     f"{Path(__file__).parent}; install capsock from a checkout "
                     "(pip install -e .) or set CAPSOCK_ROOT to one")


# ---------------------------------------------------------------- tools


@dataclass(frozen=True)
class Tools:
    componentize_py: str
    wasm_tools: str
    versions: str


def find_tool(name: str) -> str:
    """``name`` next to the running interpreter (a venv), else on PATH."""
    here = Path(sys.executable).parent
    found = shutil.which(name, path=str(here)) or shutil.which(name)
    if not found:
        raise BuildError(f"{name} not found next to {sys.executable} or on PATH "
                         "(pip install 'capsock[build]')")
    return found


def run(cmd: list[str], cwd: Path | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    if proc.returncode != 0:
        raise BuildError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout}")
    return proc.stdout


def find_tools() -> Tools:
    cpy = find_tool("componentize-py")
    wasm_tools = find_tool("wasm-tools")
    versions = run([cpy, "--version"]).strip() + "\n" + run([wasm_tools, "--version"]).strip()
    return Tools(cpy, wasm_tools, versions)


# ---------------------------------------------------------------- hashing


def iter_files(base: Path) -> list[Path]:
    if base.is_file():
        return [base]
    out = []
    for path in sorted(base.rglob("*")):
        rel = path.relative_to(base)
        if any(part in SKIP_PARTS for part in rel.parts) or path.suffix == ".pyc":
            continue
        if path.is_file():
            out.append(path)
    return out


def input_hash(sources: Sources, tools: Tools, inputs: Iterable[tuple[str, Path]],
               extra: Iterable[tuple[str, bytes]] = ()) -> str:
    """SHA-256 over the tool versions, this module, the guest library, the
    WIT, every file under each ``(label, path)`` of ``inputs`` and ``extra``."""
    h = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        h.update(label.encode() + b"\0" + len(data).to_bytes(8, "little") + data)

    add("tools", tools.versions.encode())
    add("builder.py", Path(__file__).read_bytes())
    for group, base in (*inputs, ("lib", sources.library)):
        for path in iter_files(base):
            rel = path.relative_to(base).as_posix() if base.is_dir() else path.name
            add(f"{group}/{rel}", path.read_bytes())
    for path in sorted(sources.wit.glob("*.wit")):
        add(f"wit/{path.name}", path.read_bytes())
    for label, data in extra:
        add(label, data)
    return h.hexdigest()


# ---------------------------------------------------------------- WIT

BOOT_WIT = f"""package capsock:boot;

world boot {{
    include {NET_WORLD};
    export hello: func() -> string;
}}
"""

BOOT_APP = """import wit_world


class WitWorld(wit_world.WitWorld):
    def hello(self) -> str:
        return "hello"
"""

APP_WIT = """// Generated by capsock's builder; do not edit, not in git.
package capsock:app;

/// A capsock guest run as a command (`wasmtime run` convention).
world app {{
    include {net};
    export wasi:cli/run@{wasi};
}}

/// The same on the portable core only (no extension).
world app-core {{
    include {core};
    export wasi:cli/run@{wasi};
}}
"""

RUN_INTERFACE = """
/// Added by capsock's builder: the command entry point (wasi:cli/run).
interface run {
  /// Run the program.
  run: func() -> result;
}
"""


def ensure_app_wit(target: Path, sources: Sources, tools: Tools,
                   progress: Progress = lambda _: None) -> Path:
    """Derive the WASI WIT into ``target`` (``app.wit`` + ``deps/``) unless
    it is there for these tool versions. Safe against concurrent builders:
    staged in a temporary folder and renamed into place."""
    stamp = target / "VERSION"
    key = tools.versions + "\n" + APP_WIT + NET_WORLD + CORE_NET_WORLD + "\n"
    if stamp.is_file() and stamp.read_text() == key:
        return target
    progress("deriving the WASI WIT from a bootstrap component (once per tool version) ...")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="wit-boot-", dir=target.parent) as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "world").mkdir()
        (tmp / "world" / "boot.wit").write_text(BOOT_WIT)
        (tmp / "py").mkdir()
        (tmp / "py" / "bootapp.py").write_text(BOOT_APP)
        boot = tmp / "boot.wasm"
        run([tools.componentize_py, "-q", "-d", str(sources.wit), "-d", str(tmp / "world"),
             "-w", "capsock:boot/boot", "componentize", "bootapp",
             "-p", str(tmp / "py"), "-o", str(boot)])
        extracted = tmp / "extracted"
        run([tools.wasm_tools, "component", "wit", str(boot), "--out-dir", str(extracted)])
        staged = tmp / "wit-wasi"
        (staged / "deps").mkdir(parents=True)
        wasi_version = None
        for dep in sorted((extracted / "deps").glob("*.wit")):
            text = dep.read_text()
            if NET_PACKAGE.search(text):
                continue  # capsock's own package comes from wit/
            m = CLI_PACKAGE.search(text)
            if m:
                wasi_version = m.group(1)
                if not re.search(r"^interface\s+run\s*\{", text, re.M):
                    text = text.rstrip("\n") + "\n" + RUN_INTERFACE
            (staged / "deps" / dep.name).write_text(text)
        if wasi_version is None:
            raise BuildError("bootstrap component imports no wasi:cli package")
        (staged / "app.wit").write_text(APP_WIT.format(net=NET_WORLD, core=CORE_NET_WORLD,
                                                   wasi=wasi_version))
        (staged / "VERSION").write_text(key)
        if target.exists():
            target.rename(tmp / "old")
        try:
            staged.rename(target)
        except OSError:
            if not (stamp.is_file() and stamp.read_text() == key):
                raise
    progress(f"WASI WIT: wasi:cli@{wasi_version} -> {target}")
    return target


def world_args(sources: Sources, wit_dir: Path, world: str = APP_WORLD) -> list[str]:
    return ["-d", str(sources.wit), "-d", str(wit_dir), "-w", world]


# ---------------------------------------------------------------- scripts


def is_script(source: str, filename: str = "app.py") -> bool:
    """True when ``source`` binds no top-level ``Run`` (a plain script)."""
    tree = ast.parse(source, filename)
    for node in tree.body:
        targets: list[ast.expr] = []
        if isinstance(node, ast.ClassDef | ast.FunctionDef) and node.name == "Run":
            return False
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        elif isinstance(node, ast.ImportFrom | ast.Import):
            if any((alias.asname or alias.name) == "Run" for alias in node.names):
                return False
        if any(isinstance(t, ast.Name) and t.id == "Run" for t in targets):
            return False
    return True


def script_imports(source: str, filename: str = "app.py") -> list[str]:
    """Every absolute module the script may import, anywhere in it (inside
    functions and ``try`` blocks too): ``import a.b`` gives ``a.b``;
    ``from a import b`` gives ``a`` and ``a.b`` (``b`` may be a submodule)."""
    names: dict[str, None] = {}
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names[alias.name] = None
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names[node.module] = None
            for alias in node.names:
                if alias.name != "*":
                    names[f"{node.module}.{alias.name}"] = None
    return list(names)


#: Modules the standard library imports lazily on common paths (so a
#: script that never names them still needs them bundled): codecs used by
#: str.encode / http.client, email's header machinery used by http.server.
ALWAYS_PRELOAD = [
    "encodings.idna", "encodings.ascii", "encodings.latin_1", "encodings.utf_8",
    "email.parser", "email.message", "email.utils", "email.feedparser",
]


def wrapper_source(source: str, filename: str) -> str:
    """The generated module that runs ``source`` as a ``wasi:cli/run`` command."""
    imports = script_imports(source, filename)
    return (
        f'"""Generated by capsock build from {filename}: runs it as __main__ at run time."""\n'
        "import capsock_guest.use_bsd  # noqa: F401  first: socket/selectors are capsock's\n"
        "from capsock_guest._script import preload, script_command\n\n"
        "# Imported now so that componentize-py bundles them (it keeps only what\n"
        "# is imported while it loads this module).\n"
        f"PRELOAD_FAILED = preload({ALWAYS_PRELOAD + imports!r})\n"
        f"Run = script_command({source!r}, {filename!r})\n"
    )


# ---------------------------------------------------------------- build


def componentize(module: str, paths: list[Path], output: Path, sources: Sources,
                 wit_dir: Path, tools: Tools, world: str = APP_WORLD) -> None:
    """componentize-py ``module`` (found on ``paths``) into ``output``, atomically,
    for ``world`` (`APP_WORLD` or `CORE_APP_WORLD`)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        cmd = [tools.componentize_py, "-q", *world_args(sources, wit_dir, world),
               "componentize", module]
        for path in paths:
            cmd += ["-p", str(path)]
        run([*cmd, "-o", str(tmp)], cwd=sources.root)
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)


def _local_modules(script: Path, imports: list[str]) -> list[tuple[str, Path]]:
    """The script's own-folder modules it imports (they go into the hash)."""
    found = []
    for name in {n.split(".")[0] for n in imports}:
        for candidate in (script.parent / f"{name}.py", script.parent / name):
            if candidate.exists() and candidate != script:
                found.append((f"local/{name}", candidate))
    return sorted(found)


def build_script(script: Path, output: Path, cache_dir: Path,
                 progress: Progress = lambda _: None, force: bool = False) -> bool:
    """Build ``script`` (a plain script or an app module with ``Run``) into
    ``output``. Built components are cached in ``cache_dir/builds`` by the
    hash of every input; returns False when the cache answered."""
    sources = find_sources()
    try:
        source = script.read_text()
    except OSError as error:
        raise BuildError(f"cannot read {script}: {error.strerror or error}") from None
    try:
        plain = is_script(source, script.name)
    except SyntaxError as error:
        raise BuildError(f"{script}:{error.lineno}: {error.msg}") from None
    tools = find_tools()
    imports = script_imports(source, script.name)
    digest = input_hash(sources, tools, _local_modules(script, imports),
                        [("script", source.encode()), ("name", script.name.encode())])
    cached = cache_dir / "builds" / f"{digest}.wasm"
    if cached.is_file() and not force:
        progress(f"up to date (cache {digest[:12]})")
        _copy(cached, output)
        return False
    wit_dir = ensure_app_wit(cache_dir / "wit-wasi", sources, tools, progress)
    progress(("plain script" if plain else "module exporting Run")
             + (f"; bundling its imports: {', '.join(imports)}" if imports else ""))
    with tempfile.TemporaryDirectory(prefix="capsock-build-") as tmp_name:
        wrapper_dir = Path(tmp_name)
        if plain:
            (wrapper_dir / f"{WRAPPER_MODULE}.py").write_text(
                wrapper_source(source, script.name))
            module, paths = WRAPPER_MODULE, [wrapper_dir, script.parent, sources.guest]
        else:
            module, paths = script.stem, [script.parent, sources.guest]
        started = time.monotonic()
        progress("componentize-py: loading the app and snapshotting it (~20 s) ...")
        with _Ticker(progress, started):
            componentize(module, paths, cached, sources, wit_dir, tools)
    size = cached.stat().st_size / 1e6
    progress(f"built {size:.1f} MB in {time.monotonic() - started:.1f}s")
    _copy(cached, output)
    return True


def _copy(cached: Path, output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    shutil.copyfile(cached, tmp)
    os.replace(tmp, output)


class _Ticker:
    """Reports elapsed time every 5 s while a long step runs."""

    def __init__(self, progress: Progress, started: float) -> None:
        self.progress = progress
        self.started = started
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._tick, daemon=True)

    def _tick(self) -> None:
        while not self.stop.wait(5.0):
            self.progress(f"  ... {time.monotonic() - self.started:.0f}s")

    def __enter__(self) -> _Ticker:
        self.thread.start()
        return self

    def __exit__(self, *args: object) -> None:
        self.stop.set()
        self.thread.join()
