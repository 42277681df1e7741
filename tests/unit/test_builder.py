"""The guest toolchain's pure parts: telling plain scripts from Run-exporting
apps, finding the imports to bundle, the generated wrapper, and where the
WIT and guest library are found."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from capsock import toolchain as builder
from capsock.toolchain import sources


@pytest.mark.parametrize(("source", "plain"), [
    ("import socket\nprint('hi')\n", True),
    ("def main(argv): ...\nRun = run_main(main)\n", False),
    ("class Run(Command):\n    pass\n", False),
    ("from app_impl import Run\n", False),
    ("Run: type = make()\n", False),
    ("def f():\n    Run = 1\n", True),  # not top level
    ("if __name__ == '__main__':\n    main()\n", True),
])
def test_is_script(source: str, plain: bool) -> None:
    assert builder.is_script(source) is plain


def test_script_imports_finds_nested_and_from_imports() -> None:
    source = (
        "import socket, sys\n"
        "from http import server\n"
        "from urllib.parse import urlsplit\n"
        "from . import local\n"
        "def f():\n"
        "    import json\n"
        "    try:\n"
        "        import ssl\n"
        "    except ImportError:\n"
        "        pass\n"
        "from os import *\n"
    )
    assert sorted(builder.script_imports(source)) == sorted([
        "socket", "sys", "http", "http.server", "urllib.parse", "urllib.parse.urlsplit",
        "json", "ssl", "os"])


def test_wrapper_installs_bsd_first_and_embeds_the_source() -> None:
    source = "import socket\nprint(socket.gethostname())\n"
    wrapper = builder.wrapper_source(source, "hello.py")
    tree = ast.parse(wrapper)
    first = tree.body[1]  # after the docstring
    assert isinstance(first, ast.Import) and first.names[0].name == "capsock_guest.use_bsd"
    assert repr(source) in wrapper
    assert "'socket'" in wrapper  # preloaded, hence bundled
    assert "Run = script_command(" in wrapper


def test_find_sources_is_this_checkout() -> None:
    found = builder.find_sources()
    root = Path(__file__).resolve().parents[2]
    assert found.wit == root / "wit" and found.library == root / "guest" / "capsock_guest"
    assert (found.wit / "socket.wit").is_file()
    assert (found.library / "bsd.py").is_file()


def test_net_world_follows_the_wit_package_version() -> None:
    """The world guests include is read from wit/, so a contract bump needs
    no edit in the toolchain."""
    found = builder.find_sources()
    text = "".join(path.read_text() for path in found.wit.glob("*.wit"))
    version = re.search(r"^package capsock:net@([^;]+);", text, re.M)
    assert version is not None
    assert found.net_world == f"capsock:net/{sources.NET_WORLD_NAME}@{version.group(1)}"

