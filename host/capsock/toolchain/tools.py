"""The external tools a guest build runs: componentize-py and wasm-tools.

They come with the ``build`` extra (``pip install 'capsock[build]'``); the
runtime never needs them, so nothing here is imported by ``capsock run``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BuildError", "Tools", "find_tool", "find_tools", "run", "INSTALL_HINT"]

#: What to install when a build tool is missing (said exactly so).
INSTALL_HINT = "pip install 'capsock[build]'"


class BuildError(Exception):
    """A build failed; the message says which step and shows its output."""


@dataclass(frozen=True)
class Tools:
    componentize_py: str
    wasm_tools: str
    #: Both tools' ``--version`` lines: part of every build's content hash.
    versions: str


def find_tool(name: str) -> str:
    """``name`` next to the running interpreter (a venv), else on PATH."""
    here = Path(sys.executable).parent
    found = shutil.which(name, path=str(here)) or shutil.which(name)
    if not found:
        raise BuildError(f"building guests needs {name}, found neither next to "
                         f"{sys.executable} nor on PATH: {INSTALL_HINT}")
    return found


def run(cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise BuildError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout}")
    return proc.stdout


def find_tools() -> Tools:
    cpy = find_tool("componentize-py")
    wasm_tools = find_tool("wasm-tools")
    versions = run([cpy, "--version"]).strip() + "\n" + run([wasm_tools, "--version"]).strip()
    return Tools(cpy, wasm_tools, versions)
