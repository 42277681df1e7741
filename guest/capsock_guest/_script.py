"""Run a plain Python script as the `wasi:cli/run` export.

``capsock build APP.py`` (and ``guest/build.py`` for an ``app.py`` with no
``Run``) generate a wrapper module that calls `preload` with the script's
imports and exports ``Run = script_command(SOURCE, "APP.py")``. The script
is *compiled* at build time (syntax errors fail the build) and *executed*
at run time, in a fresh ``__main__`` module with ``sys.argv`` as the host
passed it, exactly as ``python APP.py ARGS`` would run it.
"""

from __future__ import annotations

import builtins
import importlib
import os
import sys
import types

from ._cli import Command

__all__ = ["preload", "script_command"]


def preload(modules: list[str], report: str | None = None) -> list[str]:
    """Import ``modules`` now (at build time) so componentize-py bundles
    them; returns those that failed, as ``module: error``. A failure is not
    fatal: ``python APP.py`` would only fail if the script really imports
    it at run time (``try: import ssl except ImportError`` is common). With
    ``report``, the failures are also written to that file next to the
    calling wrapper (a folder mounted only at build time), where ``capsock
    build`` reads them to warn."""
    failed = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as error:
            failed.append(f"{name}: {type(error).__name__}: {error}")
    if report is not None:
        caller = sys._getframe(1).f_globals.get("__file__")
        if caller:
            try:
                with open(os.path.join(os.path.dirname(caller), report), "w") as out:
                    out.write("".join(f"{line}\n" for line in failed))
            except OSError:
                pass  # a read-only mount: the builder then reports nothing
    return failed


def _enter_working_directory() -> None:
    """chdir to ``$PWD``: capsock's host sets it to the first ``--dir``
    pre-open's guest path (a WASI guest starts at ``/``), so relative paths,
    ``os.getcwd()`` and ``http.server``'s default directory ``"."`` are that
    directory, as they would be for ``cd DIR && python APP.py``."""
    where = os.environ.get("PWD")
    if where:
        try:
            os.chdir(where)
        except OSError:
            pass  # not a directory the guest can see: stay at "/"


def script_command(source: str, filename: str) -> type[Command]:
    """A ``Run`` export executing ``source`` as ``__main__`` on each run."""
    code = compile(source, filename, "exec")

    class Run(Command):
        def main(self, argv: list[str]) -> int | None:
            _enter_working_directory()
            main = types.ModuleType("__main__")
            main.__file__ = filename
            main.__builtins__ = builtins  # type: ignore[attr-defined]
            sys.modules["__main__"] = main
            exec(code, main.__dict__)
            return 0

    Run.__qualname__ = f"script_command({filename!r})"
    return Run
