"""Confining a guest's paths to the directories the operator pre-opened.

`wasi:filesystem` names files by a descriptor and a relative path. The
path must stay beneath the pre-opened directory the descriptor came from
(`--dir`): no absolute path, no `..` above the root, no symlink (in the
path or, when followed, at its end) leading outside. `resolve_beneath`
does that with `os.path.realpath` and a prefix check on the real path,
then the caller opens the result. This is not race-free against the host
itself swapping a directory for a symlink between the check and the open
(Linux's `openat2(RESOLVE_BENEATH)` would be, and Python does not expose
it): SECURITY.md says so. The guest cannot make such a swap win by
itself, since every path it creates goes through this check too.
"""

from __future__ import annotations

import errno
import os


def resolve_beneath(root: str, base: str, path: str, follow: bool) -> str:
    """The host path of `path` taken relative to `base` (a directory at
    or under `root`), or OSError(EPERM) if it would leave `root`.

    With `follow` False the last component is not resolved (it may be a
    symlink, which the caller then acts on itself)."""
    if not path:
        raise OSError(errno.ENOENT, "empty path")
    if path.startswith("/"):
        raise OSError(errno.EPERM, f"absolute path {path!r}")
    if "\0" in path:
        raise OSError(errno.EINVAL, "NUL in path")
    joined = os.path.join(base, path)
    head, tail = os.path.split(joined.rstrip("/") or "/")
    if follow or tail in ("", ".", ".."):
        real = os.path.realpath(joined)
    else:
        real = os.path.join(os.path.realpath(head), tail)
    if real != root and not real.startswith(root.rstrip("/") + "/"):
        raise OSError(errno.EPERM, f"{path!r} leaves the pre-opened directory")
    return real


__all__ = ["resolve_beneath"]
