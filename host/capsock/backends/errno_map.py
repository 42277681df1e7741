"""The tables from OS errors to WIT `error-code`s: the sockets' (here
and in `capsock:net`'s WIT) and `wasi:filesystem`'s."""

from __future__ import annotations

import errno
import socket

from ..errors import ErrorCode, NetError

ERRNO_TO_CODE: dict[int, ErrorCode] = {
    errno.EACCES: ErrorCode.ACCESS_DENIED,
    errno.EPERM: ErrorCode.ACCESS_DENIED,
    errno.EOPNOTSUPP: ErrorCode.NOT_SUPPORTED,
    errno.ENOPROTOOPT: ErrorCode.NOT_SUPPORTED,
    errno.EAFNOSUPPORT: ErrorCode.NOT_SUPPORTED,
    errno.EPROTONOSUPPORT: ErrorCode.NOT_SUPPORTED,
    errno.EINVAL: ErrorCode.INVALID_ARGUMENT,
    errno.ENOMEM: ErrorCode.OUT_OF_MEMORY,
    errno.ENOBUFS: ErrorCode.OUT_OF_MEMORY,
    errno.ETIMEDOUT: ErrorCode.TIMEOUT,
    errno.EWOULDBLOCK: ErrorCode.WOULD_BLOCK,
    errno.EAGAIN: ErrorCode.WOULD_BLOCK,
    errno.EINPROGRESS: ErrorCode.WOULD_BLOCK,
    errno.EALREADY: ErrorCode.WOULD_BLOCK,
    errno.EISCONN: ErrorCode.INVALID_STATE,
    errno.ENOTCONN: ErrorCode.INVALID_STATE,
    errno.EADDRINUSE: ErrorCode.ADDRESS_IN_USE,
    errno.EADDRNOTAVAIL: ErrorCode.ADDRESS_NOT_BINDABLE,
    errno.EHOSTUNREACH: ErrorCode.REMOTE_UNREACHABLE,
    errno.ENETUNREACH: ErrorCode.REMOTE_UNREACHABLE,
    errno.ENETDOWN: ErrorCode.REMOTE_UNREACHABLE,
    errno.ECONNREFUSED: ErrorCode.CONNECTION_REFUSED,
    errno.ECONNRESET: ErrorCode.CONNECTION_RESET,
    errno.EPIPE: ErrorCode.CONNECTION_RESET,
    errno.ECONNABORTED: ErrorCode.CONNECTION_ABORTED,
    errno.EMSGSIZE: ErrorCode.DATAGRAM_TOO_LARGE,
    errno.EMFILE: ErrorCode.LIMIT_REACHED,
    errno.ENFILE: ErrorCode.LIMIT_REACHED,
}


def net_error(error: OSError) -> NetError:
    """Translate an OS error; unknown errnos become `unknown`."""
    if isinstance(error, socket.timeout) and error.errno is None:
        return NetError(ErrorCode.TIMEOUT, "timed out")
    code = ERRNO_TO_CODE.get(error.errno or 0, ErrorCode.UNKNOWN)
    return NetError(code, error.strerror or str(error))


#: errno -> `wasi:filesystem/types.error-code` (the WASI host's files,
#: binding/wasi/filesystem.py): the other errno table, kept beside this one.
FILESYSTEM_ERRNO: dict[int, str] = {
    errno.EACCES: "access", errno.EAGAIN: "would-block", errno.EALREADY: "already",
    errno.EBADF: "bad-descriptor", errno.EBUSY: "busy", errno.EDEADLK: "deadlock",
    errno.EDQUOT: "quota", errno.EEXIST: "exist", errno.EFBIG: "file-too-large",
    errno.EILSEQ: "illegal-byte-sequence", errno.EINPROGRESS: "in-progress",
    errno.EINTR: "interrupted", errno.EINVAL: "invalid", errno.EIO: "io",
    errno.EISDIR: "is-directory", errno.ELOOP: "loop", errno.EMLINK: "too-many-links",
    errno.EMSGSIZE: "message-size", errno.ENAMETOOLONG: "name-too-long",
    errno.ENODEV: "no-device", errno.ENOENT: "no-entry", errno.ENOLCK: "no-lock",
    errno.ENOMEM: "insufficient-memory", errno.ENOSPC: "insufficient-space",
    errno.ENOTDIR: "not-directory", errno.ENOTEMPTY: "not-empty",
    errno.ENOTRECOVERABLE: "not-recoverable", errno.ENOTSUP: "unsupported",
    errno.ENOTTY: "no-tty", errno.ENXIO: "no-such-device", errno.EOVERFLOW: "overflow",
    errno.EPERM: "not-permitted", errno.EPIPE: "pipe", errno.EROFS: "read-only",
    errno.ESPIPE: "invalid-seek", errno.ETXTBSY: "text-file-busy", errno.EXDEV: "cross-device",
}
