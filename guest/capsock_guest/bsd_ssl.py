"""A drop-in for Python's `ssl` module: TLS done by the host.

A componentize-py guest has no ``_ssl`` (no OpenSSL inside the sandbox),
so CPython's `ssl` cannot even be imported, and with it `urllib.request`
and `http.client` lose HTTPS. ``capsock_guest.use_bsd`` registers this
module as ``ssl``; it speaks the same API over the host's
``capsock:net/tls`` interface, so unmodified code works::

    import urllib.request
    urllib.request.urlopen("https://svc.test/")          # http.client -> ssl

    ctx = ssl.create_default_context()
    with socket.create_connection(("svc.test", 443)) as raw:
        with ctx.wrap_socket(raw, server_hostname="svc.test") as tls:
            tls.sendall(b"...")

How it maps:

- ``wrap_socket(sock, server_hostname=...)`` takes over the socket (as
  CPython's detaches it) and asks the host to run the handshake
  (`tls.client-handshake`); the host then carries plaintext on the same
  connection, so `SSLSocket` is the BSD `socket` with TLS's extra methods
  (``getpeercert``, ``cipher``, ``version``, ``selected_alpn_protocol``,
  ``unwrap``...).
- Verification is the host's: the chain against *its* trust store
  (``--tls-ca``, or the system's), the name against the certificate.
  ``load_verify_locations``, ``load_default_certs`` and
  ``load_cert_chain`` are accepted and change nothing (a guest's CA files
  or keys would not be trusted or used: keys and trust stay outside the
  sandbox); ``verify_mode = CERT_NONE`` and ``check_hostname = False`` are
  accepted too, and the host verifies anyway. A failure raises
  `SSLCertVerificationError` with CPython's message (``certificate verify
  failed: Hostname mismatch, certificate is not valid for 'x'.``) and
  ``verify_code``; ``capsock_reason`` names the WIT `verify-reason`.
- A server name the host's policy does not allow raises `PermissionError`
  (nothing was sent).
- Server side: ``wrap_socket(sock, server_side=True)`` works on a listener
  the host TLS-terminates (``--tls-listen``) and on connections accepted
  from it: they are plaintext already; ``getpeercert`` shows a verified
  client certificate (``--tls-client-ca``). On any other socket it raises
  `SSLError` saying so.
- Not provided: ``wrap_bio`` / `SSLObject` (asyncio's ``ssl=``), NPN,
  PSK, post-handshake authentication, session reuse.
"""

from __future__ import annotations

import base64
import calendar
import enum
import os
import sys
import time
from collections import namedtuple
from typing import Any

from componentize_py_types import Err

from . import bsd
from ._errors import code_name

try:
    from wit_world.imports import tls as _tls
except ImportError:  # a guest built for a world without `tls`
    _tls = None  # type: ignore[assignment]

#: Whether this guest was built with the `tls` extension (else
#: `capsock_guest._hooks` installs the `_nossl` placeholder as ``ssl``).
HAS_HOST_TLS: bool = _tls is not None

# ---------------------------------------------------------------- constants

OPENSSL_VERSION = "capsock host TLS (OpenSSL on the host)"
OPENSSL_VERSION_INFO = (3, 0, 0, 0, 0)
OPENSSL_VERSION_NUMBER = 0x30000000
_OPENSSL_API_VERSION = OPENSSL_VERSION_INFO
HAS_SNI = True
HAS_ALPN = True
HAS_ECDH = True
HAS_NPN = False
HAS_PSK = False
HAS_PHA = False
HAS_NEVER_CHECK_COMMON_NAME = True
HAS_SSLv2 = HAS_SSLv3 = HAS_TLSv1 = HAS_TLSv1_1 = False
HAS_TLSv1_2 = HAS_TLSv1_3 = True
CHANNEL_BINDING_TYPES: list[str] = []
PEM_HEADER = "-----BEGIN CERTIFICATE-----"
PEM_FOOTER = "-----END CERTIFICATE-----"


class VerifyMode(enum.IntEnum):
    CERT_NONE = 0
    CERT_OPTIONAL = 1
    CERT_REQUIRED = 2


class _SSLMethod(enum.IntEnum):
    PROTOCOL_SSLv23 = 2
    PROTOCOL_TLS_CLIENT = 16
    PROTOCOL_TLS_SERVER = 17


class Options(enum.IntFlag):
    OP_ALL = 0x80000850
    OP_NO_SSLv2 = 0
    OP_NO_SSLv3 = 0x2000000
    OP_NO_TLSv1 = 0x4000000
    OP_NO_TLSv1_1 = 0x10000000
    OP_NO_TLSv1_2 = 0x8000000
    OP_NO_TLSv1_3 = 0x20000000
    OP_NO_COMPRESSION = 0x20000
    OP_CIPHER_SERVER_PREFERENCE = 0x400000
    OP_SINGLE_DH_USE = 0x100000000
    OP_SINGLE_ECDH_USE = 0x200000000
    OP_NO_TICKET = 0x4000
    OP_NO_RENEGOTIATION = 0x40000000
    OP_ENABLE_MIDDLEBOX_COMPAT = 0x100000
    OP_IGNORE_UNEXPECTED_EOF = 0x80
    OP_LEGACY_SERVER_CONNECT = 0x4
    OP_ENABLE_KTLS = 0x8


class VerifyFlags(enum.IntFlag):
    VERIFY_DEFAULT = 0
    VERIFY_CRL_CHECK_LEAF = 0x4
    VERIFY_CRL_CHECK_CHAIN = 0xC
    VERIFY_X509_STRICT = 0x20
    VERIFY_ALLOW_PROXY_CERTS = 0x40
    VERIFY_X509_TRUSTED_FIRST = 0x8000
    VERIFY_X509_PARTIAL_CHAIN = 0x80000


class TLSVersion(enum.IntEnum):
    MINIMUM_SUPPORTED = -2
    MAXIMUM_SUPPORTED = -1
    SSLv3 = 0x300
    TLSv1 = 0x301
    TLSv1_1 = 0x302
    TLSv1_2 = 0x303
    TLSv1_3 = 0x304


class SSLErrorNumber(enum.IntEnum):
    SSL_ERROR_SSL = 1
    SSL_ERROR_WANT_READ = 2
    SSL_ERROR_WANT_WRITE = 3
    SSL_ERROR_WANT_X509_LOOKUP = 4
    SSL_ERROR_SYSCALL = 5
    SSL_ERROR_ZERO_RETURN = 6
    SSL_ERROR_WANT_CONNECT = 7
    SSL_ERROR_EOF = 8
    SSL_ERROR_INVALID_ERROR_CODE = 10


CERT_NONE, CERT_OPTIONAL, CERT_REQUIRED = VerifyMode
PROTOCOL_SSLv23 = PROTOCOL_TLS = _SSLMethod.PROTOCOL_SSLv23
PROTOCOL_TLS_CLIENT = _SSLMethod.PROTOCOL_TLS_CLIENT
PROTOCOL_TLS_SERVER = _SSLMethod.PROTOCOL_TLS_SERVER
globals().update(Options.__members__)
globals().update(VerifyFlags.__members__)
globals().update(SSLErrorNumber.__members__)
OP_ALL = Options.OP_ALL
OP_NO_SSLv2 = Options.OP_NO_SSLv2
OP_NO_SSLv3 = Options.OP_NO_SSLv3
OP_NO_TLSv1 = Options.OP_NO_TLSv1
OP_NO_TLSv1_1 = Options.OP_NO_TLSv1_1
OP_NO_COMPRESSION = Options.OP_NO_COMPRESSION
VERIFY_DEFAULT = VerifyFlags.VERIFY_DEFAULT
VERIFY_X509_STRICT = VerifyFlags.VERIFY_X509_STRICT
VERIFY_X509_PARTIAL_CHAIN = VerifyFlags.VERIFY_X509_PARTIAL_CHAIN
SSL_ERROR_EOF = SSLErrorNumber.SSL_ERROR_EOF

_ASN1Object = namedtuple("_ASN1Object", "nid shortname longname oid")


class Purpose(_ASN1Object, enum.Enum):
    """What a context is for: SERVER_AUTH (a client's), CLIENT_AUTH (a server's)."""

    SERVER_AUTH = (129, "serverAuth", "TLS Web Server Authentication", "1.3.6.1.5.5.7.3.1")
    CLIENT_AUTH = (130, "clientAuth", "TLS Web Client Authentication", "1.3.6.1.5.5.7.3.2")


DefaultVerifyPaths = namedtuple("DefaultVerifyPaths", "cafile capath openssl_cafile_env "
                                "openssl_cafile openssl_capath_env openssl_capath")


def get_default_verify_paths() -> Any:
    """None everywhere: the trust store is the host's, never a guest file."""
    return DefaultVerifyPaths(None, None, "SSL_CERT_FILE", None, "SSL_CERT_DIR", None)


# ---------------------------------------------------------------- errors

class SSLError(OSError):
    """A TLS failure (``ssl.SSLError``): ``reason`` and ``library`` as CPython's."""

    library: str | None = None
    reason: str | None = None

    def __str__(self) -> str:
        return str(self.args[1]) if len(self.args) > 1 else super().__str__()


class SSLZeroReturnError(SSLError):
    """The TLS connection was closed cleanly."""


class SSLWantReadError(SSLError):
    """Non-blocking: the operation needs the peer's data first."""


class SSLWantWriteError(SSLError):
    """Non-blocking: the operation needs to send first."""


class SSLSyscallError(SSLError):
    """A system error below TLS."""


class SSLEOFError(SSLError):
    """The peer closed without close_notify (a truncated stream)."""


class SSLCertVerificationError(SSLError, ValueError):
    """The peer's certificate did not verify (``verify_code``,
    ``verify_message`` as CPython's; ``capsock_reason`` the WIT
    `verify-reason`, e.g. ``"hostname-mismatch"``)."""

    verify_code: int = 0
    verify_message: str = ""
    capsock_reason: str = ""


CertificateError = SSLCertVerificationError


def _error(cls: type[SSLError], number: int, reason: str, text: str) -> SSLError:
    error = cls(number, f"[SSL: {reason}] {text} (capsock)")
    error.reason = reason
    error.library = "SSL"
    return error


def _want_read() -> SSLError:
    return _error(SSLWantReadError, 2, "WANT_READ", "The operation did not complete (read)")


def _want_write() -> SSLError:
    return _error(SSLWantWriteError, 3, "WANT_WRITE", "The operation did not complete (write)")


def _no_tls() -> OSError:
    return OSError(95, "capsock: this guest was built without the `tls` extension "
                       "(the world imports-tls or imports-extended)")


_warned: set[str] = set()


def _note(what: str) -> None:
    """Say once on stderr that a call only stands for the host's settings."""
    if what not in _warned:
        _warned.add(what)
        print(f"capsock: ssl: {what} is ignored: TLS is done by the host, which verifies "
              "against its own trust store (--tls-ca) and holds the keys (--tls-cert)",
              file=sys.stderr, flush=True)


# ---------------------------------------------------------------- contexts

class SSLContext:
    """``ssl.SSLContext`` (see the module docs for what the host decides)."""

    def __init__(self, protocol: int | None = None, *args: Any, **kwargs: Any) -> None:
        if protocol is None:
            protocol = PROTOCOL_TLS
        self.protocol = _SSLMethod(protocol)
        client = protocol == PROTOCOL_TLS_CLIENT
        self._check_hostname = client
        self._verify_mode = CERT_REQUIRED if client else CERT_NONE
        self.options = Options.OP_ALL | Options.OP_NO_SSLv3 | Options.OP_NO_COMPRESSION
        self.minimum_version = TLSVersion.TLSv1_2
        self.maximum_version = TLSVersion.MAXIMUM_SUPPORTED
        self.verify_flags = VerifyFlags.VERIFY_X509_TRUSTED_FIRST
        self.post_handshake_auth = None  # not supported (http.client checks for None)
        self.hostname_checks_common_name = False
        self.keylog_filename: str | None = None
        self.sni_callback: Any = None
        self.security_level = 2
        self.num_tickets = 2
        self._alpn: list[str] = []

    @property
    def check_hostname(self) -> bool:
        return self._check_hostname

    @check_hostname.setter
    def check_hostname(self, value: bool) -> None:
        if value and self._verify_mode == CERT_NONE:
            self._verify_mode = CERT_REQUIRED
        self._check_hostname = bool(value)

    @property
    def verify_mode(self) -> VerifyMode:
        return self._verify_mode

    @verify_mode.setter
    def verify_mode(self, value: int) -> None:
        if value == CERT_NONE and self._check_hostname:
            raise ValueError("Cannot set verify_mode to CERT_NONE when check_hostname "
                             "is enabled.")
        self._verify_mode = VerifyMode(value)

    # -- trust and keys: the host's --------------------------------------------
    def load_default_certs(self, purpose: Any = Purpose.SERVER_AUTH) -> None:
        """The host's trust store is the default: nothing to load."""

    def set_default_verify_paths(self) -> None:
        """As `load_default_certs`."""

    def load_verify_locations(self, cafile: Any = None, capath: Any = None,
                              cadata: Any = None) -> None:
        if cafile is None and capath is None and cadata is None:
            raise TypeError("cafile, capath and cadata cannot be all omitted")
        _note("load_verify_locations")

    def load_cert_chain(self, certfile: Any, keyfile: Any = None, password: Any = None) -> None:
        _note("load_cert_chain")

    def cert_store_stats(self) -> dict[str, int]:
        return {"x509": 0, "crl": 0, "x509_ca": 0}

    def get_ca_certs(self, binary_form: bool = False) -> list[Any]:
        return []  # the host's trust store is not visible to the guest

    def set_ciphers(self, ciphers: str) -> None:
        """Accepted; the host chooses the cipher suites."""

    def get_ciphers(self) -> list[dict[str, Any]]:
        return []

    def set_ecdh_curve(self, name: str) -> None:
        """Accepted; the host chooses the groups."""

    def load_dh_params(self, path: str) -> None:
        """Accepted; the host chooses the groups."""

    def session_stats(self) -> dict[str, int]:
        return {}

    def set_alpn_protocols(self, alpn_protocols: Any) -> None:
        protocols = []
        for protocol in alpn_protocols:
            encoded = protocol.encode("ascii") if isinstance(protocol, str) else bytes(protocol)
            if not 0 < len(encoded) <= 255:
                raise SSLError("ALPN protocols must be 1 to 255 in length")
            protocols.append(encoded.decode("ascii"))
        self._alpn = protocols

    def set_npn_protocols(self, npn_protocols: Any) -> None:
        raise NotImplementedError("NPN is not supported (use ALPN)")

    def set_servername_callback(self, callback: Any) -> None:
        self.sni_callback = callback

    # -- sockets ---------------------------------------------------------------
    def wrap_socket(self, sock: bsd.socket, server_side: bool = False,
                    do_handshake_on_connect: bool = True, suppress_ragged_eofs: bool = True,
                    server_hostname: str | None = None, session: Any = None) -> SSLSocket:
        return SSLSocket._create(sock, self, server_side, server_hostname,
                                 do_handshake_on_connect, suppress_ragged_eofs)

    def wrap_bio(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            "capsock: TLS is done by the host over a socket; memory BIOs (SSLObject, "
            "asyncio's ssl=) are not available in a guest: use wrap_socket")


def create_default_context(purpose: Any = Purpose.SERVER_AUTH, *, cafile: Any = None,
                           capath: Any = None, cadata: Any = None) -> SSLContext:
    """A verifying client context (SERVER_AUTH) or a server context."""
    if purpose == Purpose.SERVER_AUTH:
        context = SSLContext(PROTOCOL_TLS_CLIENT)
    else:
        context = SSLContext(PROTOCOL_TLS_SERVER)
    if cafile or capath or cadata:
        context.load_verify_locations(cafile, capath, cadata)
    return context


def _create_unverified_context(protocol: Any = None, *, cert_reqs: Any = CERT_NONE,
                               check_hostname: bool = False, purpose: Any = Purpose.SERVER_AUTH,
                               certfile: Any = None, keyfile: Any = None, cafile: Any = None,
                               capath: Any = None, cadata: Any = None) -> SSLContext:
    """What CPython's is called; the host verifies all the same."""
    context = SSLContext(PROTOCOL_TLS_CLIENT if purpose == Purpose.SERVER_AUTH
                         else PROTOCOL_TLS_SERVER)
    context.check_hostname = check_hostname
    context.verify_mode = cert_reqs
    return context


_create_default_https_context = create_default_context
_create_stdlib_context = _create_unverified_context


# ---------------------------------------------------------------- sockets

def _handshake_error(value: Any, server_hostname: str, port: int) -> OSError:
    """A `tls-error` as the exception CPython would raise."""
    if isinstance(value, _tls.TlsError_VerificationFailed):
        failure = value.value
        error = _error(SSLCertVerificationError, 1, "CERTIFICATE_VERIFY_FAILED",
                       f"certificate verify failed: {failure.message}")
        assert isinstance(error, SSLCertVerificationError)
        error.verify_code = failure.code
        error.verify_message = failure.message
        error.capsock_reason = failure.reason.name.lower().replace("_", "-")
        return error
    if isinstance(value, _tls.TlsError_HandshakeFailed):
        text = value.value
        return _error(SSLError, 1, text, text.lower().replace("_", " "))
    code = code_name(value.value)
    if code == "would-block":
        return _want_read()
    if code == "access-denied":
        return PermissionError(13, f"TLS to {server_hostname!r} denied by the host's policy "
                                   "(capsock: access-denied); the rule that allows it: "
                                   f"--allow-outbound=tcp://{server_hostname}:{port}")
    return bsd._exception(code)


def _certificate_dict(cert: Any) -> dict[str, Any]:
    """The `certificate-summary` as `getpeercert()`'s dictionary."""
    details: dict[str, Any] = {
        "subject": tuple(((key, value),) for key, value in cert.subject),
        "issuer": tuple(((key, value),) for key, value in cert.issuer),
        "version": 3,
        "serialNumber": cert.serial_number,
        "notBefore": cert.not_before,
        "notAfter": cert.not_after,
    }
    if cert.subject_alt_names:
        details["subjectAltName"] = tuple(cert.subject_alt_names)
    return details


class SSLSocket(bsd.socket):
    """A TLS socket: the BSD `socket`, on a connection the host encrypts."""

    context: SSLContext
    server_side = False
    server_hostname: str | None = None
    do_handshake_on_connect = True
    suppress_ragged_eofs = True
    _established = False

    @classmethod
    def _create(cls, sock: bsd.socket, context: SSLContext, server_side: bool,
                server_hostname: str | None, do_handshake_on_connect: bool,
                suppress_ragged_eofs: bool) -> SSLSocket:
        if _tls is None:
            raise _no_tls()
        if sock.type != bsd.SOCK_STREAM:
            raise NotImplementedError("only stream sockets are supported")
        if server_side and server_hostname:
            raise ValueError("server_hostname can only be specified in client mode")
        if not server_side and context.check_hostname and not server_hostname:
            raise ValueError("check_hostname requires server_hostname")
        raw = sock._t()
        if server_side and not _tls.host_terminated(raw):
            raise _error(SSLError, 1, "NO_HOST_TERMINATION",
                         "capsock: server-side TLS is done by the host, and this socket is "
                         "not one of its TLS listeners or their connections: run with "
                         "--tls-listen HOST:PORT --tls-cert FILE --tls-key FILE and bind "
                         "(or accept from) that listener")
        timeout = sock.gettimeout()
        bsd._adopting = raw
        try:
            self = cls(sock.family, bsd.SOCK_STREAM)
        finally:
            bsd._adopting = None
        # Take the host socket over, as CPython's wrap_socket detaches it.
        self.name = sock.name
        self._preopened_listener = sock._preopened_listener
        sock._tcp = None
        sock._closed = True
        bsd._by_fileno.pop(sock._fileno, None)
        self.context = context
        self.server_side = server_side
        self.server_hostname = server_hostname
        self.do_handshake_on_connect = do_handshake_on_connect
        self.suppress_ragged_eofs = suppress_ragged_eofs
        self._established = server_side
        self.settimeout(timeout)
        if not server_side and do_handshake_on_connect and self._connected():
            if timeout == 0.0:
                raise ValueError("do_handshake_on_connect should not be specified for "
                                 "non-blocking sockets")
            self.do_handshake()
        return self

    def _connected(self) -> bool:
        try:
            self.getpeername()
        except OSError:
            return False
        return True

    def connect(self, address: Any) -> None:
        super().connect(address)
        if self.do_handshake_on_connect:
            self.do_handshake()

    def connect_ex(self, address: Any) -> int:
        error = super().connect_ex(address)
        if not error and self.do_handshake_on_connect:
            self.do_handshake()
        return error

    def do_handshake(self, block: bool = False) -> None:
        """The client handshake, run by the host for `server_hostname`."""
        if self._established:
            return
        name = self.server_hostname or str(self.getpeername()[0])
        try:
            _tls.client_handshake(self._t(), name, self.context._alpn)
        except Err as e:
            raise _handshake_error(e.value, name, int(self.getpeername()[1])) from None
        self._established = True

    def _session(self) -> Any:
        try:
            return _tls.session(self._t())
        except Err as e:
            if code_name(e.value) == "would-block":
                raise _want_read() from None
            raise bsd._exception(code_name(e.value)) from None

    # -- data ------------------------------------------------------------------
    def read(self, len: int = 1024, buffer: Any = None) -> Any:  # noqa: A002  CPython's name
        try:
            data = bsd.socket.recv(self, len)
        except BlockingIOError:
            raise _want_read() from None
        except ConnectionAbortedError:
            if self.suppress_ragged_eofs:
                return 0 if buffer is not None else b""
            raise _error(SSLEOFError, 8, "UNEXPECTED_EOF_WHILE_READING",
                         "EOF occurred in violation of protocol") from None
        if buffer is not None:
            memoryview(buffer).cast("B")[:len_(data)] = data
            return len_(data)
        return data

    def write(self, data: Any) -> int:
        self.sendall(data)
        return len_(memoryview(data).cast("B"))

    def recv(self, buflen: int = 1024, flags: int = 0) -> bytes:
        if flags:
            raise ValueError("non-zero flags not allowed in calls to recv() on "
                             f"{self.__class__}")
        data: bytes = self.read(buflen)
        return data

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        if flags:
            raise ValueError("non-zero flags not allowed in calls to recv_into() on "
                             f"{self.__class__}")
        view = memoryview(buffer).cast("B")
        data = self.recv(nbytes or len_(view))
        view[:len_(data)] = data
        return len_(data)

    def recvfrom(self, buflen: int = 1024, flags: int = 0) -> tuple[bytes, Any]:
        raise ValueError(f"recvfrom not allowed on instances of {self.__class__}")

    def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> Any:
        raise ValueError(f"recvfrom_into not allowed on instances of {self.__class__}")

    def send(self, data: Any, flags: int = 0) -> int:
        if flags:
            raise ValueError("non-zero flags not allowed in calls to send() on "
                             f"{self.__class__}")
        try:
            return bsd.socket.send(self, data)
        except BlockingIOError:
            raise _want_write() from None

    def sendall(self, data: Any, flags: int = 0) -> None:
        if flags:
            raise ValueError("non-zero flags not allowed in calls to sendall() on "
                             f"{self.__class__}")
        try:
            bsd.socket.sendall(self, data)
        except BlockingIOError:
            raise _want_write() from None

    def sendto(self, data: Any, flags_or_address: Any, address: Any = None) -> int:
        raise ValueError(f"sendto not allowed on instances of {self.__class__}")

    def pending(self) -> int:
        return 0

    # -- what was negotiated -----------------------------------------------------
    def getpeercert(self, binary_form: bool = False) -> Any:
        """The peer's certificate: the server's (verified by the host), or on
        a host-terminated connection the client's, when the host asked for
        one (``--tls-client-ca``); None if there is none."""
        cert = self._session().peer_certificate
        if cert is None:
            return None
        return cert.der if binary_form else _certificate_dict(cert)

    def cipher(self) -> tuple[str, str, int] | None:
        info = self._session()
        return (info.cipher, info.version, info.cipher_bits)

    def shared_ciphers(self) -> None:
        return None

    def version(self) -> str | None:
        return str(self._session().version)

    def selected_alpn_protocol(self) -> str | None:
        protocol: str | None = self._session().alpn_protocol
        return protocol

    def selected_npn_protocol(self) -> None:
        return None

    def compression(self) -> None:
        return None

    def get_channel_binding(self, cb_type: str = "tls-unique") -> None:
        raise ValueError(f"{cb_type!r} channel binding type not implemented")

    def verify_client_post_handshake(self) -> None:
        raise _error(SSLError, 1, "EXTENSION_NOT_RECEIVED",
                     "post-handshake authentication is not supported")

    @property
    def session(self) -> None:
        return None

    @property
    def session_reused(self) -> bool:
        return False

    def unwrap(self) -> bsd.socket:
        """End TLS with close_notify both ways; returns the plain socket."""
        raw = self._t()
        try:
            _tls.close_notify(raw)
        except Err as e:
            code = code_name(e.value)
            if code == "would-block":
                raise _want_read() from None
            raise bsd._exception(code) from None
        timeout = self.gettimeout()
        plain = bsd._adopt(raw, self.family, bsd.SOCK_STREAM, self.name)
        self._tcp = None
        self._closed = True
        bsd._by_fileno.pop(self._fileno, None)
        plain.settimeout(timeout)
        return plain

    # -- server side -------------------------------------------------------------
    def accept(self) -> tuple[SSLSocket, tuple[Any, ...]]:
        conn, address = super().accept()
        wrapped = SSLSocket._create(conn, self.context, True, None,
                                    self.do_handshake_on_connect, self.suppress_ragged_eofs)
        return wrapped, address

    def dup(self) -> Any:
        raise NotImplementedError(f"Can't dup() {self.__class__.__name__} instances")

    def __repr__(self) -> str:
        return "<capsock SSL" + super().__repr__()[len("<capsock "):]


len_ = len  # `read` has a parameter named len, as CPython's


# ---------------------------------------------------------------- helpers

def DER_cert_to_PEM_cert(der_cert_bytes: bytes) -> str:  # noqa: N802  CPython's name
    text = base64.b64encode(der_cert_bytes).decode("ascii")
    lines = "".join(text[i:i + 64] + "\n" for i in range(0, len_(text), 64))
    return f"{PEM_HEADER}\n{lines}{PEM_FOOTER}\n"


def PEM_cert_to_DER_cert(pem_cert_string: str) -> bytes:  # noqa: N802  CPython's name
    text = pem_cert_string.strip()
    if not text.startswith(PEM_HEADER) or not text.endswith(PEM_FOOTER):
        raise ValueError("Invalid PEM encoding; must start with and end with "
                         f"{PEM_HEADER!r} and {PEM_FOOTER!r}")
    return base64.decodebytes(text[len_(PEM_HEADER):-len_(PEM_FOOTER)].encode("ascii"))


def cert_time_to_seconds(cert_time: str) -> int:
    """``"May  9 00:00:00 2007 GMT"`` -> seconds since the epoch."""
    parsed = time.strptime(cert_time, "%b %d %H:%M:%S %Y GMT")
    return calendar.timegm(parsed)


def RAND_bytes(n: int) -> bytes:  # noqa: N802  CPython's name
    return os.urandom(n)


def RAND_status() -> bool:  # noqa: N802  CPython's name
    return True


def RAND_add(string: Any, entropy: float) -> None:  # noqa: N802  CPython's name
    """Accepted; randomness comes from WASI's random source."""


socket_error = OSError
SSLObject = None  # memory BIOs are not available (see wrap_bio)
