"""`NetError`: every `error-code` a capsock call returns, as an `OSError`."""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any, TypeVar

from componentize_py_types import Err
from wit_world.imports.socket import ErrorCode

__all__ = ["NetError", "call", "code_name"]

T = TypeVar("T")

#: error-code name -> the POSIX errno the WIT documents for it.
ERRNO: dict[str, int] = {
    "access-denied": errno.EACCES,
    "not-supported": errno.EOPNOTSUPP,
    "invalid-argument": errno.EINVAL,
    "out-of-memory": errno.ENOMEM,
    "timeout": errno.ETIMEDOUT,
    "would-block": errno.EWOULDBLOCK,
    "invalid-state": errno.EINVAL,
    "address-in-use": errno.EADDRINUSE,
    "address-not-bindable": errno.EADDRNOTAVAIL,
    "remote-unreachable": errno.EHOSTUNREACH,
    "connection-refused": errno.ECONNREFUSED,
    "connection-reset": errno.ECONNRESET,
    "connection-aborted": errno.ECONNABORTED,
    "datagram-too-large": errno.EMSGSIZE,
    "name-unresolvable": errno.ENOENT,
    "temporary-resolver-failure": errno.EAGAIN,
    "permanent-resolver-failure": errno.EIO,
    "limit-reached": errno.EMFILE,
    "unknown": errno.EIO,
}


def code_name(code: ErrorCode) -> str:
    """`ErrorCode.ACCESS_DENIED` -> ``"access-denied"`` (the WIT name)."""
    return code.name.lower().replace("_", "-")


class NetError(OSError):
    """A capsock operation failed.

    ``code`` is the WIT error-code name (``"access-denied"``,
    ``"connection-refused"``, ...); ``errno`` is the matching POSIX errno,
    so code written against the `socket` module's ``OSError`` still works.
    """

    code: str

    def __init__(self, code: str, message: str | None = None,
                 errno_: int | None = None) -> None:
        super().__init__(errno_ if errno_ is not None else ERRNO.get(code, errno.EIO),
                         f"{code}: {message}" if message else code)
        self.code = code

    @property
    def error_code(self) -> ErrorCode | None:
        """The `ErrorCode` enum member, or None for library-made codes."""
        name = self.code.upper().replace("-", "_")
        return ErrorCode.__members__.get(name)

    @classmethod
    def from_err(cls, err: Err[Any]) -> NetError:
        value = err.value
        if isinstance(value, ErrorCode):
            return cls(code_name(value))
        return cls("unknown", repr(value))


def call(fn: Callable[..., T], *args: Any) -> T:
    """Call a generated binding, turning its `Err` into `NetError`."""
    try:
        return fn(*args)
    except Err as e:
        raise NetError.from_err(e) from None
