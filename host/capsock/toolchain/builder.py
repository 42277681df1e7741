"""Build Python guests into capsock components, with a cache of built guests.

Used by ``capsock build APP.py -o APP.wasm`` (`build_script`) and by the
repository's ``guest/build.py`` (`componentize`, `input_hash`). Built
components are cached under ``<cache>/builds/<hash>.wasm`` by the SHA-256
of every input (`input_hash`): the tool versions, this toolchain's code,
the WIT, the guest library and the app's own files. Which sources
(`sources.find_sources`), which tools (`tools.find_tools`), which world
(`wasi_wit`) and how a plain script is wrapped (`scripts`) live beside this
module.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from .scripts import WRAPPER_MODULE, is_script, script_imports, wrapper_source
from .sources import HERE, Sources, find_sources
from .tools import BuildError, Tools, find_tools, run
from .wasi_wit import APP_WORLD, Progress, ensure_app_wit, world_args

__all__ = ["iter_files", "input_hash", "componentize", "build_script"]

SKIP_PARTS = {"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}


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
    """SHA-256 over the tool versions, the toolchain's code, the guest library, the
    WIT, every file under each ``(label, path)`` of ``inputs`` and ``extra``."""
    h = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        h.update(label.encode() + b"\0" + len(data).to_bytes(8, "little") + data)

    add("tools", tools.versions.encode())
    for path in sorted(HERE.glob("*.py")):
        add(f"toolchain/{path.name}", path.read_bytes())
    for group, base in (*inputs, ("lib", sources.library)):
        for path in iter_files(base):
            rel = path.relative_to(base).as_posix() if base.is_dir() else path.name
            add(f"{group}/{rel}", path.read_bytes())
    for path in sorted(sources.wit.glob("*.wit")):
        add(f"wit/{path.name}", path.read_bytes())
    for label, data in extra:
        add(label, data)
    return h.hexdigest()


# ---------------------------------------------------------------- build


def componentize(module: str, paths: list[Path], output: Path, sources: Sources,
                 wit_dir: Path, tools: Tools, world: str = APP_WORLD) -> None:
    """componentize-py ``module`` (found on ``paths``) into ``output``, atomically,
    for ``world`` (`APP_WORLD`, or `CORE_APP_WORLD` for the core alone)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        cmd = [tools.componentize_py, "-q", *world_args(sources, wit_dir, world),
               "componentize", module]
        for path in paths:
            cmd += ["-p", str(path)]
        run([*cmd, "-o", str(tmp)])
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
                 progress: Progress = lambda _: None, force: bool = False,
                 world: str = APP_WORLD) -> bool:
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
                        [("script", source.encode()), ("name", script.name.encode()),
                         ("world", world.encode())])
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
            componentize(module, paths, cached, sources, wit_dir, tools, world)
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
