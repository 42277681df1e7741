"""The one error type of capsock's core, and the WIT `error-code` names.

Every expected failure inside the host is a :class:`NetError` carrying an
:class:`ErrorCode`. The binding layer turns it into the `err` case of the
WIT function's `result`; nothing else ever reaches the guest as an error.
"""

from __future__ import annotations

import enum


class ErrorCode(enum.Enum):
    """The cases of `capsock:net/socket.error-code`, valued by WIT name
    (and the two of `wasi:sockets` that it lacks, at the end)."""

    ACCESS_DENIED = "access-denied"
    NOT_SUPPORTED = "not-supported"
    INVALID_ARGUMENT = "invalid-argument"
    OUT_OF_MEMORY = "out-of-memory"
    TIMEOUT = "timeout"
    WOULD_BLOCK = "would-block"
    INVALID_STATE = "invalid-state"
    ADDRESS_IN_USE = "address-in-use"
    ADDRESS_NOT_BINDABLE = "address-not-bindable"
    REMOTE_UNREACHABLE = "remote-unreachable"
    CONNECTION_REFUSED = "connection-refused"
    CONNECTION_RESET = "connection-reset"
    CONNECTION_ABORTED = "connection-aborted"
    DATAGRAM_TOO_LARGE = "datagram-too-large"
    NAME_UNRESOLVABLE = "name-unresolvable"
    TEMPORARY_RESOLVER_FAILURE = "temporary-resolver-failure"
    PERMANENT_RESOLVER_FAILURE = "permanent-resolver-failure"
    LIMIT_REACHED = "limit-reached"
    UNKNOWN = "unknown"
    # `wasi:sockets/network.error-code` only (its start/finish pairs): in
    # `capsock:net` they would read as `unknown` (binding/registrar.py).
    CONCURRENCY_CONFLICT = "concurrency-conflict"
    NOT_IN_PROGRESS = "not-in-progress"


class NetError(Exception):
    """An expected failure, returned to the guest as its `error-code`."""

    def __init__(self, code: ErrorCode, detail: str = "") -> None:
        super().__init__(f"{code.value}: {detail}" if detail else code.value)
        self.code = code
        self.detail = detail
