#!/usr/bin/env python3
"""Build capsock's guest apps into WebAssembly components.

    python guest/build.py                 # every app in guest/apps/
    python guest/build.py echo client     # just these
    python guest/build.py --out /tmp/b    # elsewhere (default: <repo>/build)
    python guest/build.py --bindings      # also write typing stubs for mypy

Each app ``guest/apps/<app>/app.py`` becomes ``<out>/<app>.wasm``, a
component of the world ``capsock:app/app`` (capsock's imports plus the
``wasi:cli/run`` export). The machinery lives in ``host/capsock/builder.py``
(shared with ``capsock build``); this script picks the apps, runs builds in
parallel and keeps ``<out>/wit-wasi/`` (the derived WASI WIT, not in git).

An ``app.py`` that exports ``Run`` is built as is; one without is a plain
script (e.g. ``bsdecho``, written against the `socket` module): it is
wrapped so that ``import socket`` is capsock's BSD layer and the script
runs at run time, as ``capsock build`` does.

A build is skipped when the content hash of its inputs (the app folder, the
guest library ``guest/capsock_guest/``, ``wit/*.wit``, the tool versions,
the builder and this script) matches ``<out>/<app>.wasm.hash``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

GUEST = Path(__file__).resolve().parent
ROOT = GUEST.parent
APPS = GUEST / "apps"
sys.path.insert(0, str(ROOT / "host"))

from capsock import builder  # noqa: E402  (this checkout's, by the path above)

BuildError = builder.BuildError
SOURCES = builder.Sources(ROOT)
#: Apps kept outside guest/apps/: the conformance kit's probe lives next to
#: its case table and is built twice, for the core world and with fast-io.
PROBE = ROOT / "host" / "capsock" / "conformance" / "probe"
ELSEWHERE = {"conformance": (PROBE, builder.CORE_APP_WORLD),
             "conformance-fast-io": (PROBE, builder.APP_WORLD)}

_print_lock = threading.Lock()


def say(*parts: object) -> None:
    with _print_lock:
        print(*parts, flush=True)


def app_wit_dir(out: Path) -> Path:
    return out / "wit-wasi"


def list_apps() -> list[str]:
    return sorted([p.parent.name for p in APPS.glob("*/app.py")] + list(ELSEWHERE))


def app_source(name: str) -> tuple[Path, str]:
    """The folder of app `name` and the world it is built for."""
    return ELSEWHERE.get(name, (APPS / name, builder.APP_WORLD))


def build_app(name: str, out: Path, tools: builder.Tools, force: bool) -> str:
    app_dir, world = app_source(name)
    app_py = app_dir / "app.py"
    if not app_py.is_file():
        raise BuildError(f"{name}: no {app_py}")
    wasm = out / f"{name}.wasm"
    hash_file = out / f"{name}.wasm.hash"
    digest = builder.input_hash(SOURCES, tools, [("app", app_dir)],
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
            module, paths = builder.WRAPPER_MODULE, [wrapper, app_dir, GUEST]
        else:
            module, paths = "app", [app_dir, GUEST]
        builder.componentize(module, paths, wasm, SOURCES, app_wit_dir(out), tools, world)
    hash_file.write_text(digest + "\n")
    size = wasm.stat().st_size / 1e6
    kind = " (plain script)" if module != "app" else ""
    return (f"{name}: built {wasm}{kind} ({size:.1f} MB) "
            f"in {time.monotonic() - started:.1f}s")


def write_bindings(out: Path, tools: builder.Tools) -> Path:
    """Typing stubs of the app world, for mypy (``MYPYPATH=<out>/bindings``)."""
    target = out / "bindings"
    shutil.rmtree(target, ignore_errors=True)
    builder.run([tools.componentize_py, "-q", *builder.world_args(SOURCES, app_wit_dir(out)),
                 "bindings", str(target)], cwd=ROOT)
    return target


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
                        help="also write typing stubs to <out>/bindings (for mypy)")
    args = parser.parse_args(argv)

    apps = args.apps or list_apps()
    unknown = [a for a in apps if not (app_source(a)[0] / "app.py").is_file()]
    if unknown:
        parser.error(f"unknown app(s): {', '.join(unknown)} "
                     f"(have: {', '.join(list_apps())})")
    out: Path = args.out.resolve()
    started = time.monotonic()
    try:
        tools = builder.find_tools()
        out.mkdir(parents=True, exist_ok=True)
        builder.ensure_app_wit(app_wit_dir(out), SOURCES, tools, say)
        if args.bindings:
            say(f"bindings: {write_bindings(out, tools)}")
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1

    failed = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {pool.submit(build_app, a, out, tools, args.force): a
                   for a in apps}
        for fut in concurrent.futures.as_completed(futures):
            try:
                say(fut.result())
            except BuildError as e:
                failed.append(futures[fut])
                with _print_lock:
                    print(f"error: {futures[fut]}: {e}", file=sys.stderr, flush=True)
    say(f"done in {time.monotonic() - started:.1f}s"
        + (f"; FAILED: {', '.join(sorted(failed))}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
