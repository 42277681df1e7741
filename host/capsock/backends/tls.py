"""TLS as a layer over any backend's stream socket, with Python's `ssl`.

A :class:`TlsStream` is itself a `StreamSocket`: it drives an
`ssl.SSLObject` over a pair of `ssl.MemoryBIO`s and moves the ciphertext
through the stream socket beneath it (its *transport*) with that socket's
own `receive` / `send`. So the same code serves every backend (real OS
sockets and the in-memory network alike), and the core above keeps
calling `receive` and `send` on what is now a plaintext stream. A
:class:`TlsListener` wraps a listening socket so that each connection it
accepts is a server-side `TlsStream` (host-terminated TLS,
``--tls-listen``).

What the layer keeps to itself: the `SSLContext` (trust store, the
server's key), the `SSLObject` and every ciphertext byte. Policy, limits
and the audit log are the core's (`capsock.core.tls`), reached through the
:class:`TlsObserver` a stream is given; this module only moves bytes.

Modes. The transport keeps the guest's blocking mode and timeout, so a
`receive` that needs more ciphertext waits (or says `would-block`) exactly
as a plain `receive` would. Ciphertext the transport would not take at
once (non-blocking) is kept in `unsent` and sent first by every later
call; `capsock.core.preopens.wait` pumps it before it waits (`pump`,
`ready_now`), so a guest that wrote and now waits for the answer never
waits on its own unsent request.

Handshakes run lazily: a stream starts in the handshake, and the first
`receive`, `send` or `handshake` drives it, under a deadline fixed when
the stream was made (`handshake_timeout`), so a peer that stalls the
handshake cannot hold a connection longer than that.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple, Protocol, TypeVar

from .._lazy import lazy_module
from ..addresses import SocketAddress
from ..errors import ErrorCode, NetError
from .base import StreamSocket
from .options import SocketOption

if TYPE_CHECKING:
    import ssl
else:
    ssl = lazy_module("ssl")  # loaded by the first TLS use (capsock._lazy)

__all__ = ["TlsFailure", "TlsListener", "TlsObserver", "TlsStream", "VerifyFailure",
           "layered", "transport_of"]

T = TypeVar("T")
_W = TypeVar("_W")

#: Ciphertext read from the transport per call: one TLS record and its header.
_RECORD = 16384 + 2048
#: The most plaintext one non-blocking `send` encrypts (the rest is the
#: guest's to send again), so unsent ciphertext stays bounded.
_NONBLOCKING_WRITE = 256 * 1024

#: OpenSSL `X509_V_ERR_*` code -> the WIT `verify-reason`.
_REASONS = {
    10: "expired", 9: "not-yet-valid", 62: "hostname-mismatch", 64: "hostname-mismatch",
    18: "self-signed", 19: "self-signed-in-chain", 2: "unknown-ca", 20: "unknown-ca",
    21: "unknown-ca",
}

#: transport -> the TLS stream over it: a pollable made before an upgrade
#: names the transport, and must wait on the stream (`layered`).
#: Keyed by id (a dict lookup, no weakref made per poll: `plan_waits` runs
#: on every poll of every guest); an entry is removed when its stream is
#: closed or detached, and `layered` checks the transport is the same
#: object, so a reused id never matches.
_LAYERS: dict[int, TlsStream] = {}


#: server-side SSLObject -> its stream, for `_remember_sni`.
_SERVING: weakref.WeakKeyDictionary[ssl.SSLObject, TlsStream] = weakref.WeakKeyDictionary()


def _remember_sni(tls: ssl.SSLObject | ssl.SSLSocket, name: str | None,
                  context: ssl.SSLContext) -> None:
    """A server context's SNI callback: keep the name the client asked for
    (the `session-info.server-name` of a host-terminated connection)."""
    stream = _SERVING.get(tls) if isinstance(tls, ssl.SSLObject) else None
    if stream is not None:
        stream.server_name = name


class VerifyFailure(NamedTuple):
    """A certificate that did not verify (the WIT `verify-failure`)."""

    reason: str
    code: int
    message: str


class TlsFailure(Exception):
    """A handshake failed: `verify` says why the certificate was refused,
    or None for any other TLS failure (`message` has OpenSSL's reason)."""

    def __init__(self, message: str, verify: VerifyFailure | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.verify = verify


class TlsObserver(Protocol):
    """What the core wants to hear about a stream (`capsock.core.tls`)."""

    def handshake_done(self, stream: TlsStream, failure: TlsFailure | None) -> None: ...
    def stream_closed(self, stream: TlsStream) -> None: ...


def failure_of(error: ssl.SSLError) -> TlsFailure:
    """A handshake's `SSLError` as a `TlsFailure`, keeping OpenSSL's words."""
    if isinstance(error, ssl.SSLCertVerificationError):
        code = int(error.verify_code or 0)
        message = str(error.verify_message or error.reason or error)
        return TlsFailure(f"certificate verify failed: {message}",
                          VerifyFailure(_REASONS.get(code, "other"), code, message))
    reason = error.reason or str(error)
    if reason in ("PEER_DID_NOT_RETURN_A_CERTIFICATE", "TLSV13_ALERT_CERTIFICATE_REQUIRED"):
        return TlsFailure(reason, VerifyFailure("no-certificate", 0,
                                                "the peer sent no certificate"))
    return TlsFailure(str(reason))


def layered(sock: object) -> TlsStream | None:
    """The TLS stream over `sock`, if a guest upgraded it."""
    if type(sock) is TlsStream:
        return sock
    stream = _LAYERS.get(id(sock)) if _LAYERS else None
    return stream if stream is not None and stream.transport is sock else None


def transport_of(sock: T) -> T:
    """The backend socket under any TLS layers (what a backend can wait
    on or interrupt)."""
    while isinstance(sock, _OverTransport):
        sock = sock.transport  # type: ignore[assignment]
    return sock


class _OverTransport:
    """What a TLS layer answers from the backend socket under it, as it is:
    its addresses, options and descriptor."""

    transport: StreamSocket

    def local_address(self) -> SocketAddress:
        return self.transport.local_address()

    def remote_address(self) -> SocketAddress:
        return self.transport.remote_address()

    def get_option(self, option: SocketOption) -> int:
        return self.transport.get_option(option)

    def set_option(self, option: SocketOption, value: int) -> None:
        self.transport.set_option(option, value)

    def fileno(self) -> int:
        return self.transport.fileno()


class TlsStream(_OverTransport):
    """A `StreamSocket` of plaintext over `transport`'s TLS (module docs)."""

    def __init__(self, transport: StreamSocket, context: ssl.SSLContext, *, server: bool,
                 server_name: str | None, handshake_timeout: float,
                 observer: TlsObserver | None) -> None:
        self.transport = transport
        self.server = server
        #: The name asked for (client), or the client's SNI once known (server).
        self.server_name = server_name
        self.observer = observer
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=server,
                                     server_hostname=None if server else server_name)
        if server:
            _SERVING[self._tls] = self
        self.deadline = time.monotonic() + handshake_timeout
        self.established = False
        #: Why the handshake failed, once it did.
        self.failure: TlsFailure | None = None
        self.unsent = bytearray()
        self._plain = bytearray()  # peeked plaintext, served first
        self._eof = False  # the TLS stream ended (close_notify, truncation, error)
        self._notified = False  # our close_notify is sent
        self._closed = False
        self._blocking = True
        self._timeout: float | None = None
        _LAYERS[id(transport)] = self

    def __repr__(self) -> str:
        side = "server" if self.server else "client"
        return f"<TlsStream {side} {self.server_name!r} over {self.transport!r}>"

    # -- the handshake ------------------------------------------------------
    def handshake(self) -> None:
        """Drive the handshake to its end (or `would-block` / `timeout`).
        Raises `TlsFailure` when it fails, and every later call the
        connection-level error for it."""
        if self.established:
            return
        if self.failure is not None:
            raise self.failure
        try:
            self._drive(self._tls.do_handshake, handshaking=True)
        except ssl.SSLError as error:
            self._fail(failure_of(error))
        except NetError as error:
            if error.code is ErrorCode.WOULD_BLOCK:
                raise  # non-blocking: the guest waits and calls again
            # A timeout or a broken connection ends the handshake for good.
            self._fail(TlsFailure(f"handshake: {error.detail or error.code.value}"), error)
        self.established = True
        if self.observer is not None:
            self.observer.handshake_done(self, None)

    def _fail(self, failure: TlsFailure, cause: NetError | None = None) -> None:
        self.failure = failure
        self._eof = True
        try:  # an alert the handshake produced (bad certificate...) still goes out
            self._flush(wait=False)
        except NetError:
            pass
        if self.observer is not None:
            self.observer.handshake_done(self, failure)
        if cause is not None:
            raise cause
        raise failure

    def _ready(self) -> None:
        """Before application data: finish the handshake; a failed one is
        `invalid-state` for the guest that asked for it (client), and
        `connection-aborted` on a host-terminated connection."""
        if self.established:
            return
        try:
            self.handshake()
        except TlsFailure as failure:
            if self.server:
                raise NetError(ErrorCode.CONNECTION_ABORTED,
                               f"the client's TLS handshake failed: {failure.message}") from None
            raise NetError(ErrorCode.INVALID_STATE,
                           f"TLS handshake failed: {failure.message}") from None

    # -- moving ciphertext --------------------------------------------------
    def _drive(self, operation: Callable[[], T], handshaking: bool = False) -> T:
        """Run an `SSLObject` operation, feeding it ciphertext from the
        transport (in the transport's mode) until it completes."""
        while True:
            try:
                result = operation()
            except ssl.SSLWantReadError:
                self._flush(wait=self._blocking)
                self._fill(handshaking)
                continue
            except ssl.SSLWantWriteError:  # never with memory BIOs; flush and retry
                self._flush(wait=self._blocking)
                continue
            self._flush(wait=self._blocking)
            return result

    def _fill(self, handshaking: bool) -> None:
        """Read ciphertext into the TLS object: what one `receive` gives."""
        if handshaking:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise NetError(ErrorCode.TIMEOUT, "the TLS handshake timed out")
            if self._blocking:
                limit = remaining if self._timeout is None else min(remaining, self._timeout)
                self.transport.set_timeout(limit)
        try:
            data = self.transport.receive(_RECORD, False)
        finally:
            if handshaking and self._blocking:
                self.transport.set_timeout(self._timeout)
        if data:
            self._incoming.write(data)
        else:
            self._incoming.write_eof()

    def _flush(self, wait: bool) -> bool:
        """Send pending ciphertext; `wait` False sends what the transport
        takes now. True when nothing is left unsent."""
        pending = self._outgoing.read()
        if pending and not self.unsent and (wait or not self._blocking):
            # The common case: one record to send, nothing left over before it.
            try:
                sent = self.transport.send(pending)
            except NetError as error:
                if error.code is not ErrorCode.WOULD_BLOCK or wait:
                    raise
                sent = 0
            if sent >= len(pending):
                return True
            pending = pending[max(sent, 0):]
        if pending:
            self.unsent += pending
        while self.unsent:
            if wait or not self._blocking:  # the transport is in the mode wanted already
                try:
                    sent = self.transport.send(bytes(self.unsent))
                except NetError as error:
                    if error.code is ErrorCode.WOULD_BLOCK and not wait:
                        return False
                    raise
            else:  # a blocking stream's attempt that must not wait (pump, close)
                self.transport.set_blocking(False)
                try:
                    sent = self.transport.send(bytes(self.unsent))
                except NetError as error:
                    if error.code is ErrorCode.WOULD_BLOCK:
                        return False
                    raise
                finally:
                    self._restore_mode()
            if sent <= 0:
                return False
            del self.unsent[:sent]
        return True

    def _restore_mode(self) -> None:
        if self._blocking:
            self.transport.set_timeout(self._timeout)
        else:
            self.transport.set_blocking(False)

    def pump(self) -> bool:
        """Send what is unsent without waiting (before a poll): True when
        nothing is left."""
        if not self.unsent or self._closed:
            return True
        try:
            return self._flush(wait=False)
        except NetError:
            return True  # the error shows on the next call; do not wait for it

    def ready_now(self, readable: bool) -> bool:
        """Ready without asking the transport: plaintext or ciphertext
        already here, the end of the stream, or a failure to report."""
        if self._closed or self.failure is not None:
            return True
        if not self.established and time.monotonic() >= self.deadline:
            return True  # the next call fails the handshake with `timeout`
        if not readable:
            return False
        return bool(self._plain or self._eof or self._tls.pending() or self._incoming.pending)

    # -- StreamSocket: data --------------------------------------------------
    def receive(self, max_len: int, peek: bool) -> bytes:
        self._ready()
        if self._plain:
            data = bytes(self._plain[:max_len])
            if not peek:
                del self._plain[:max_len]
            return data
        if self._eof:
            return b""
        try:
            if not self._tls.pending() and not self._incoming.pending:
                # Nothing decrypted or buffered: read ciphertext first rather
                # than let `read` fail with SSLWantReadError (half the cost
                # of a small receive).
                self._flush(wait=self._blocking)
                self._fill(False)
            data = self._drive(lambda: self._tls.read(max_len))
        except ssl.SSLZeroReturnError:  # the peer's close_notify
            self._eof = True
            return b""
        except ssl.SSLEOFError:
            self._eof = True
            raise NetError(ErrorCode.CONNECTION_ABORTED,
                           "the peer closed without close_notify: the TLS stream may be "
                           "truncated") from None
        except ssl.SSLError as error:
            self._eof = True
            raise NetError(ErrorCode.CONNECTION_ABORTED,
                           f"TLS error: {error.reason or error}") from None
        if not data:  # SSLObject.read says b"" for the peer's close_notify
            self._eof = True
        if peek:
            self._plain += data
        return data

    def send(self, data: bytes) -> int:
        self._ready()
        if self._notified:
            raise NetError(ErrorCode.INVALID_STATE, "send after TLS close_notify")
        if self.unsent and not self._flush(wait=self._blocking):
            raise NetError(ErrorCode.WOULD_BLOCK, "earlier TLS records are still unsent")
        if not self._blocking:
            data = data[:_NONBLOCKING_WRITE]
        try:
            written = self._tls.write(data)
        except ssl.SSLError as error:
            raise NetError(ErrorCode.CONNECTION_ABORTED,
                           f"TLS error: {error.reason or error}") from None
        self._flush(wait=self._blocking)  # the rest goes with the next call or poll
        return written

    def close_notify(self) -> None:
        """Send our close_notify and wait (in the transport's mode) for the
        peer's: `SSL_shutdown` to its end. Plaintext afterwards."""
        self._ready()
        self._notified = True
        try:
            self._drive(self._tls.unwrap)
        except ssl.SSLError as error:
            raise NetError(ErrorCode.CONNECTION_ABORTED,
                           f"TLS shutdown: {error.reason or error}") from None
        self._eof = True

    def shutdown(self, receive: bool, send: bool) -> None:
        """`shutdown(send)` sends close_notify before the TCP FIN, so the
        peer sees a clean end of the TLS stream."""
        if send and self.established and not self._notified:
            self._send_close_notify()
        self.transport.shutdown(receive, send)

    def _send_close_notify(self) -> None:
        self._notified = True
        try:
            self._tls.unwrap()
        except ssl.SSLError:
            pass  # SSLWantRead: ours is written, the peer's is not here yet
        try:
            self._flush(wait=self._blocking)
        except NetError:
            pass

    def close(self) -> None:
        """Close the transport, after a best-effort close_notify (never
        waiting: the guest is done with the connection)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.established and not self._notified and not self._eof:
                self._notified = True
                try:
                    self._tls.unwrap()
                except ssl.SSLError:
                    pass
                try:
                    self._flush(wait=False)
                except NetError:
                    pass
        finally:
            self.transport.close()
            _LAYERS.pop(id(self.transport), None)
            if self.observer is not None:
                self.observer.stream_closed(self)

    def detach(self) -> None:
        """Forget the transport after `close_notify` (it carries plaintext
        again, owned by the core) without closing it."""
        if self._closed:
            return
        self._closed = True
        _LAYERS.pop(id(self.transport), None)
        if self.observer is not None:
            self.observer.stream_closed(self)

    # -- what the guest may see ----------------------------------------------
    def session(self) -> dict[str, object]:
        """The negotiated details (the WIT `session` record)."""
        self._ready()
        cipher = self._tls.cipher()
        alpn = self._tls.selected_alpn_protocol()
        return {
            "server-name": self.server_name,
            "version": self._tls.version() or "",
            "cipher": cipher[0] if cipher else "",
            "cipher-bits": int(cipher[2]) if cipher and cipher[2] else 0,
            "alpn-protocol": alpn,
            "peer-certificate": self.peer_certificate(),
        }

    def peer_certificate(self) -> dict[str, object] | None:
        """The peer certificate's public summary (verified, or None)."""
        details = self._tls.getpeercert()
        der = self._tls.getpeercert(binary_form=True)
        if not details or not der:
            return None
        return certificate_summary(details, der)

    # -- StreamSocket: the rest goes to the transport ---------------------------
    def set_blocking(self, blocking: bool) -> None:
        self._blocking = blocking
        self.transport.set_blocking(blocking)
        if blocking:
            self.transport.set_timeout(self._timeout)

    def set_timeout(self, seconds: float | None) -> None:
        self._blocking = True
        self._timeout = seconds
        self.transport.set_timeout(seconds)

    def bind(self, address: SocketAddress) -> None:
        raise NetError(ErrorCode.INVALID_STATE, "bind on a TLS connection")

    def listen(self, backlog: int) -> None:
        raise NetError(ErrorCode.INVALID_STATE, "listen on a TLS connection")

    def accept(self) -> tuple[StreamSocket, SocketAddress]:
        raise NetError(ErrorCode.INVALID_STATE, "accept on a TLS connection")

    def connect(self, address: SocketAddress) -> None:
        raise NetError(ErrorCode.INVALID_STATE, "connect on a TLS connection")



def certificate_summary(details: Mapping[str, object], der: bytes) -> dict[str, object]:
    """`getpeercert()`'s dictionary as the WIT `certificate-summary`."""
    def names(field: str) -> list[tuple[str, str]]:
        rdns = details.get(field) or ()
        return [(str(key), str(value)) for rdn in rdns for key, value in rdn]  # type: ignore[attr-defined]

    sans = details.get("subjectAltName") or ()
    return {
        "subject": names("subject"),
        "issuer": names("issuer"),
        "subject-alt-names": [(str(kind), str(value)) for kind, value in sans],  # type: ignore[attr-defined]
        "serial-number": str(details.get("serialNumber", "")),
        "not-before": str(details.get("notBefore", "")),
        "not-after": str(details.get("notAfter", "")),
        "der": der,
    }


class TlsListener(_OverTransport):
    """A listening `StreamSocket` whose accepted connections are
    server-side `TlsStream`s (host-terminated TLS).

    `admit` (the core's) is asked before each connection is handed out;
    it may refuse (limits), and then the connection is closed unread.
    """

    def __init__(self, transport: StreamSocket, context: ssl.SSLContext,
                 handshake_timeout: float) -> None:
        self.transport = transport
        self.context = context
        context.sni_callback = _remember_sni
        self.handshake_timeout = handshake_timeout
        #: Set by the core when an instance takes the listener.
        self.observer: TlsObserver | None = None
        self.admit: Callable[[SocketAddress], None] | None = None

    def accept(self) -> tuple[StreamSocket, SocketAddress]:
        conn, peer = self.transport.accept()
        if self.admit is not None:
            try:
                self.admit(peer)
            except BaseException:
                conn.close()
                raise
        stream = TlsStream(conn, self.context, server=True, server_name=None,
                           handshake_timeout=self.handshake_timeout, observer=self.observer)
        return stream, peer

    def bind(self, address: SocketAddress) -> None:
        self.transport.bind(address)

    def listen(self, backlog: int) -> None:
        self.transport.listen(backlog)

    def connect(self, address: SocketAddress) -> None:
        raise NetError(ErrorCode.INVALID_STATE, "connect on a listener")

    def receive(self, max_len: int, peek: bool) -> bytes:
        raise NetError(ErrorCode.INVALID_STATE, "receive on a listener")

    def send(self, data: bytes) -> int:
        raise NetError(ErrorCode.INVALID_STATE, "send on a listener")

    def shutdown(self, receive: bool, send: bool) -> None:
        self.transport.shutdown(receive, send)


    def set_blocking(self, blocking: bool) -> None:
        self.transport.set_blocking(blocking)

    def set_timeout(self, seconds: float | None) -> None:
        self.transport.set_timeout(seconds)

    def close(self) -> None:
        self.transport.close()


def plan_waits(waits: Sequence[tuple[_W, bool]]
               ) -> tuple[list[int], list[tuple[_W, bool]], float | None]:
    """A poll's waits with TLS taken into account (`core.preopens.wait`).

    Returns the indexes ready already (`ready_now`, after pumping unsent
    ciphertext); the waits to hand the backend: transports in place of TLS
    layers, then one writable wait for each stream that still has unsent
    ciphertext (index ``len(waits)`` on: when one of those fires, the
    caller pumps and waits again); and the earliest handshake deadline of
    the streams waited on (None: none), which a wait must not sleep past
    (a stalled handshake then fails with `timeout` even in a guest that
    only polls).
    """
    ready: list[int] = []
    backend_waits: list[tuple[_W, bool]] = []
    pending: list[tuple[_W, bool]] = []
    deadline: float | None = None
    for index, (sock, readable) in enumerate(waits):
        kind = type(sock)
        if kind is TlsListener:
            backend_waits.append((sock.transport, readable))  # type: ignore[attr-defined]
            continue
        stream = layered(sock) if kind is TlsStream or _LAYERS else None
        if stream is None:  # a plain socket: the commonest case, kept cheap
            backend_waits.append((sock, readable))
            continue
        transport: _W = stream.transport  # type: ignore[assignment]
        if not stream.pump():
            pending.append((transport, False))
        if stream.ready_now(readable):
            ready.append(index)
        elif not stream.established:
            deadline = stream.deadline if deadline is None else min(deadline, stream.deadline)
        backend_waits.append((transport, readable))
    return ready, backend_waits + pending, deadline
