"""Compile a component once; later starts deserialize it (~ms, not ~s).

Compiling an 18 MB componentize-py guest takes wasmtime ~10 s; loading the
serialized artifact takes milliseconds. Artifacts are keyed by the SHA-256
of the component bytes, the wasmtime version and the engine's epoch
interruption setting (code compiled with epoch checks cannot be loaded by
an engine without them, nor the reverse), and written atomically, so
concurrent starts, upgraded wasmtimes and both kinds of engine are safe.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from importlib.metadata import version
from pathlib import Path

from wasmtime import Engine, WasmtimeError
from wasmtime.component import Component

from .engine import is_interruptible

log = logging.getLogger("capsock")


def default_cache_dir() -> Path:
    explicit = os.environ.get("CAPSOCK_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "capsock"


def load_component(engine: Engine, path: str | os.PathLike[str],
                   cache_dir: Path | None = None) -> Component:
    """Load `path`, from the compilation cache when possible.

    `cache_dir=None` uses the default directory; pass a path to override.
    Set the environment variable CAPSOCK_NO_CACHE=1 to always compile.
    """
    wasm = Path(path).read_bytes()
    if os.environ.get("CAPSOCK_NO_CACHE") == "1":
        return Component(engine, wasm)
    directory = cache_dir or default_cache_dir()
    flavor = b"\0epoch-interruption" if is_interruptible(engine) else b""
    key = hashlib.sha256(wasm + version("wasmtime").encode() + flavor).hexdigest()
    artifact = directory / f"{key}.cwasm"
    if artifact.exists():
        try:
            return Component.deserialize_file(engine, str(artifact))
        except WasmtimeError:
            log.warning("capsock: ignoring unusable cache entry %s", artifact)
    component = Component(engine, wasm)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=directory, suffix=".tmp")
        with os.fdopen(fd, "wb") as out:
            out.write(component.serialize())
        os.replace(temporary, artifact)
    except OSError as error:
        log.warning("capsock: cannot write the compilation cache: %s", error)
    return component
