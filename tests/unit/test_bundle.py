"""What `capsock build` bundles (toolchain/bundle.py), on real folders: the
script's modules, packages on --path with their relative and lazy imports,
stdlib modules imported anywhere, C extensions refused by name, and what
cannot be found split into unconditional (warned) and conditional (noted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from capsock.toolchain import BuildError
from capsock.toolchain.bundle import find_bundle, stage


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_follows_local_modules_packages_and_lazy_stdlib(tmp_path: Path) -> None:
    app, site = tmp_path / "app", tmp_path / "site"
    _write(app, {"main.py": "import helper\nfrom pkg import thing\n",
                 "helper.py": "def f():\n    import json\n"})
    _write(site, {
        "pkg/__init__.py": "from .core import thing\n",
        "pkg/core.py": ("thing = 1\ndef serve():\n"
                        "    from wsgiref.simple_server import make_server\n"
                        "    from . import extra\n"),
        "pkg/extra.py": "import email.utils\n",
        "pkg/unused.py": "import not_reached_at_all\n",
    })
    script = app / "main.py"
    bundle = find_bundle(script, script.read_text(), [site], use_environment=False)
    assert bundle.local == {"helper": app / "helper.py"}
    assert bundle.packages == {"pkg": site / "pkg"}
    for name in ("helper", "json", "pkg", "pkg.core", "pkg.extra", "wsgiref.simple_server",
                 "email.utils"):
        assert name in bundle.preload, (name, bundle.preload)
    assert "pkg.thing" not in bundle.preload  # a name in pkg, not a module
    # a package is preloaded whole (it may import by string); what only that
    # walk reaches is conditional: soft, and a missing import of it a note
    assert "pkg.unused" in bundle.preload and "pkg.unused" in bundle.soft
    assert not bundle.missing and list(bundle.optional) == ["not_reached_at_all"]
    assert "pkg.core" not in bundle.soft and "helper" not in bundle.soft

    target = tmp_path / "stage"
    staged_app, staged_site = stage(bundle, script, True, target)
    assert sorted(p.name for p in staged_app.iterdir()) == ["helper.py"]
    assert sorted(p.name for p in (staged_site / "pkg").iterdir()) == [
        "__init__.py", "core.py", "extra.py", "unused.py"]


def test_missing_imports_are_unconditional_or_conditional(tmp_path: Path) -> None:
    source = ("import nowhere_top\n"
              "try:\n    import nowhere_try\nexcept ImportError:\n    pass\n"
              "if False:\n    import nowhere_if\n"
              "def f():\n    import nowhere_def\n")
    script = tmp_path / "main.py"
    script.write_text(source)
    bundle = find_bundle(script, source, [], use_environment=False)
    assert bundle.missing == {"nowhere_top": ["main.py:1"]}
    assert sorted(bundle.optional) == ["nowhere_def", "nowhere_if", "nowhere_try"]


def test_include_bundles_what_no_import_statement_names(tmp_path: Path) -> None:
    """``--include``: a plugin imported by name at run time, found like any
    import (the stdlib, a package on --path with its own imports); one found
    nowhere is warned about as coming from --include; a non-name is refused."""
    _write(tmp_path / "site", {"plug/__init__.py": "import colorsys\n"})
    source = "import importlib\nimportlib.import_module('plug')\n"
    script = tmp_path / "main.py"
    script.write_text(source)
    plain = find_bundle(script, source, [tmp_path / "site"], use_environment=False)
    assert "plug" not in plain.preload and "colorsys" not in plain.preload
    bundle = find_bundle(script, source, [tmp_path / "site"], use_environment=False,
                         include=["plug", "heapq", "nowhere_plugin"])
    assert bundle.packages == {"plug": tmp_path / "site" / "plug"}
    for name in ("plug", "colorsys", "heapq"):
        assert name in bundle.preload, (name, bundle.preload)
    assert bundle.missing == {"nowhere_plugin": ["--include"]}
    with pytest.raises(BuildError, match="--include 'not-a-module': not a module name"):
        find_bundle(script, source, [], use_environment=False, include=["not-a-module"])


def test_a_c_extension_is_refused_by_name(tmp_path: Path) -> None:
    _write(tmp_path / "site", {"speedy/__init__.py": "x = 1\n"})
    (tmp_path / "site" / "speedy" / "_c.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    _write(tmp_path / "site", {"fastmod.abi3.so": ""})
    script = tmp_path / "main.py"
    for name in ("speedy", "fastmod"):
        with pytest.raises(BuildError, match=f"cannot bundle '{name}'.*C extension"):
            find_bundle(script, f"import {name}\n", [tmp_path / "site"], use_environment=False)


def test_a_package_imported_by_string_is_bundled_whole(tmp_path: Path) -> None:
    """uvicorn's shape: the loop module is imported by string, its C-extension
    alternative only inside ``try``; neither may fail or be left out."""
    _write(tmp_path / "site", {
        "srv/__init__.py": ("import importlib\n"
                            "LOOP = importlib.import_module('srv.loops.plain')\n"),
        "srv/loops/__init__.py": "",
        "srv/loops/plain.py": "import asyncio\n",
        "srv/loops/fast.py": "import fastloop\n",
        "srv/tests/test_srv.py": "import pytest\n",
        "srv/__main__.py": "raise SystemExit('never at build time')\n",
        "fastloop/__init__.py": "", "fastloop/_c.abi3.so": "",
    })
    script = tmp_path / "main.py"
    bundle = find_bundle(script, "import srv\n", [tmp_path / "site"], use_environment=False)
    assert {"srv", "srv.loops", "srv.loops.plain", "srv.loops.fast"} <= set(bundle.preload)
    assert "srv.tests.test_srv" not in bundle.preload and "srv.__main__" not in bundle.preload
    assert "fastloop" not in bundle.packages and "fastloop" in bundle.optional
    assert "srv" not in bundle.soft and "srv.loops.fast" in bundle.soft
    # the same C extension imported unconditionally is still refused by name
    with pytest.raises(BuildError, match="cannot bundle 'fastloop'.*C extension"):
        find_bundle(script, "import fastloop\n", [tmp_path / "site"], use_environment=False)


def test_search_order_is_stdlib_folder_path_environment(tmp_path: Path) -> None:
    """A local ``json.py`` does not shadow the stdlib (the guest's CPython
    puts its stdlib first); a --path package wins over the environment's."""
    _write(tmp_path, {"json.py": "", "main.py": ""})
    _write(tmp_path / "site", {"pytest.py": ""})
    script = tmp_path / "main.py"
    bundle = find_bundle(script, "import json\nimport pytest\n", [tmp_path / "site"])
    assert bundle.local == {}
    assert bundle.packages == {"pytest": tmp_path / "site" / "pytest.py"}
    from_env = find_bundle(script, "import pytest\n", [])
    assert from_env.packages["pytest"].name in ("pytest", "pytest.py")
    assert from_env.packages["pytest"] != tmp_path / "site" / "pytest.py"
