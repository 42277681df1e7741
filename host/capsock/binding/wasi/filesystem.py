"""`wasi:filesystem` 0.2 (types, preopens) over the `--dir` pre-opens.

Files are not networking, so no policy judges them: the operator's `--dir`
grant is the whole rule, as under `wasmtime run --dir` (read-write). What
this module enforces is that grant's edge: every path is confined beneath
its pre-opened directory by :func:`capsock.core.fs_sandbox.resolve_beneath`.
OS errors map to `wasi:filesystem/types.error-code` by errno
(`backends/errno_map.py`, beside the sockets' table).
"""

from __future__ import annotations

import errno
import functools
import os
import stat as stat_module
from collections.abc import Callable
from typing import Any, TypeVar

from ...backends.errno_map import FILESYSTEM_ERRNO
from ...core.fs_sandbox import resolve_beneath
from ...core.wasi_poll import Readiness
from ..codec import Case
from ..registrar import WitError
from .io import InputStream, OutputStream
from .state import WasiState

_F = TypeVar("_F", bound=Callable[..., Any])


def _fs(function: _F) -> _F:
    """Turn an OSError into the function's `err(error-code)`."""
    @functools.wraps(function)
    def call(*args: Any) -> Any:
        try:
            return function(*args)
        except OSError as error:
            raise WitError(FILESYSTEM_ERRNO.get(error.errno or 0, "io")) from None
    return call  # type: ignore[return-value]


#: `descriptor-type` by the stat mode test that recognises it.
_DESCRIPTOR_TYPES: tuple[tuple[Callable[[int], bool], str], ...] = (
    (stat_module.S_ISDIR, "directory"), (stat_module.S_ISREG, "regular-file"),
    (stat_module.S_ISLNK, "symbolic-link"), (stat_module.S_ISCHR, "character-device"),
    (stat_module.S_ISBLK, "block-device"), (stat_module.S_ISFIFO, "fifo"),
    (stat_module.S_ISSOCK, "socket"))


def _type_of(mode: int) -> str:
    return next((name for test, name in _DESCRIPTOR_TYPES if test(mode)), "unknown")


def _datetime(ns: int) -> dict[str, int]:
    return {"seconds": ns // 1_000_000_000, "nanoseconds": ns % 1_000_000_000}


def _stat_record(st: os.stat_result) -> dict[str, Any]:
    return {"type": _type_of(st.st_mode), "link-count": st.st_nlink, "size": st.st_size,
            "data-access-timestamp": _datetime(st.st_atime_ns),
            "data-modification-timestamp": _datetime(st.st_mtime_ns),
            "status-change-timestamp": _datetime(st.st_ctime_ns)}


def _hash(st: os.stat_result) -> dict[str, int]:
    return {"lower": st.st_ino & (2**64 - 1), "upper": st.st_dev & (2**64 - 1)}


def _time_arg(value: Case, current_ns: int) -> int | None:
    """A `new-timestamp` as nanoseconds (None: now)."""
    if value.tag == "no-change":
        return current_ns
    if value.tag == "now":
        return None
    return int(value.value["seconds"]) * 1_000_000_000 + int(value.value["nanoseconds"])


class FileInput(InputStream):
    """`read-via-stream`: reads at an offset that advances."""

    def __init__(self, state: WasiState, fd: int, offset: int) -> None:
        self.context = state.context
        self.stopped = state.stopped
        self.fd = fd
        self.offset = offset

    def _read(self, max_len: int) -> bytes | None:
        if max_len == 0:
            return b""
        data = os.pread(self.fd, min(max_len, self.context.limits.max_io_bytes), self.offset)
        if not data:
            return None
        self.offset += len(data)
        return data

    def _readiness(self) -> Readiness:
        return None


class FileOutput(OutputStream):
    """`write-via-stream` (at an offset that advances) or
    `append-via-stream` (offset None: at the end)."""

    def __init__(self, state: WasiState, fd: int, offset: int | None) -> None:
        self.context = state.context
        self.stopped = state.stopped
        self.fd = fd
        self.offset = offset

    def _check_write(self) -> int:
        return self.context.limits.max_io_bytes

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self.offset is None:
                written = os.pwrite(self.fd, view, os.fstat(self.fd).st_size)
            else:
                written = os.pwrite(self.fd, view, self.offset)
                self.offset += written
            view = view[written:]


class DirectoryEntryStream:
    """`resource directory-entry-stream`: a directory's entries, read once."""

    def __init__(self, entries: list[tuple[str, str]]) -> None:
        self.entries = entries

    def read_directory_entry(self) -> dict[str, str] | None:
        if not self.entries:
            return None
        kind, name = self.entries.pop(0)
        return {"type": kind, "name": name}


class Descriptor:
    """`resource descriptor`: an open file or directory under a pre-open
    (`root`, its real path) at host path `path`."""

    def __init__(self, state: WasiState, fd: int, path: str, root: str,
                 flags: frozenset[str]) -> None:
        self.state = state
        self.fd = fd
        self.path = path
        self.root = root
        self.flags = flags

    def _at(self, path: str, follow: bool) -> str:
        return resolve_beneath(self.root, self.path, path, follow)

    @_fs
    def read_via_stream(self, offset: int) -> FileInput:
        return FileInput(self.state, self.fd, offset)

    @_fs
    def write_via_stream(self, offset: int) -> FileOutput:
        self._writable()
        return FileOutput(self.state, self.fd, offset)

    @_fs
    def append_via_stream(self) -> FileOutput:
        self._writable()
        return FileOutput(self.state, self.fd, None)

    def _writable(self) -> None:
        if "write" not in self.flags:
            raise OSError(errno.EBADF, "not open for writing")

    @_fs
    def advise(self, offset: int, length: int, advice: str) -> None:
        return None

    @_fs
    def sync_data(self) -> None:
        os.fdatasync(self.fd)

    @_fs
    def sync(self) -> None:
        os.fsync(self.fd)

    @_fs
    def get_flags(self) -> frozenset[str]:
        return self.flags

    @_fs
    def get_type(self) -> str:
        return _type_of(os.fstat(self.fd).st_mode)

    @_fs
    def set_size(self, size: int) -> None:
        self._writable()
        os.ftruncate(self.fd, size)

    @_fs
    def set_times(self, data_access_timestamp: Case, data_modification_timestamp: Case) -> None:
        self._utime(self.fd, data_access_timestamp, data_modification_timestamp, True)

    @staticmethod
    def _utime(target: int | str, atime: Case, mtime: Case, follow: bool) -> None:
        st = os.stat(target, follow_symlinks=follow) if not isinstance(target, int) \
            else os.fstat(target)
        a = _time_arg(atime, st.st_atime_ns)
        m = _time_arg(mtime, st.st_mtime_ns)
        if a is None or m is None:
            import time
            now = time.time_ns()
            a = now if a is None else a
            m = now if m is None else m
        if isinstance(target, int):
            os.utime(target, ns=(a, m))
        else:
            os.utime(target, ns=(a, m), follow_symlinks=follow)

    @_fs
    def read(self, length: int, offset: int) -> tuple[bytes, bool]:
        size = min(length, self.state.context.limits.max_io_bytes)
        data = os.pread(self.fd, size, offset)
        return data, len(data) < size or (size == 0 and offset >= os.fstat(self.fd).st_size)

    @_fs
    def write(self, buffer: bytes, offset: int) -> int:
        self._writable()
        return os.pwrite(self.fd, buffer, offset)

    @_fs
    def read_directory(self) -> DirectoryEntryStream:
        entries: list[tuple[str, str]] = []
        with os.scandir(self.path) as found:
            for entry in found:
                try:
                    mode = entry.stat(follow_symlinks=False).st_mode
                except OSError:
                    mode = 0
                entries.append((_type_of(mode), entry.name))
        return DirectoryEntryStream(entries)

    @_fs
    def create_directory_at(self, path: str) -> None:
        os.mkdir(self._at(path, False))

    @_fs
    def stat(self) -> dict[str, Any]:
        return _stat_record(os.fstat(self.fd))

    @_fs
    def stat_at(self, path_flags: frozenset[str], path: str) -> dict[str, Any]:
        follow = "symlink-follow" in path_flags
        return _stat_record(os.stat(self._at(path, follow), follow_symlinks=follow))

    @_fs
    def set_times_at(self, path_flags: frozenset[str], path: str, data_access_timestamp: Case,
                     data_modification_timestamp: Case) -> None:
        follow = "symlink-follow" in path_flags
        self._utime(self._at(path, follow), data_access_timestamp,
                    data_modification_timestamp, follow)

    @_fs
    def link_at(self, old_path_flags: frozenset[str], old_path: str,
                new_descriptor: Descriptor, new_path: str) -> None:
        follow = "symlink-follow" in old_path_flags
        os.link(self._at(old_path, follow), new_descriptor._at(new_path, False),
                follow_symlinks=follow)

    @_fs
    def open_at(self, path_flags: frozenset[str], path: str, open_flags: frozenset[str],
                flags: frozenset[str]) -> Descriptor:
        follow = "symlink-follow" in path_flags
        target = self._at(path, follow)
        if "write" in flags or "mutate-directory" in flags:
            if "write" not in self.flags and "mutate-directory" not in self.flags:
                raise OSError(errno.EPERM, "the parent descriptor is read-only")
        mode = os.O_RDWR if {"read", "write"} <= flags else \
            os.O_WRONLY if "write" in flags else os.O_RDONLY
        mode |= os.O_CLOEXEC
        if "create" in open_flags:
            mode |= os.O_CREAT
        if "exclusive" in open_flags:
            mode |= os.O_EXCL
        if "truncate" in open_flags:
            mode |= os.O_TRUNC
        if "directory" in open_flags:
            mode |= os.O_DIRECTORY
        if not follow:
            mode |= os.O_NOFOLLOW
        if "file-integrity-sync" in flags:
            mode |= os.O_SYNC
        elif "data-integrity-sync" in flags:
            mode |= os.O_DSYNC
        fd = os.open(target, mode, 0o666)
        return Descriptor(self.state, fd, target, self.root, flags)

    @_fs
    def readlink_at(self, path: str) -> str:
        target = os.readlink(self._at(path, False))
        return target

    @_fs
    def remove_directory_at(self, path: str) -> None:
        os.rmdir(self._at(path, False))

    @_fs
    def rename_at(self, old_path: str, new_descriptor: Descriptor, new_path: str) -> None:
        os.rename(self._at(old_path, False), new_descriptor._at(new_path, False))

    @_fs
    def symlink_at(self, old_path: str, new_path: str) -> None:
        if old_path.startswith("/"):
            raise OSError(errno.EPERM, "absolute symlink target")
        link = self._at(new_path, False)
        # the link's target, read from where the link will be, must stay inside
        resolve_beneath(self.root, os.path.dirname(link), old_path, False)
        os.symlink(old_path, link)

    @_fs
    def unlink_file_at(self, path: str) -> None:
        os.unlink(self._at(path, False))

    def is_same_object(self, other: Descriptor) -> bool:
        a, b = os.fstat(self.fd), os.fstat(other.fd)
        return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)

    @_fs
    def metadata_hash(self) -> dict[str, int]:
        return _hash(os.fstat(self.fd))

    @_fs
    def metadata_hash_at(self, path_flags: frozenset[str], path: str) -> dict[str, int]:
        follow = "symlink-follow" in path_flags
        return _hash(os.stat(self._at(path, follow), follow_symlinks=follow))

    def drop(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass


class Types:
    """`wasi:filesystem/types`."""

    resources: dict[str, type] = {"descriptor": Descriptor,
                                  "directory-entry-stream": DirectoryEntryStream}

    def __init__(self, state: WasiState) -> None:
        self.state = state

    def filesystem_error_code(self, err: Any) -> str | None:
        """Stream errors of file streams carry no filesystem code here."""
        return None


class Preopens:
    """`wasi:filesystem/preopens`: the `--dir` directories."""

    resources: dict[str, type] = {}

    def __init__(self, state: WasiState) -> None:
        self.state = state

    def get_directories(self) -> list[tuple[Descriptor, str]]:
        found = []
        for host, guest in self.state.dirs:
            real = os.path.realpath(host)
            fd = os.open(real, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            found.append((Descriptor(self.state, fd, real, real,
                                     frozenset({"read", "write", "mutate-directory"})), guest))
        return found


__all__ = ["Descriptor", "Preopens", "Types"]
