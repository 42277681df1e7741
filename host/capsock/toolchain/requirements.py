"""``capsock build --requirements FILE`` / ``--with PKG``: packages for the guest, from the index.

pip installs the requirements into a folder of their own (``pip install
--target``), which the build then searches like a ``--path DIR`` (first,
before any ``--path``; see `capsock.toolchain.bundle`). The install is
for the *guest*, not for the interpreter running the build: pip is told
the guest's Python version and the platform ``any`` with only-binary
wheels, so it resolves every package (dependencies included) to a
``py3-none-any`` wheel or fails. A package that has only platform wheels
(a C extension: ``httptools``, ``uvloop``) or only a source distribution
has none, and the build fails naming it, before componentize-py runs.

Installs are cached in ``<cache>/requirements/<hash>/`` by the SHA-256 of
the requirement files' bytes, the ``--with`` names, the guest's Python
version and pip's version: a second build with the same requirements
reuses the folder (no index traffic); an edited file installs afresh. A
requirement left unpinned resolves once, at the first install, and stays
so until the file changes: pin what must move.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .tools import BuildError

__all__ = ["GUEST_PYTHON", "install_requirements"]

#: The Python version of the guest's CPython (componentize-py 0.25's), for pip's resolver.
GUEST_PYTHON = "3.14"
#: Marks a finished install folder (a crashed install leaves none, so it is redone).
_DONE = ".capsock-complete"
_NO_MATCH = re.compile(r"No matching distribution found for ([^\s]+)")


def _pip_version() -> str:
    proc = subprocess.run([sys.executable, "-m", "pip", "--version"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise BuildError("--requirements needs pip in the interpreter running capsock "
                         f"({sys.executable}): {proc.stdout.strip()}")
    return proc.stdout.split(" from ")[0].strip()


def requirements_hash(files: Sequence[Path], packages: Sequence[str], pip: str) -> str:
    """The cache key (see the module docstring)."""
    h = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        h.update(label.encode() + b"\0" + len(data).to_bytes(8, "little") + data)

    add("python", GUEST_PYTHON.encode())
    add("pip", pip.encode())
    for path in files:
        try:
            add("file", path.read_bytes())
        except OSError as error:
            raise BuildError(f"--requirements {path}: {error.strerror or error}") from None
    for name in packages:
        add("with", name.encode())
    return h.hexdigest()


def pip_command(files: Sequence[Path], packages: Sequence[str], target: Path) -> list[str]:
    """The ``pip install`` that fills ``target`` for the guest."""
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-input",
           "--disable-pip-version-check", "--target", str(target),
           "--only-binary=:all:", "--platform", "any", "--implementation", "py",
           "--abi", "none", "--python-version", GUEST_PYTHON]
    for path in files:
        cmd += ["-r", str(path)]
    return cmd + list(packages)


def install_requirements(files: Sequence[Path], packages: Sequence[str], cache_dir: Path,
                         progress: Callable[[str], None] = lambda _: None) -> Path:
    """Install ``files`` (requirement files) and ``packages`` (``--with``
    names) for the guest into a cached folder; returns it. `BuildError`
    naming the package when one has no pure-Python wheel."""
    files = [path.resolve() for path in files]
    digest = requirements_hash(files, packages, _pip_version())
    target = cache_dir / "requirements" / digest
    if (target / _DONE).is_file():
        progress(f"requirements: up to date (cache {digest[:12]})")
        return target
    what = ", ".join([*(str(path) for path in files), *packages])
    progress(f"requirements: pip install for the guest (Python {GUEST_PYTHON}, pure-Python "
             f"wheels only): {what} ...")
    tmp = target.with_name(f".{digest}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run(pip_command(files, packages, tmp), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            raise BuildError(_explain(proc.stdout))
        (tmp / _DONE).write_text(what + "\n")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    installed = sorted(path.name for path in target.glob("*.dist-info"))
    progress(f"requirements: installed {', '.join(installed) or 'nothing'}")
    return target


def _explain(output: str) -> str:
    """pip's failure as a build error that names the package when it can."""
    lines = [line for line in output.splitlines()
             if line.strip() and "is ignored: it is neither a file nor a directory" not in line]
    match = _NO_MATCH.search(output)
    if match:
        name = match.group(1)
        return (f"--requirements: {name!r} has no pure-Python wheel for the guest (Python "
                f"{GUEST_PYTHON}, platform any): it has a C extension, or is published only as "
                "a source distribution; a guest runs pure Python only (a pure package "
                "without a wheel: `pip install --target DIR` it and pass --path DIR)\n"
                + "\n".join(lines[-4:]))
    return "--requirements: pip install failed:\n" + "\n".join(lines[-12:])
