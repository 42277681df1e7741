"""ComponentizeJS guests (guest/js/), built here from the npm registry.

`npm ci` installs guest/js's pinned packages into guest/js/node_modules
(not in git; ~390 MB, ~35 s here); `build` runs guest/js/build.mjs for one
source against a world assembled at build time from capsock's wit/ and the
WASI WIT the toolchain derives (never committed), and caches the component
in build/js/ by the hash of everything that goes in.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from capsock.runtime.cache import default_cache_dir
from capsock.toolchain import ensure_app_wit, find_sources, find_tools

from ..conftest import BUILD, ROOT

JS = ROOT / "guest" / "js"

#: The guests' worlds: the JS command imports nothing of capsock; the
#: capsock:net guest the whole core contract (+ its arguments).
WORLDS = {
    "command": """package capsock:js-command;
world command {{
    export wasi:cli/run@{wasi};
}}
""",
    "net": """package capsock:js-net;
world net {{
    include capsock:net/imports@{net};
    import wasi:cli/environment@{wasi};
    export wasi:cli/run@{wasi};
}}
""",
}


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise AssertionError(f"the ComponentizeJS guests need {name}: apt-get install nodejs npm")
    return found


def npm_install() -> None:
    """guest/js/node_modules from package-lock.json (once)."""
    if (JS / "node_modules" / "@bytecodealliance" / "componentize-js").is_dir():
        return
    done = subprocess.run([_tool("npm"), "ci", "--no-audit", "--no-fund"], cwd=JS,
                          capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise AssertionError(f"npm ci in {JS} failed:\n{done.stdout}\n{done.stderr}")


def build(name: str) -> Path:
    """guest/js/<name>/app.js as a component (cached by content)."""
    _tool("node")
    sources, tools = find_sources(), find_tools()
    wit_wasi = ensure_app_wit(default_cache_dir() / "wit-wasi", sources, tools)
    cli = (wit_wasi / "deps" / "cli.wit").read_text()
    wasi = cli.split(";", 1)[0].rsplit("@", 1)[1]
    world = WORLDS[name].format(wasi=wasi, net=sources.net_version)
    digest = hashlib.sha256()
    for path in [JS / name / "app.js", JS / "build.mjs", JS / "package-lock.json",
                 *sorted(sources.wit.glob("*.wit")), *sorted((wit_wasi / "deps").glob("*.wit"))]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    digest.update(world.encode())
    out = BUILD / "js" / f"{name}-{digest.hexdigest()[:16]}.wasm"
    if out.is_file():
        return out
    npm_install()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="capsock-js-wit-") as tmp_name:
        wit = Path(tmp_name)
        shutil.copytree(wit_wasi / "deps", wit / "deps")
        (wit / "deps" / "capsock-net").mkdir()
        for path in sources.wit.glob("*.wit"):
            shutil.copyfile(path, wit / "deps" / "capsock-net" / path.name)
        (wit / "world.wit").write_text(world)
        package = world.split(";", 1)[0].split()[1]
        tmp_out = out.with_suffix(".tmp")
        done = subprocess.run([_tool("node"), str(JS / "build.mjs"), str(JS / name / "app.js"),
                               str(wit), f"{package}/{name}", str(tmp_out)], cwd=JS,
                              capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise AssertionError(f"ComponentizeJS build of {name} failed:\n{done.stdout}\n"
                                 f"{done.stderr}")
        tmp_out.replace(out)
    return out
