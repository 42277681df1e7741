"""`NetError`: every `error-code` a capsock call returns, as an `OSError`."""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any, TypeVar

from componentize_py_types import Err
from wit_world.imports.socket import ErrorCode

__all__ = ["NetError", "call", "code_name", "ERRORS", "ERRNO", "gaierror"]

T = TypeVar("T")

#: getaddrinfo's error numbers (glibc's values, as Linux CPython reports
#: them in `socket.gaierror.errno`; WASI has no resolver of its own).
EAI_BADFLAGS, EAI_NONAME, EAI_AGAIN, EAI_FAIL, EAI_FAMILY, EAI_SOCKTYPE, EAI_SERVICE = (
    -1, -2, -3, -4, -6, -7, -8)


class gaierror(OSError):  # noqa: N801  the name Python's socket module uses
    """A name-resolution failure (``socket.gaierror``); ``errno`` is an EAI_* value."""


#: THE table: error-code name -> (errno, the exception class Python's
#: `socket` module raises for it). `NetError` takes its errno from here and
#: the BSD layer (`capsock_guest.bsd`) its exception class too; nothing
#: else maps codes. Name errors are `gaierror` with EAI_* numbers, like
#: ``socket.getaddrinfo``'s.
ERRORS: dict[str, tuple[int, type[OSError]]] = {
    "access-denied": (errno.EACCES, PermissionError),
    "not-supported": (errno.EOPNOTSUPP, OSError),
    "invalid-argument": (errno.EINVAL, OSError),
    "out-of-memory": (errno.ENOMEM, OSError),
    "timeout": (errno.ETIMEDOUT, TimeoutError),
    "would-block": (errno.EWOULDBLOCK, BlockingIOError),
    "invalid-state": (errno.EINVAL, OSError),
    "address-in-use": (errno.EADDRINUSE, OSError),
    "address-not-bindable": (errno.EADDRNOTAVAIL, OSError),
    "remote-unreachable": (errno.EHOSTUNREACH, OSError),
    "connection-refused": (errno.ECONNREFUSED, ConnectionRefusedError),
    "connection-reset": (errno.ECONNRESET, ConnectionResetError),
    "connection-aborted": (errno.ECONNABORTED, ConnectionAbortedError),
    "datagram-too-large": (errno.EMSGSIZE, OSError),
    "name-unresolvable": (EAI_NONAME, gaierror),
    "temporary-resolver-failure": (EAI_AGAIN, gaierror),
    "permanent-resolver-failure": (EAI_FAIL, gaierror),
    "limit-reached": (errno.EMFILE, OSError),
    "unknown": (errno.EIO, OSError),
}

#: error-code name -> errno (a view of `ERRORS`).
ERRNO: dict[str, int] = {code: number for code, (number, _) in ERRORS.items()}


#: WIT names by case index. Read through ``_value_`` (a plain attribute):
#: an enum's ``.name`` and ``.value`` are descriptors that cost a few
#: microseconds each inside wasm, on every error of the hot path
#: (``would-block`` on each non-blocking receive that finds nothing).
_CODE_NAMES = {member._value_: member.name.lower().replace("_", "-") for member in ErrorCode}


def code_name(code: ErrorCode) -> str:
    """`ErrorCode.ACCESS_DENIED` -> ``"access-denied"`` (the WIT name)."""
    return _CODE_NAMES[code._value_]


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
