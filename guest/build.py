#!/usr/bin/env python3
"""Build capsock's guest apps into WebAssembly components.

    python guest/build.py                 # every app in guest/apps/
    python guest/build.py echo client     # just these
    python guest/build.py --out /tmp/b    # elsewhere (default: <repo>/build)
    python guest/build.py --bindings      # only the typing stubs for mypy (build/bindings)
    python guest/build.py --no-compile    # skip filling the compilation cache

Each app ``guest/apps/<app>/app.py`` (and the conformance probe,
``host/capsock/conformance/probe/app.py``) becomes ``<out>/<app>.wasm``, a
component of the world ``capsock:app/app`` (capsock's imports plus the
``wasi:cli/run`` export), then is compiled into the compilation cache with
``capsock compile`` (so no first start waits ~10 s for a cold compile). The
machinery is the ``capsock.toolchain`` package (shared with ``capsock
build``), imported from the venv this script runs in: capsock installed
from this checkout (``pip install -e .``; a worktree may run it with
``PYTHONPATH=host``). This script picks the apps, runs builds in parallel
and keeps ``<out>/wit-wasi/`` (the derived WASI WIT, not in git).

An ``app.py`` that exports ``Run`` is built as is; one without is a plain
script (e.g. ``bsdecho``, written against the `socket` module): it is
wrapped so that ``import socket`` is capsock's BSD layer and the script
runs at run time, as ``capsock build`` does.

A build is skipped when the content hash of its inputs (the app folder, the
guest library ``guest/capsock_guest/``, ``wit/*.wit``, the tool versions,
the toolchain and this script) matches ``<out>/<app>.wasm.hash``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from capsock import toolchain as builder

GUEST = Path(__file__).resolve().parent
ROOT = GUEST.parent
APPS = GUEST / "apps"
#: The conformance probe lives next to its case table; older trees had it
#: at guest/apps/conformance/.
PROBE = ROOT / "host" / "capsock" / "conformance" / "probe"

BuildError = builder.BuildError

_print_lock = threading.Lock()


def say(*parts: object) -> None:
    with _print_lock:
        print(*parts, flush=True)


def app_wit_dir(out: Path) -> Path:
    return out / "wit-wasi"


def app_dirs() -> dict[str, Path]:
    """Every app's name and folder (the one holding its ``app.py``)."""
    found = {p.parent.name: p.parent for p in APPS.glob("*/app.py")}
    if (PROBE / "app.py").is_file():  # built twice: the core, and with fast-io
        found["conformance"] = PROBE
        found["conformance-fast-io"] = PROBE
    return dict(sorted(found.items()))


def list_apps() -> list[str]:
    return list(app_dirs())


def app_world(name: str) -> str:
    """The world app `name` is built for: the core alone for the core
    conformance probe, else the core with the `fast-io` extension."""
    return builder.CORE_APP_WORLD if name == "conformance" else builder.APP_WORLD


def checkout_sources() -> builder.Sources:
    """This checkout's WIT and guest library, as the imported capsock finds
    them: a capsock installed from elsewhere would build with another
    toolchain (and perhaps another contract), so that is an error."""
    sources = builder.find_sources()
    if sources.wit.resolve() != (ROOT / "wit").resolve():
        raise BuildError(
            f"the capsock this interpreter imports ({Path(builder.__file__).parent}) is not "
            f"this checkout's ({ROOT / 'host'}): install it with `pip install -e {ROOT}` "
            "(a worktree: run with PYTHONPATH=host)")
    return sources


def build_app(name: str, out: Path, tools: builder.Tools, force: bool,
              sources: builder.Sources) -> str:
    app_dir, world = app_dirs()[name], app_world(name)
    app_py = app_dir / "app.py"
    wasm = out / f"{name}.wasm"
    hash_file = out / f"{name}.wasm.hash"
    digest = builder.input_hash(sources, tools, [("app", app_dir)],
                                [("build.py", Path(__file__).read_bytes()),
                                 ("world", world.encode())])
    if (not force and wasm.is_file() and hash_file.is_file()
            and hash_file.read_text().strip() == digest):
        return f"{name}: up to date ({wasm}, hash {digest[:12]})"

    started = time.monotonic()
    source = app_py.read_text()
    with tempfile.TemporaryDirectory(prefix=f"capsock-{name}-") as tmp:
        if builder.is_script(source):
            wrapper = Path(tmp)
            (wrapper / f"{builder.WRAPPER_MODULE}.py").write_text(
                builder.wrapper_source(source, "app.py"))
            module, paths = builder.WRAPPER_MODULE, [wrapper, app_dir, sources.guest]
        else:
            module, paths = "app", [app_dir, sources.guest]
        builder.componentize(module, paths, wasm, sources, app_wit_dir(out), tools, world)
    hash_file.write_text(digest + "\n")
    size = wasm.stat().st_size / 1e6
    kind = " (plain script)" if module != "app" else ""
    return (f"{name}: built {wasm}{kind} ({size:.1f} MB) "
            f"in {time.monotonic() - started:.1f}s")


def write_bindings(out: Path, tools: builder.Tools, sources: builder.Sources) -> Path:
    """Typing stubs of the app world, for mypy (``MYPYPATH=<out>/bindings``)."""
    target = out / "bindings"
    shutil.rmtree(target, ignore_errors=True)
    builder.run([tools.componentize_py, "-q", *builder.world_args(sources, app_wit_dir(out)),
                 "bindings", str(target)], cwd=ROOT)
    return target


def compile_apps(wasms: list[Path]) -> bool:
    """``capsock compile`` the built components into the compilation cache
    (``$CAPSOCK_CACHE_DIR`` or ~/.cache/capsock): the runtime's own cache, so
    a test's or the demo's first start deserializes instead of compiling.
    Milliseconds per component already there."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "capsock", "compile", "-q",
                           *map(str, wasms)], text=True, stderr=subprocess.PIPE)
    if done.returncode != 0:
        print(f"error: capsock compile failed:\n{done.stderr}", file=sys.stderr)
        return False
    say(f"compiled into the compilation cache: {len(wasms)} component(s) "
        f"in {time.monotonic() - started:.1f}s")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Build capsock guest apps (guest/apps/<app>/app.py) into "
                    "components <out>/<app>.wasm, skipping unchanged ones.")
    parser.add_argument("apps", nargs="*", metavar="APP",
                        help=f"apps to build (default: all of {', '.join(list_apps())})")
    parser.add_argument("--out", type=Path, default=ROOT / "build",
                        help="output directory (default: %(default)s)")
    parser.add_argument("-j", "--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="parallel builds (default: %(default)s)")
    parser.add_argument("--force", action="store_true",
                        help="rebuild even when the content hash is unchanged")
    parser.add_argument("--bindings", action="store_true",
                        help="write typing stubs of the guest world to <out>/bindings (for "
                             "mypy on the guest library); then build only the APPs named")
    parser.add_argument("--no-compile", action="store_true",
                        help="do not compile the built components into the compilation cache")
    args = parser.parse_args(argv)

    apps = args.apps or ([] if args.bindings else list_apps())
    unknown = [a for a in apps if a not in app_dirs()]
    if unknown:
        parser.error(f"unknown app(s): {', '.join(unknown)} "
                     f"(have: {', '.join(list_apps())})")
    out: Path = args.out.resolve()
    started = time.monotonic()
    try:
        sources = checkout_sources()
        tools = builder.find_tools()
        out.mkdir(parents=True, exist_ok=True)
        builder.ensure_app_wit(app_wit_dir(out), sources, tools, say)
        if args.bindings:
            say(f"bindings: {write_bindings(out, tools, sources)}")
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1

    failed = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {pool.submit(build_app, a, out, tools, args.force, sources): a
                   for a in apps}
        for fut in concurrent.futures.as_completed(futures):
            try:
                say(fut.result())
            except BuildError as e:
                failed.append(futures[fut])
                with _print_lock:
                    print(f"error: {futures[fut]}: {e}", file=sys.stderr, flush=True)
    built = [out / f"{app}.wasm" for app in apps if app not in failed]
    if built and not args.no_compile and not compile_apps(built):
        failed.append("(compile)")
    say(f"done in {time.monotonic() - started:.1f}s"
        + (f"; FAILED: {', '.join(sorted(failed))}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
