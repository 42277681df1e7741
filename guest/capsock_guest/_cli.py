"""The `wasi:cli/run` export: run a ``main(argv)`` and report failures.

componentize-py turns an exception escaping ``run`` into exit status 1
with nothing printed; this prints the traceback to stderr first. WASI 0.2's
``run: func() -> result`` carries no exit code, so every failure is
status 1 to the host (``sys.exit(2)`` too).
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable

from componentize_py_types import Err
from wit_world import exports

__all__ = ["Command", "run_main", "run_command"]

Main = Callable[[list[str]], int | None]


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def _exit_status(code: str | int | None) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)  # sys.exit("message") prints it, like CPython
    return 1


def _explain_missing_module(error: BaseException) -> None:
    """After the traceback of an uncaught `ModuleNotFoundError` (itself or
    its cause): why a module the program needs can be absent from a
    component, and the way out. componentize-py keeps only the modules
    imported while the component is built; ``capsock build`` imports every
    module the program names in an ``import`` statement, so what is missing
    was named another way (``importlib.import_module``, a plugin name) or
    imported lazily by a library it calls."""
    found: BaseException | None = error
    while found is not None and not isinstance(found, ModuleNotFoundError):
        found = found.__cause__ or found.__context__
    name = getattr(found, "name", None)
    if not name:
        return
    print(f"capsock: module {name!r} is not in this component: `capsock build` bundles the "
          "modules the program imports by name in an import statement, and this one was "
          "imported another way (importlib, a plugin) or lazily by a library. Rebuild with "
          f"`capsock build --include {name} APP.py`.", file=sys.stderr)


def run_command(main: Main, argv: list[str] | None = None) -> None:
    """Call ``main(argv)`` (default ``sys.argv[1:]``) as the body of
    ``run``: returns on status 0, raises ``Err(None)`` otherwise, having
    printed any traceback to stderr. ``SystemExit`` is honoured."""
    try:
        status = main(list(sys.argv[1:]) if argv is None else argv)
        status = 0 if status is None else status
    except SystemExit as e:
        status = _exit_status(e.code)
    except BaseException as error:
        traceback.print_exc()
        _explain_missing_module(error)
        status = 1
    _flush()
    if status != 0:
        raise Err(None)


class Command(exports.Run):
    """Base class for the app's ``Run`` export::

        class Run(capsock_guest.Command):
            def main(self, argv: list[str]) -> int | None: ...
    """

    def main(self, argv: list[str]) -> int | None:
        raise NotImplementedError

    def run(self) -> None:
        run_command(self.main)


def run_main(main: Main) -> type[Command]:
    """``Run = capsock_guest.run_main(main)`` in ``app.py``, where
    ``main(argv: list[str]) -> int | None`` gets ``sys.argv[1:]``."""

    class Run(Command):
        def main(self, argv: list[str]) -> int | None:
            return main(argv)

    Run.__qualname__ = f"run_main({getattr(main, '__name__', 'main')})"
    return Run
