"""`capsock compile`: fills the compilation cache exactly as `capsock run` reads it.

guest/build.py compiles every guest it builds this way so that no test
waits for a cold compile at its first start: that only works if `compile`
and `run` agree on the cache key (component bytes, wasmtime version and
the engine's epoch-interruption flavour).
"""

from __future__ import annotations

from pathlib import Path

from .helpers import run_capsock

#: A cold compile of an ~18 MB guest: ~10 s idle, minutes on a loaded machine.
COMPILE_TIMEOUT = 600.0


def _entries(cache: Path) -> dict[str, bytes]:
    return {path.relative_to(cache).as_posix(): path.read_bytes()
            for path in sorted(cache.rglob("*")) if path.is_file()}


def test_compile_fills_the_cache_that_run_reads(guests: dict[str, Path],
                                                tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    done = run_capsock("compile", "--cache-dir", str(cache), str(guests["client"]),
                       timeout=COMPILE_TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert "compiled" in done.stderr
    compiled = _entries(cache)
    assert [name for name in compiled if name.endswith(".cwasm")], compiled
    assert [name for name in compiled if name.startswith("index/")], compiled

    again = run_capsock("compile", "-q", "--cache-dir", str(cache), str(guests["client"]))
    assert again.returncode == 0 and again.stderr == ""
    assert _entries(cache) == compiled

    # `run` finds the artifact under the same key: it adds nothing to the cache.
    ran = run_capsock("run", "--cache-dir", str(cache), str(guests["client"]))
    assert "usage" in (ran.stdout + ran.stderr).lower(), ran
    assert _entries(cache) == compiled


def test_compile_refuses_a_missing_or_broken_component(tmp_path: Path) -> None:
    broken = tmp_path / "broken.wasm"
    broken.write_bytes(b"\0asm not really")
    done = run_capsock("compile", "--cache-dir", str(tmp_path / "cache"),
                       str(tmp_path / "missing.wasm"), str(broken))
    assert done.returncode == 2
    assert "no such component" in done.stderr and "missing.wasm" in done.stderr
    assert "broken.wasm" in done.stderr
