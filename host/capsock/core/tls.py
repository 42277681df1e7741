"""TLS for guests: the server-name policy, limits, audit, trust settings.

The bytes are `capsock.backends.tls`'s business (a `TlsStream` over the
core socket's backend socket, the same for every backend); this module
decides whether a handshake may start, counts it, and writes what came of
it to the audit log.

Server-name policy (`tls.wit`). A client handshake for `name` on a
connection to `peer` is allowed when the socket's checker allows
``TCP_CONNECT`` to `peer` knowing, of every name this instance resolved,
only `name` and its addresses (an IP literal: no names at all). So an
address rule (`tcp://10.0.0.5:443`, `tcp://*:443`) allows any name, to be
verified against the certificate; a name rule (`tcp://api.example.test:443`)
allows exactly its name, and only on a connection to an address that name
resolved to; a deny rule for a name denies it on any connection to its
addresses. It is one `check` with a narrowed `resolved`, so `restrict`
layers and embedders' checkers apply unchanged.

Trust. Client handshakes verify the chain against `TlsSettings`' trust
store (the system's, plus or instead of ``--tls-ca`` bundles) and the name
against the certificate (`check_hostname`); nothing of it reaches the
guest. Server contexts (``--tls-listen``) hold the certificate and key;
the guest gets plaintext connections and `session` records.
"""

from __future__ import annotations

import ipaddress
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from .._lazy import lazy_module
from .._log import log
from ..addresses import SocketAddress, parse_host_port
from ..backends.base import StreamSocket
from ..backends.tls import TlsFailure, TlsListener, TlsStream, layered
from ..errors import ErrorCode, NetError
from ..policy import Decision, Use, decision_of
from .context import InstanceContext
from .limits import TokenBucket
from .resolve import validate_name
from .tcp import TcpSocket, TcpState

if TYPE_CHECKING:
    import ssl
else:
    ssl = lazy_module("ssl")  # loaded by the first TLS use (capsock._lazy)

__all__ = ["TlsListenSpec", "TlsMonitor", "TlsSettings", "attach", "client_handshake",
           "close_notify", "host_terminated", "monitor", "session"]


@dataclass(frozen=True)
class TlsSettings:
    """The host's TLS trust configuration (``--tls-ca``, ``--tls-ca-only``).

    `ca_files` are PEM bundles trusted *in addition to* the system store,
    or *instead of* it with `ca_only`. Contexts are made once per ALPN
    list and shared by every instance of the host.
    """

    ca_files: tuple[Path, ...] = ()
    ca_only: bool = False
    _contexts: dict[tuple[str, ...], ssl.SSLContext] = field(
        default_factory=dict, compare=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    def check(self) -> None:
        """Load the bundles now, so a bad file fails at start-up, naming it."""
        self.client_context(())

    def client_context(self, alpn: tuple[str, ...]) -> ssl.SSLContext:
        """A verifying client context offering `alpn`."""
        with self._lock:
            context = self._contexts.get(alpn)
            if context is None:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, check_hostname
                context.minimum_version = ssl.TLSVersion.TLSv1_2
                if not self.ca_only:
                    context.load_default_certs(ssl.Purpose.SERVER_AUTH)
                for path in self.ca_files:
                    try:
                        context.load_verify_locations(cafile=str(path))
                    except (OSError, ssl.SSLError) as error:
                        raise ValueError(f"cannot load the CA bundle {str(path)!r}: "
                                         f"{error}") from None
                if alpn:
                    context.set_alpn_protocols(list(alpn))
                self._contexts[alpn] = context
            return context


class TlsListenSpec(NamedTuple):
    """`--tls-listen HOST:PORT` with `--tls-cert`, `--tls-key` and maybe
    `--tls-client-ca`: a listener whose connections the host handshakes."""

    address: SocketAddress
    cert: Path
    key: Path
    client_ca: Path | None = None
    alpn: tuple[str, ...] = ("http/1.1",)
    backlog: int = 128

    @classmethod
    def parse(cls, text: str, cert: Path, key: Path, client_ca: Path | None = None
              ) -> TlsListenSpec:
        return cls(parse_host_port(text), cert, key, client_ca)

    def server_context(self) -> ssl.SSLContext:
        """The server context: the certificate chain and key (read here,
        by the host, never by a guest), and the client CA when clients
        must present certificates."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(str(self.cert), str(self.key))
        except (OSError, ssl.SSLError) as error:
            raise ValueError(f"cannot load --tls-cert {str(self.cert)!r} / --tls-key "
                             f"{str(self.key)!r}: {error}") from None
        if self.client_ca is not None:
            try:
                context.load_verify_locations(cafile=str(self.client_ca))
            except (OSError, ssl.SSLError) as error:
                raise ValueError(f"cannot load --tls-client-ca {str(self.client_ca)!r}: "
                                 f"{error}") from None
            context.verify_mode = ssl.CERT_REQUIRED
        if self.alpn:
            context.set_alpn_protocols(list(self.alpn))
        return context

    def listener(self, transport: StreamSocket, handshake_timeout: float) -> TlsListener:
        return TlsListener(transport, self.server_context(), handshake_timeout)


class TlsMonitor:
    """One instance's TLS bookkeeping: its settings, the handshake rate
    bucket and the count of open TLS connections, and the audit lines."""

    def __init__(self, context: InstanceContext, settings: TlsSettings) -> None:
        self.context = context
        self.settings = settings
        self.bucket = TokenBucket(context.limits.tls_handshakes_per_second)
        self.open = 0
        self._lock = threading.Lock()

    def admit(self, target: str) -> None:
        """Count one more TLS connection, or `limit-reached` (audited)
        before anything is sent: the rate first, then the concurrency."""
        if not self.bucket.take():
            raise self.context.limit_reached("tls-handshake", "tcp", target,
                                             "tls_handshakes_per_second")
        with self._lock:
            if self.open < self.context.limits.max_tls_connections:
                self.open += 1
                return
        raise self.context.limit_reached("tls-handshake", "tcp", target, "max_tls_connections")

    def admit_server(self, peer: SocketAddress) -> None:
        self.admit(f"accept {peer}")

    def stream_closed(self, stream: TlsStream) -> None:
        self.release()

    def release(self) -> None:
        """One TLS connection fewer (closed, detached, or never made)."""
        with self._lock:
            self.open = max(0, self.open - 1)

    def handshake_done(self, stream: TlsStream, failure: TlsFailure | None) -> None:
        """The audit line of a handshake: name, peer, verified or why not."""
        try:
            peer = str(stream.transport.remote_address())
        except NetError:
            peer = "-"
        side = "accept" if stream.server else "connect"
        target = f"{side} {stream.server_name or '-'} {peer}"
        if failure is None:
            outcome = "verified"
            if stream.server:
                cert = stream.peer_certificate()
                outcome = ("client certificate verified: " + _subject_text(cert)
                           if cert is not None else "no client certificate asked")
            decision = Decision(True, outcome)
        elif failure.verify is not None:
            decision = Decision(False, f"not verified: {failure.verify.reason}: "
                                       f"{failure.verify.message}")
        else:
            decision = Decision(False, f"handshake failed: {failure.message}")
        if self.context.audit is not None:
            self.context.audit.record(self.context.instance_id, "tls-handshake", "tcp", target,
                                      decision)
        log.info("capsock: TLS %s: %s", target, decision.rule)


def _subject_text(cert: dict[str, object]) -> str:
    subject = cert.get("subject") or []
    return ",".join(f"{key}={value}" for key, value in subject)  # type: ignore[attr-defined]


_MONITORS: weakref.WeakKeyDictionary[InstanceContext, TlsMonitor] = weakref.WeakKeyDictionary()
_MONITORS_LOCK = threading.Lock()


def attach(context: InstanceContext, settings: TlsSettings) -> TlsMonitor:
    """Give an instance its TLS settings, and its host-terminated
    listeners (pre-opens) their monitor."""
    made = TlsMonitor(context, settings)
    with _MONITORS_LOCK:
        _MONITORS[context] = made
    for preopen in context.preopens:
        if isinstance(preopen.socket, TlsListener):
            preopen.socket.observer = made
            preopen.socket.admit = made.admit_server
    return made


def monitor(context: InstanceContext) -> TlsMonitor:
    """The instance's monitor (default settings, the system trust store,
    when its host configured none)."""
    with _MONITORS_LOCK:
        found = _MONITORS.get(context)
    return found if found is not None else attach(context, TlsSettings())


def _server_name(name: str) -> tuple[str, bool]:
    """The normalized server name and whether it is an IP literal (no
    zone: a certificate cannot name one)."""
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return validate_name(name), False
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        raise NetError(ErrorCode.INVALID_ARGUMENT, "a server name cannot carry an IPv6 zone")
    return str(ip), True


def _check_alpn(protocols: Sequence[str]) -> tuple[str, ...]:
    for protocol in protocols:
        if not 0 < len(protocol.encode("utf-8", "surrogatepass")) <= 255:
            raise NetError(ErrorCode.INVALID_ARGUMENT,
                           "an ALPN protocol name is 1 to 255 bytes")
    return tuple(protocols)


def client_handshake(core: TcpSocket, server_name: str, alpn: Sequence[str]) -> None:
    """`tls.client-handshake`: policy, limits, then the handshake.

    Raises `NetError` (its code is the WIT `socket` case) or `TlsFailure`
    (verification or another TLS failure). A second call continues a
    handshake a non-blocking socket left in progress.
    """
    if core.state is not TcpState.CONNECTED:
        raise NetError(ErrorCode.INVALID_STATE,
                       f"client-handshake on a {core.state.value} socket")
    name, literal = _server_name(server_name)
    protocols = _check_alpn(alpn)
    current = layered(core.sock)
    if current is not None:
        if current.server or current.established or current.failure is not None \
                or current.server_name != name:
            raise NetError(ErrorCode.INVALID_STATE, "TLS is already on this socket")
        current.handshake()
        return
    context = core.context
    peer = core.sock.remote_address()
    target = f"connect {name} {peer}"
    resolved = {} if literal else {name: context.resolved.get(name, frozenset())}
    decision = decision_of(core.checker.check(Use.TCP_CONNECT, peer, resolved))
    if not decision.allowed:
        context.record("tls-handshake", "tcp", target,
                       Decision(False, decision.rule or
                                f"no rule allows server name {name} on a connection to {peer}"))
        raise NetError(ErrorCode.ACCESS_DENIED, f"TLS server name {name} for {peer}")
    tls = monitor(context)
    tls.admit(target)
    try:
        ssl_context = tls.settings.client_context(protocols)
        stream = TlsStream(core.sock, ssl_context, server=False, server_name=name,
                           handshake_timeout=context.limits.tls_handshake_timeout,
                           observer=tls)
    except (ValueError, UnicodeError) as error:  # a name OpenSSL will not send as SNI
        tls.release()
        raise NetError(ErrorCode.INVALID_ARGUMENT, f"server name {name!r}: {error}") from None
    except BaseException:
        tls.release()
        raise
    if core.blocking:
        stream.set_timeout(core.timeout)
    else:
        stream.set_blocking(False)
    core.sock = stream
    stream.handshake()


def _stream(core: TcpSocket) -> TlsStream:
    stream = layered(core.sock)
    if stream is None or core.state is not TcpState.CONNECTED:
        raise NetError(ErrorCode.INVALID_STATE, "no TLS on this socket")
    return stream


def session(core: TcpSocket) -> dict[str, object]:
    """`tls.session`: the negotiated details, never a key."""
    stream = _stream(core)
    if stream.failure is not None and not stream.server:
        raise NetError(ErrorCode.INVALID_STATE, f"TLS handshake failed: {stream.failure}")
    return stream.session()


def close_notify(core: TcpSocket) -> None:
    """`tls.close-notify`: the orderly end of TLS; plaintext afterwards."""
    stream = _stream(core)
    stream.close_notify()
    core.sock = stream.transport
    stream.detach()


def host_terminated(core: TcpSocket) -> bool:
    """`tls.host-terminated`: a `--tls-listen` listener or its connection."""
    sock = core.sock
    if isinstance(sock, TlsListener):
        return True
    stream = layered(sock)
    return stream is not None and stream.server
