"""``ssl`` in a guest whose CPython has no ``_ssl``: importable, and unusable by name.

componentize-py's CPython for wasm32-wasi is built without OpenSSL, so the
stdlib's ``ssl.py`` fails at its first line (``import _ssl``). Much plain
HTTP code imports ``ssl`` at top level without ever making a TLS
connection (uvicorn reads ``ssl.PROTOCOL_TLS_SERVER`` and ``ssl.CERT_NONE``
for its defaults; many libraries annotate with ``ssl.SSLContext``), so a
missing module would fail a program that never uses TLS. This placeholder
(installed by `capsock_guest._hooks` for ``import ssl`` only when the real
module cannot load) has the constants, enums and exception classes such
code reads at import time; anything that would start TLS raises an
`OSError` naming capsock. asyncio keeps working: it checks sockets
against `SSLSocket` (never an instance here) and builds TLS transports
only when given a context, which cannot be made.

A TLS module over a host capability (issue 18) replaces this one when the
guest library provides it: it would be registered in ``sys.modules``
before any import, so this finder never runs.
"""

from __future__ import annotations

import enum
from typing import Any, NoReturn

OPENSSL_VERSION = "capsock guest: no TLS (CPython built without _ssl)"
OPENSSL_VERSION_INFO = (0, 0, 0, 0, 0)
OPENSSL_VERSION_NUMBER = 0
HAS_SNI = HAS_ALPN = HAS_ECDH = HAS_NPN = HAS_NEVER_CHECK_COMMON_NAME = False
HAS_TLSv1 = HAS_TLSv1_1 = HAS_TLSv1_2 = HAS_TLSv1_3 = HAS_SSLv2 = HAS_SSLv3 = False
CHANNEL_BINDING_TYPES: list[str] = []

_MESSAGE = ("capsock: TLS is not available in this guest (its CPython has no _ssl); "
            "terminate TLS in front of the guest, or connect over plain TCP")


class _SSLMethod(enum.IntEnum):
    PROTOCOL_TLS = 2
    PROTOCOL_TLS_CLIENT = 16
    PROTOCOL_TLS_SERVER = 17


PROTOCOL_SSLv23 = PROTOCOL_TLS = _SSLMethod.PROTOCOL_TLS
PROTOCOL_TLS_CLIENT = _SSLMethod.PROTOCOL_TLS_CLIENT
PROTOCOL_TLS_SERVER = _SSLMethod.PROTOCOL_TLS_SERVER


class VerifyMode(enum.IntEnum):
    CERT_NONE = 0
    CERT_OPTIONAL = 1
    CERT_REQUIRED = 2


CERT_NONE, CERT_OPTIONAL, CERT_REQUIRED = VerifyMode


class VerifyFlags(enum.IntFlag):
    VERIFY_DEFAULT = 0
    VERIFY_CRL_CHECK_LEAF = 4
    VERIFY_CRL_CHECK_CHAIN = 12
    VERIFY_X509_STRICT = 32
    VERIFY_X509_TRUSTED_FIRST = 32768
    VERIFY_X509_PARTIAL_CHAIN = 524288


VERIFY_DEFAULT = VerifyFlags.VERIFY_DEFAULT
VERIFY_X509_STRICT = VerifyFlags.VERIFY_X509_STRICT


class Options(enum.IntFlag):
    OP_ALL = 0x80000050
    OP_NO_SSLv2 = 0
    OP_NO_SSLv3 = 0x2000000
    OP_NO_TLSv1 = 0x4000000
    OP_NO_TLSv1_1 = 0x10000000
    OP_NO_TLSv1_2 = 0x8000000
    OP_NO_TLSv1_3 = 0x20000000
    OP_NO_COMPRESSION = 0x20000
    OP_CIPHER_SERVER_PREFERENCE = 0x400000
    OP_SINGLE_DH_USE = 0
    OP_SINGLE_ECDH_USE = 0
    OP_NO_TICKET = 0x4000
    OP_NO_RENEGOTIATION = 0x40000000


globals().update(Options.__members__)


class TLSVersion(enum.IntEnum):
    MINIMUM_SUPPORTED = -2
    SSLv3 = 768
    TLSv1 = 769
    TLSv1_1 = 770
    TLSv1_2 = 771
    TLSv1_3 = 772
    MAXIMUM_SUPPORTED = -1


class Purpose(enum.Enum):
    SERVER_AUTH = "1.3.6.1.5.5.7.3.1"
    CLIENT_AUTH = "1.3.6.1.5.5.7.3.2"


class SSLError(OSError):
    """Base of TLS errors (never raised by a handshake here: there is none)."""


class SSLZeroReturnError(SSLError):
    pass


class SSLWantReadError(SSLError):
    pass


class SSLWantWriteError(SSLError):
    pass


class SSLSyscallError(SSLError):
    pass


class SSLEOFError(SSLError):
    pass


class SSLCertVerificationError(SSLError, ValueError):
    pass


CertificateError = SSLCertVerificationError


def _refuse(*args: Any, **kwargs: Any) -> NoReturn:
    raise OSError(95, _MESSAGE)  # EOPNOTSUPP


class SSLContext:
    """Cannot be made: there is no TLS in this guest."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _refuse()


class SSLObject:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _refuse()


class SSLSocket:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _refuse()


class MemoryBIO:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _refuse()


class SSLSession:
    pass


create_default_context = _create_default_https_context = _refuse
_create_unverified_context = _create_stdlib_context = wrap_socket = _refuse
get_server_certificate = _refuse


def get_default_verify_paths() -> Any:
    _refuse()


def cert_time_to_seconds(cert_time: str) -> NoReturn:
    _refuse()


def RAND_bytes(n: int) -> bytes:  # noqa: N802  the stdlib's name
    import os

    return os.urandom(n)


def RAND_status() -> bool:  # noqa: N802  the stdlib's name
    return True
