"""The compilation cache's index: a warm start loads the artifact without
reading the component, and a changed component is never served a stale
artifact."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from wasmtime import Engine, wat2wasm

from capsock.runtime import cache as cache_module
from capsock.runtime import load_component, new_engine


def component(export: str) -> bytes:
    """A tiny component whose only export is named `export`."""
    return wat2wasm(f"""
(component
  (core module $m (func (export "f") (result i32) i32.const 0))
  (core instance $i (instantiate $m))
  (func (export "{export}") (result u32) (canon lift (core func $i "f"))))
""")


def exports(engine: Engine, path: Path, cache: Path) -> list[str]:
    return list(load_component(engine, path, cache).type.exports(engine))


def test_warm_load_does_not_read_the_component(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.wasm"
    path.write_bytes(component("first"))
    engine = new_engine()
    assert exports(engine, path, tmp_path / "cache") == ["first"]

    def no_reading(self: Path) -> bytes:
        raise AssertionError(f"read {self}")

    monkeypatch.setattr(Path, "read_bytes", no_reading)
    assert exports(engine, path, tmp_path / "cache") == ["first"]


@pytest.mark.parametrize("how", ["rewrite", "replace", "same-mtime"])
def test_a_changed_component_is_loaded_anew(tmp_path: Path, how: str) -> None:
    path = tmp_path / "c.wasm"
    path.write_bytes(component("first"))
    engine, cache = new_engine(), tmp_path / "cache"
    assert exports(engine, path, cache) == ["first"]
    before = path.stat()
    if how == "replace":  # a new file (new inode) moved over the old one
        (tmp_path / "new.wasm").write_bytes(component("other"))
        os.replace(tmp_path / "new.wasm", path)
    else:  # same length ("first" and "other" both have five letters)
        path.write_bytes(component("other"))
    if how == "same-mtime":  # mtime set back: the ctime still moves
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size
    assert exports(engine, path, cache) == ["other"]
    assert exports(engine, path, cache) == ["other"]  # and the index now says so


def test_a_missing_or_foreign_artifact_falls_back_to_the_hash(tmp_path: Path) -> None:
    path = tmp_path / "c.wasm"
    path.write_bytes(component("first"))
    cache = tmp_path / "cache"
    assert exports(new_engine(), path, cache) == ["first"]
    for artifact in cache.glob("*.cwasm"):
        artifact.unlink()
    assert exports(new_engine(), path, cache) == ["first"]  # recompiled
    # a plain engine has its own index entry and artifact
    assert exports(Engine(), path, cache) == ["first"]
    assert len(list(cache.glob("*.cwasm"))) == 2
    assert len(list((cache / "index").iterdir())) == 2


def test_a_corrupt_index_entry_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "c.wasm"
    path.write_bytes(component("first"))
    cache = tmp_path / "cache"
    engine = new_engine()
    exports(engine, path, cache)
    (entry,) = (cache / "index").iterdir()
    stamp = entry.read_text().rsplit(" ", 1)[0]
    for text in ("garbage", f"{stamp} ../../etc/passwd", f"{stamp} nothere.cwasm", "\xff"):
        entry.write_text(text)
        assert exports(engine, path, cache) == ["first"]
    assert cache_module._read_index(entry, stamp) is not None  # rewritten, usable again
