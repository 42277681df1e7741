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
from collections.abc import Collection, Iterable
from pathlib import Path

from .bundle import Bundle, find_bundle, stage
from .requirements import install_requirements
from .scripts import (
    PRELOAD_REPORT,
    WRAPPER_MODULE,
    is_script,
    module_wrapper_source,
    wrapper_source,
)
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
    for ``world`` (`APP_WORLD`, or `CORE_APP_WORLD` for the core alone).

    Hermetic: componentize-py appends the site-packages of ``$VIRTUAL_ENV``
    (else of whatever ``python`` it finds) to ``paths``, which would let a
    build see packages that are neither staged nor hashed; pointing
    ``VIRTUAL_ENV`` at an empty folder turns that off."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with tempfile.TemporaryDirectory(prefix="capsock-novenv-") as empty:
            cmd = [tools.componentize_py, "-q", *world_args(sources, wit_dir, world),
                   "componentize", module]
            for path in paths:
                cmd += ["-p", str(path)]
            run([*cmd, "-o", str(tmp)], env={**os.environ, "VIRTUAL_ENV": empty})
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)


def _describe(bundle: Bundle, plain: bool) -> str:
    parts = ["plain script" if plain else "module exporting Run"]
    if bundle.local:
        parts.append(f"its modules: {', '.join(sorted(bundle.local))}")
    if bundle.packages:
        parts.append("packages: " + ", ".join(f"{name} ({path.parent})" for name, path
                                              in sorted(bundle.packages.items())))
    stdlib = sorted({name.split(".")[0] for name in bundle.preload
                     if name.split(".")[0] not in bundle.local
                     and name.split(".")[0] not in bundle.packages})
    if stdlib:
        parts.append(f"stdlib: {', '.join(stdlib)}")
    return "; ".join(parts)


def _report_missing(bundle: Bundle, warn: Progress, strict: bool) -> None:
    for name, where in sorted(bundle.missing.items()):
        warn(f"{'error' if strict else 'warning'}: cannot bundle {name!r} (imported at "
             f"{', '.join(where[:3])}): not in the stdlib, the script's folder, --path or "
             "this environment; add it with --path DIR or pip install it here")
    if bundle.optional:
        names = sorted(bundle.optional)
        warn(f"note: {len(names)} conditional import(s) not found, fine unless the program "
             f"takes that path (inside if/try/def): {', '.join(names)}")
    if strict and bundle.missing:
        raise BuildError(f"--strict: {len(bundle.missing)} import(s) cannot be bundled: "
                         f"{', '.join(sorted(bundle.missing))}")


def build_script(script: Path, output: Path, cache_dir: Path,
                 progress: Progress = lambda _: None, force: bool = False,
                 search: Iterable[Path] = (), use_environment: bool = True,
                 strict: bool = False, warn: Progress | None = None,
                 world: str = APP_WORLD, requirements: Iterable[Path] = (),
                 with_packages: Iterable[str] = (), include: Iterable[str] = ()) -> bool:
    """Build ``script`` (a plain script or an app module with ``Run``) into
    ``output``, with its folder's modules and the packages it imports (from
    ``search``, then the environment running this build: `bundle`). Built
    components are cached in ``cache_dir/builds`` by the hash of everything
    staged; returns False when the cache answered. ``warn`` (default:
    ``progress``) gets the imports that cannot be bundled and the preloads
    that failed in the guest. ``requirements`` (files) and ``with_packages``
    are pip-installed for the guest first (`requirements`) and searched
    before ``search``. ``include`` are modules bundled as if the script
    imported them (`find_bundle`)."""
    warn = warn or progress
    requirements, with_packages = list(requirements), list(with_packages)
    if requirements or with_packages:
        search = [install_requirements(requirements, with_packages, cache_dir, progress),
                  *search]
    script = script.resolve()  # `capsock build main.py` must bundle main.py's folder
    sources = find_sources()
    try:
        source = script.read_text()
    except OSError as error:
        raise BuildError(f"cannot read {script}: {error.strerror or error}") from None
    try:
        plain = is_script(source, script.name)
    except SyntaxError as error:
        raise BuildError(f"{script}:{error.lineno}: {error.msg}") from None
    bundle = find_bundle(script, source, list(search), use_environment, list(include))
    _report_missing(bundle, warn, strict)
    tools = find_tools()
    with tempfile.TemporaryDirectory(prefix="capsock-build-") as tmp_name:
        tmp = Path(tmp_name)
        app, site = stage(bundle, script, plain, tmp)
        wrapper_dir = tmp / "wrapper"
        wrapper_dir.mkdir()
        wrapper = (wrapper_source(source, script.name, bundle.preload) if plain
                   else module_wrapper_source(script.stem, bundle.preload))
        (wrapper_dir / f"{WRAPPER_MODULE}.py").write_text(wrapper)
        digest = input_hash(sources, tools, [("wrapper", wrapper_dir), ("app", app),
                                             ("site", site)], [("world", world.encode())])
        cached = cache_dir / "builds" / f"{digest}.wasm"
        failed_file = cached.with_suffix(".preload-failed")
        if cached.is_file() and not force:
            progress(f"up to date (cache {digest[:12]})")
            _report_failed(failed_file, warn, bundle.soft)
            _copy(cached, output)
            return False
        wit_dir = ensure_app_wit(cache_dir / "wit-wasi", sources, tools, progress)
        progress(_describe(bundle, plain))
        started = time.monotonic()
        progress("componentize-py: loading the app and snapshotting it (~20 s) ...")
        with _Ticker(progress, started):
            componentize(WRAPPER_MODULE, [wrapper_dir, app, site, sources.guest], cached,
                         sources, wit_dir, tools, world)
        report = wrapper_dir / PRELOAD_REPORT
        failed_file.write_text(report.read_text() if report.is_file() else "")
    size = cached.stat().st_size / 1e6
    progress(f"built {size:.1f} MB in {time.monotonic() - started:.1f}s")
    _report_failed(failed_file, warn, bundle.soft)
    _copy(cached, output)
    return True


def _report_failed(failed_file: Path, warn: Progress, soft: Collection[str] = ()) -> None:
    """The guest's own verdict: modules found here that failed to import in
    it. A warning each, except the modules only conditional imports or the
    whole-package walk reached (`Bundle.soft`): one note naming them."""
    try:
        lines = failed_file.read_text().splitlines()
    except OSError:
        return
    extra = []
    for line in lines:
        if line.partition(":")[0] in soft:
            extra.append(line.partition(":")[0])
            continue
        warn(f"warning: not bundled, failed to import in the guest at build time: {line}")
    if extra:
        warn(f"note: {len(extra)} module(s) imported only conditionally (inside if/try/def, or "
             "by string from a package) do not import in a guest, fine unless the program "
             f"takes that path: {', '.join(extra)}")


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
