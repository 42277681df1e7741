"""Compile a component once; later starts deserialize it (~ms, not ~s).

Compiling an 18 MB componentize-py guest takes wasmtime ~10 s; loading the
serialized artifact takes milliseconds. Artifacts are keyed by the SHA-256
of the component bytes, the wasmtime version and the engine's epoch
interruption setting (code compiled with epoch checks cannot be loaded by
an engine without them, nor the reverse), and written atomically, so
concurrent starts, upgraded wasmtimes and both kinds of engine are safe.

Reading and hashing 18 MB costs ~50 ms, most of a warm start's load, so a
small index remembers which artifact a component file had, under the
file's identity and change stamps (device, inode, size, mtime and ctime
in nanoseconds; ctime cannot be set back by anyone who rewrites the file):
while they match, the artifact is loaded without reading the component
(like git's index or ccache's direct mode). A stale index entry (the
file changed, the artifact is gone or unusable, wasmtime was upgraded)
falls back to the hash, which rewrites it. Entries are named by device and
inode, not by a hash of the path: the warm path then needs no `hashlib`
(importing it loads OpenSSL, ~4 ms of every start); a file replaced by a
rename gets a new inode, hence a new entry, and the old one is never
matched again (its stamp cannot recur).
"""

from __future__ import annotations

import contextlib
import os
from functools import cache
from pathlib import Path

from wasmtime import Engine, WasmtimeError
from wasmtime.component import Component

from .._log import log
from .engine import is_interruptible


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
    if os.environ.get("CAPSOCK_NO_CACHE") == "1":
        return Component(engine, Path(path).read_bytes())
    directory = cache_dir or default_cache_dir()
    flavor = b"\0epoch-interruption" if is_interruptible(engine) else b""
    info = os.stat(path)  # before reading: a later change must not be recorded as this one
    stamp = _stamp(info)
    index = _index_path(directory, info, flavor)
    known = _read_index(index, stamp)
    if known is not None:
        try:
            return Component.deserialize_file(engine, str(directory / known))
        except WasmtimeError:
            pass  # gone, or from another wasmtime: the slow path finds out
    import hashlib  # only a cache miss hashes: kept off the warm start

    wasm = Path(path).read_bytes()
    digest = hashlib.sha256(wasm)
    digest.update(_wasmtime_version().encode())
    digest.update(flavor)
    artifact = directory / f"{digest.hexdigest()}.cwasm"
    if artifact.exists():
        try:
            component = Component.deserialize_file(engine, str(artifact))
        except WasmtimeError:
            log.warning("capsock: ignoring unusable cache entry %s", artifact)
        else:
            _write_index(index, stamp, artifact.name)
            return component
    component = Component(engine, wasm)
    try:
        _write_atomically(artifact, component.serialize())
    except OSError as error:
        log.warning("capsock: cannot write the compilation cache: %s", error)
    else:
        _write_index(index, stamp, artifact.name)
    return component


@cache
def _wasmtime_version() -> str:
    """Only needed on the slow path: importing importlib.metadata costs ~28 ms."""
    from importlib.metadata import version

    return version("wasmtime")


def _stamp(info: os.stat_result) -> str:
    return f"{info.st_dev} {info.st_ino} {info.st_size} {info.st_mtime_ns} {info.st_ctime_ns}"


def _index_path(directory: Path, info: os.stat_result, flavor: bytes) -> Path:
    suffix = "-epoch" if flavor else ""
    return directory / "index" / f"{info.st_dev:x}-{info.st_ino:x}{suffix}"


def _read_index(index: Path, stamp: str) -> str | None:
    """The artifact's file name recorded for this exact stamp, if any."""
    try:
        recorded, _, artifact = index.read_text().strip().rpartition(" ")
    except (OSError, UnicodeDecodeError):
        return None
    if recorded != stamp or not artifact.endswith(".cwasm") or "/" in artifact:
        return None
    return artifact


def _write_index(index: Path, stamp: str, artifact: str) -> None:
    try:
        _write_atomically(index, f"{stamp} {artifact}\n".encode())
    except OSError as error:
        log.warning("capsock: cannot write the compilation cache index: %s", error)


def _write_atomically(target: Path, data: bytes | bytearray) -> None:
    """Write via a temporary file and a rename, so that a concurrent reader
    sees the old file or the new one, never half of one."""
    import tempfile  # only a cache miss writes: kept off the warm start

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
